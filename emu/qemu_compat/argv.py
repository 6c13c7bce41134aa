"""QEMU's own argument syntax, as plain data: no file is read, nothing is started.

`split_argv` turns an argv list into `(name, value)` pairs the way QEMU's `vl.c` does:
every option is single-dash (a second dash is allowed, `--kernel` = `-kernel`), an option
that takes an argument takes the next argv element whole (`-append "a b"`, even when it
starts with a dash), and there is no `-opt=value` form.  Doing this ourselves instead of
with click/argparse is deliberate: both treat `-display` as `-d isplay`, and neither knows
which QEMU options take a value.

`parse_keyval` reads QEMU's option lists (`virt,aclint=off`, `file=a,,b.img,if=none`):
comma-separated `key=value` items, `,,` for a literal comma, an optional leading bare value
for the option's implied key (`-machine virt` = `-machine type=virt`), and a bare `key`
meaning `key=on`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emu.errors import EmuError

# name -> takes an argument.  Options emu honours or knowingly ignores; anything else is
# an error naming the option (it may change what the guest sees).
OPTIONS: dict[str, bool] = {
    "machine": True, "M": True, "bios": True, "m": True, "smp": True, "kernel": True, "initrd": True,
    "append": True, "nographic": False, "display": True, "vga": True, "no-reboot": False,
    "no-shutdown": False, "serial": True, "monitor": True, "parallel": True, "S": False, "s": False,
    "gdb": True, "drive": True, "device": True, "netdev": True, "nic": True, "accel": True, "cpu": True,
    "d": True, "D": True, "name": True, "k": True, "rtc": True, "icount": True, "snapshot": False,
    "nodefaults": False, "version": False, "h": False, "help": False,
}


@dataclass(frozen=True)
class Option:
    """One option as given: `name` without dashes, `value` None for a flag."""

    name: str
    value: str | None = None


def split_argv(argv: list[str]) -> list[Option]:
    """QEMU's command line -> options in order; EmuError (one line) on anything else."""
    out: list[Option] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            raise EmuError(f"{arg!r}: a bare argument is a disk image to QEMU (-hda); use -drive file=...")
        name = arg[2:] if arg.startswith("--") else arg[1:]
        if name not in OPTIONS:
            raise EmuError(f"{arg}: unknown option (not supported by emu's qemu-system-riscv64)")
        if not OPTIONS[name]:
            out.append(Option(name))
            continue
        if i >= len(argv):
            raise EmuError(f"{arg}: requires an argument")
        out.append(Option(name, argv[i]))
        i += 1
    return out


def split_commas(text: str) -> list[str]:
    """Split at single commas; `,,` is a literal comma (QEMU's escaping)."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == ",":
            if text.startswith(",,", i):
                cur.append(",")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(text[i])
        i += 1
    parts.append("".join(cur))
    return parts


@dataclass
class KeyVal:
    """A parsed option list: values per key in the order given (`hostfwd` repeats)."""

    option: str  # e.g. "-drive", for messages
    text: str
    items: dict[str, list[str]] = field(default_factory=dict)

    def get(self, key: str, default: str | None = None) -> str | None:
        """The last value of `key` (QEMU: the last one wins)."""
        values = self.items.get(key)
        return values[-1] if values else default

    def pop(self, key: str, default: str | None = None) -> str | None:
        values = self.items.pop(key, None)
        return values[-1] if values else default

    def pop_all(self, key: str) -> list[str]:
        return self.items.pop(key, [])

    def flag(self, key: str, default: bool = False) -> bool:
        """An on/off property (QEMU accepts on/off, yes/no, true/false)."""
        value = self.pop(key)
        if value is None:
            return default
        table = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}
        if value.lower() not in table:
            raise EmuError(f"{self.option} {self.text}: {key}={value} (use on or off)")
        return table[value.lower()]

    def leftover(self) -> list[str]:
        return list(self.items)


def parse_keyval(option: str, text: str, implied: str | None = None) -> KeyVal:
    """`[VALUE,]key=value,...` -> KeyVal; a leading bare VALUE belongs to `implied`."""
    kv = KeyVal(option, text)
    for index, part in enumerate(split_commas(text)):
        if not part:
            continue
        key, eq, value = part.partition("=")
        if not eq:
            if index == 0 and implied is not None:
                key, value = implied, part
            else:
                value = "on"
        kv.items.setdefault(key, []).append(value)
    return kv
