"""Profile files: which kernel code marks which stage of a cross-hart system call.

A profile (TOML) describes a kernel's offload protocol as data:

    name = "refguest"
    detect = ["ref_submit", "ref_resume"]          # all present -> `--trace-profile auto` picks it
    stages = ["submit", "pickup", "execute", "complete", "wake", "resume"]
    handoffs = [["submit", "pickup"], ["wake", "resume"]]

    [[point]]
    stage = "submit"
    symbol = "ref_submit"     # or: line = "offload.c:37" | inline = "fn" | watch = "sym+8", size = 8
    key = "a0"                # correlation key: ties the stages of one call together
    fields = { num = "[a0+8]", pid = "[a0+88]:4" }
    syscalls = { 500 = "gettime" }                 # names for the kernel's own numbers (optional)

Symbol names may contain `*` (a glob over demangled names).  Expressions: a register (`a0`,
`tp`, `sp`...), `reg+off` (the register plus an offset: an address the register points near),
or `[reg+off]` / `[reg+off]:N` / `[reg+reg+off]:N` for N bytes of memory (default 8) at a
virtual address (the second register an index, as x86 addressing has it).  Registers are the
profile's `arch`'s (`arch = "x86_64"`: rax..r15; riscv64 by default: a0, s11, sp...): the CPU
adapter's trace probes name them, so this module knows no architecture.  Symbols may be given
demangled: Rust legacy names `_ZN...17h<hash>E` match their `a::b::c` path or its last components.
"""
from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from emu.errors import EmuError
from loader.demangle import demangle  # noqa: F401 - also this module's public name
from loader.symbols import Symbols

BUILTIN_DIR = Path(__file__).with_name("profiles")
_NUM = r"[+-]\s*(?:0x[0-9a-fA-F]+|\d+)"
_EXPR = re.compile(r"^\s*(?:(?P<reg>[a-z][a-z0-9]*)\s*(?P<add>" + _NUM + r")?|\[\s*(?P<base>[a-z][a-z0-9]*)\s*"
                   r"(?:\+\s*(?P<index>[a-z][a-z0-9]*)\s*)?(?P<off>" + _NUM + r")?\s*\](?::(?P<size>[1248]))?)\s*$")


@dataclass(frozen=True)
class Expr:
    reg: str  # a register of the profile's arch, by name
    mem: bool = False
    offset: int = 0
    size: int = 8
    index: str | None = None  # [reg+index+offset]

    @classmethod
    def parse(cls, text: str) -> "Expr":
        m = _EXPR.match(text)
        if not m:
            raise EmuError(f"profile: bad expression {text!r} (use a0, a0+8, [a0+8], [a0+8]:4 or [a0+a1+8]:4)")
        off = m.group("add") or m.group("off")
        offset = int(off.replace(" ", ""), 0) if off else 0
        if m.group("reg"):
            return cls(m.group("reg"), offset=offset)
        return cls(m.group("base"), True, offset, int(m.group("size") or 8), m.group("index"))

    def registers(self) -> list[str]:
        return [self.reg] + ([self.index] if self.index else [])


@dataclass
class Point:
    stage: str
    key: Expr | None
    fields: dict[str, Expr]
    symbol: str | None = None
    line: str | None = None
    inline: str | None = None
    watch: str | None = None
    size: int = 8
    addresses: list[int] = field(default_factory=list)


@dataclass
class Profile:
    name: str
    stages: list[str]
    handoffs: list[tuple[str, str]]
    points: list[Point]
    detect: list[str]
    syscalls: dict[int, str] = field(default_factory=dict)  # the kernel's own numbers (Linux's are built in)
    arch: str = "riscv64"  # its expressions name this architecture's registers


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.toml"))


def load_profile(spec: str) -> Profile:
    path = Path(spec)
    if not path.suffix and (BUILTIN_DIR / f"{spec}.toml").exists():
        path = BUILTIN_DIR / f"{spec}.toml"
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise EmuError(f"trace profile {spec!r}: no such file or built-in ({', '.join(builtin_names())})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise EmuError(f"trace profile {path}: {err}") from None
    try:
        points = []
        for p in data.get("point", []):
            points.append(Point(stage=p["stage"], key=Expr.parse(p["key"]) if "key" in p else None,
                                fields={k: Expr.parse(v) for k, v in p.get("fields", {}).items()},
                                symbol=p.get("symbol"), line=p.get("line"), inline=p.get("inline"),
                                watch=p.get("watch"), size=int(p.get("size", 8))))
        return Profile(name=data.get("name", path.stem), stages=list(data.get("stages", [])),
                       handoffs=[tuple(h) for h in data.get("handoffs", [])],  # type: ignore[misc]
                       points=points, detect=list(data.get("detect", [])),
                       syscalls={int(k): str(v) for k, v in data.get("syscalls", {}).items()},
                       arch=str(data.get("arch", "riscv64")))
    except (KeyError, TypeError, ValueError) as err:
        raise EmuError(f"trace profile {path}: malformed ({err})") from None


def auto_profile(symbols: Symbols, arch: str = "riscv64") -> Profile | None:
    """The built-in profile for `arch` whose `detect` symbols the kernel has, if any (the
    offload fork built for x86_64 has the same symbols as its riscv64 build, not the same
    registers)."""
    index = SymbolIndex(symbols)
    for name in builtin_names():
        prof = load_profile(name)
        if prof.arch == arch and prof.detect and all(index.find(s) is not None for s in prof.detect):
            return prof
    return None


class SymbolIndex:
    """Find a symbol by its exact, demangled, or trailing-path name."""

    def __init__(self, symbols: Symbols) -> None:
        self.symbols = symbols
        self.demangled: dict[str, int] = {}
        for name, addr in symbols.by_name.items():
            self.demangled.setdefault(demangle(name), addr)

    def find(self, name: str) -> int | None:
        if "*" in name:  # a glob over demangled names: `*RemoteSyscallFuture as*Future>::poll`
            hits = sorted(addr for dm, addr in self.demangled.items() if fnmatch.fnmatchcase(dm, name))
            return hits[0] if hits else None
        if name in self.symbols.by_name:
            return self.symbols.by_name[name]
        if name in self.demangled:
            return self.demangled[name]
        suffix = "::" + name
        hits = sorted(addr for dm, addr in self.demangled.items() if dm.endswith(suffix))
        return hits[0] if hits else None


def resolve(profile: Profile, symbols: Symbols, elf_path: Path | None) -> list[Point]:
    """Fill each point's addresses; a point that cannot be resolved is an error."""
    index = SymbolIndex(symbols)
    dwarf = None
    for p in profile.points:
        if p.symbol:
            addr = index.find(p.symbol)
            if addr is None:
                raise EmuError(f"trace profile {profile.name}: symbol {p.symbol!r} not in the kernel")
            p.addresses = [addr]
        elif p.watch:
            m = re.fullmatch(r"\s*([^+\s]+)\s*(?:\+\s*(0x[0-9a-fA-F]+|\d+))?\s*", p.watch)
            addr = index.find(m.group(1)) if m else None
            if addr is None:
                raise EmuError(f"trace profile {profile.name}: watch {p.watch!r}: symbol not found")
            p.addresses = [addr + (int(m.group(2), 0) if m.group(2) else 0)]
        elif p.line or p.inline:
            if elf_path is None:
                raise EmuError(f"trace profile {profile.name}: line/inline points need an ELF kernel with DWARF")
            if dwarf is None:
                from emu.trace.dwarf import DwarfIndex

                dwarf = DwarfIndex(elf_path)
            p.addresses = dwarf.line_addresses(p.line) if p.line else dwarf.inline_addresses(p.inline or "")
            if not p.addresses:
                raise EmuError(f"trace profile {profile.name}: {p.line or p.inline!r} not found in DWARF")
    return profile.points


