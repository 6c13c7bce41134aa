"""`emu` command line (click).  QEMU's single-dash spellings are accepted too.

Bad input is one line on stderr and exit code 2, never a traceback.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from emu.board import MAX_HARTS, PC_RAM_MAX, BoardSpec, GiB, MiB
from emu.errors import EXIT_BAD_INPUT, EmuError

if TYPE_CHECKING:
    from emu.machine import Machine, MachineOptions

DEFAULT_RAM = "2G"
LINUX_DEFAULT_BOOTARGS = "LOG=warn"  # zCore's Linux-mode default (its xtask passes this)


def parse_size(text: str) -> int:
    """QEMU-style memory size: plain number = MiB; K, M, G (and KiB/MiB/GiB) suffixes."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG])?(?:i?B)?\s*", text)
    if not m:
        raise EmuError(f"bad memory size {text!r} (use e.g. 512M or 2G)")
    n = int(m.group(1))
    unit = (m.group(2) or "M").upper()
    return n * {"K": 1 << 10, "M": MiB, "G": GiB}[unit]


def _repo_images() -> Path:
    return Path(__file__).resolve().parent.parent / "images"


class LazyGroup(click.Group):
    """A group whose heavier subcommands are imported only when named (or listed in
    --help): `emu run` does not pay for the image, test and QEMU front ends."""

    LAZY = {
        "image": "emu.image_cli:image",
        "test": "emu.testrunner.cli:test",
        "qemu-system-riscv64": "emu.qemu_compat.cli:qemu_command",
        "shim": "emu.qemu_compat.cli:shim_command",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LAZY})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.LAZY and name not in self.commands:
            import importlib

            module, attr = self.LAZY[name].split(":")
            self.add_command(getattr(importlib.import_module(module), attr), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """emu: a Unicorn-based SMP riscv64 `virt` machine for OS research."""


@main.command()
@click.option("--arch", default="riscv64", help="Guest architecture: riscv64 (virt board) or x86_64 (pc board).")
@click.option("--smp", "-smp", "smp", default=1, type=int, help="Number of harts (1-8).")
@click.option("-m", "--memory", "memory", default=DEFAULT_RAM, help="RAM size, e.g. 512M, 2G.")
@click.option("--kernel", "-kernel", "kernel", type=str, default=None, help="Kernel: riscv64 ELF or raw image.")
@click.option("--initrd", "-initrd", "initrd", type=str, default=None, help="Initial ramdisk / rootfs image.")
@click.option("--append", "-append", "append", type=str, default=None, help="Kernel command line (bootargs).")
@click.option("--timeout", type=float, default=None, help="Stop after this many host seconds (exit 124).")
@click.option("--quantum", type=int, default=20_000, help="Instructions per hart per scheduling round.")
@click.option("--mips", type=int, default=1000, show_default=True,
              help="Speed of the virtual CPU: instructions per virtual microsecond.")
@click.option("--realtime", is_flag=True, help="Never let the virtual clock run ahead of the host clock.")
@click.option("--linux", is_flag=True, help="zCore Linux-mode defaults (bootargs LOG=warn unless --append).")
@click.option("--stats", is_flag=True, help="Print run statistics as JSON on stderr at exit.")
@click.option("--trace", "trace", type=str, default=None, help="Write a Perfetto/Chrome trace (with emu's events) here.")
@click.option("--trace-profile", "trace_profile", default="auto", show_default=True,
              help="Stage profile: built-in name (refguest, zcore-offload), TOML file, auto or none.")
@click.option("--trace-events", "trace_events", default="all", show_default=True,
              help="Event groups: all or a comma list of syscall,stage,trap,sbi,ipi,irq,hart.")
@click.option("--drive", "-drive", "drives", multiple=True,
              help="virtio-blk disk: file=PATH[,readonly=on] (repeatable; virtio-blk-pci on x86_64).")
@click.option("--net", "-netdev", "net", default=None,
              help="The NIC's backend (see --nic): user[,hostfwd=tcp::HOSTPORT-:GUESTPORT] | tap,ifname=NAME | none.")
@click.option("--nic", "nic", type=click.Choice(["virtio", "e1000", "e1000e"]), default="virtio", show_default=True,
              help="The NIC behind --net: virtio-net (virtio-mmio; virtio-net-pci on x86_64) or an Intel "
                   "e1000 / e1000e on PCI.")
@click.option("--virtio-mmio", "virtio_mmio", type=click.Choice(["legacy", "modern"]), default="legacy",
              show_default=True, help="virtio-mmio register layout (zCore needs legacy).")
@click.option("--gdb", "gdb", default=None, help="GDB stub on [HOST]:PORT (host defaults to 127.0.0.1).")
@click.option("--gdb-wait", "gdb_wait", is_flag=True, help="Halt before the first instruction until GDB continues.")
@click.option("--on-idle-eof", "on_idle_eof", default="exit", show_default=True,
              help="When piped console input has ended and every hart idles in WFI for 1 virtual s "
                   "(exit=SECONDS for another time): exit (status 125) or wait.")
@click.option("--record", "record", default=None, metavar="FILE",
              help="Write the run's host inputs (console bytes, network frames, idle waits, its end) to FILE "
                   "for --replay.")
@click.option("--replay", "replay", default=None, metavar="FILE",
              help="Take the host inputs from a --record FILE instead of the console: the same console, "
                   "trace and --stats, or exit 119 at the first divergence.")
@click.option("--snapshot-every", "snapshot_every", type=float, default=None, metavar="MS",
              help="With --gdb: reverse execution; a snapshot (fork) at every resume and every MS virtual ms "
                   "(0: at resumes only).")
@click.option("--snapshot-keep", "snapshot_keep", type=int, default=64, show_default=True,
              help="Snapshots kept at most (the oldest go first).")
@click.option("--exact-stops", "exact_stops", is_flag=True,
              help="Stops a device asks for take effect at the next instruction, not the next block, as under "
                   "--snapshot-every (~1.5x host time): a --record made so replays exactly under reverse debugging.")
@click.option("-nographic", "nographic", is_flag=True, hidden=True)
@click.option("-no-reboot", "no_reboot", is_flag=True, hidden=True)
@click.option("-M", "-machine", "machine", default="virt", hidden=True)
@click.option("-bios", "bios", default="default", hidden=True)
@click.option("-serial", "serial", default="mon:stdio", hidden=True)
@click.option("-display", "display", default="none", hidden=True)
@click.option("-S", "wait_flag", is_flag=True, hidden=True)
def run(arch: str, smp: int, memory: str, kernel: str | None, initrd: str | None, append: str | None,
        timeout: float | None, quantum: int, mips: int, realtime: bool, linux: bool, stats: bool,
        trace: str | None, trace_profile: str, trace_events: str, drives: tuple[str, ...], net: str | None,
        virtio_mmio: str, gdb: str | None, gdb_wait: bool, nographic: bool, no_reboot: bool, machine: str, bios: str, serial: str,
        display: str, wait_flag: bool, on_idle_eof: str = "exit", record: str | None = None,
        replay: str | None = None, nic: str = "virtio", snapshot_every: float | None = None,
        snapshot_keep: int = 64, exact_stops: bool = False) -> None:
    """Boot a kernel on the virt board with the console on stdin/stdout."""
    from emu.machine import MachineOptions

    if arch not in ARCHES:
        raise EmuError(f"--arch {arch}: must be one of {', '.join(ARCHES)}")
    if arch == "x86_64":
        _check_x86_options(kernel)
    if not 1 <= smp <= MAX_HARTS:
        raise EmuError(f"--smp {smp}: must be between 1 and {MAX_HARTS}")
    if quantum < 100:
        raise EmuError(f"--quantum {quantum}: must be at least 100 instructions")
    if not 10 <= mips <= 100_000:
        raise EmuError(f"--mips {mips}: must be between 10 and 100000")
    if timeout is not None and timeout <= 0:
        raise EmuError(f"--timeout {timeout:g}: must be positive")
    if machine.split(",")[0] != "virt":
        raise EmuError(f"-M {machine}: only the virt machine exists")
    if bios not in ("default", "none"):
        raise EmuError("-bios: emu is the firmware; only -bios default is accepted")
    ram_size = parse_size(memory)
    if arch == "x86_64" and ram_size > PC_RAM_MAX:
        raise EmuError(f"-m {memory}: the x86_64 board has at most {PC_RAM_MAX >> 20}M of RAM so far")
    if ram_size < 16 * MiB or ram_size > 16 * GiB:
        raise EmuError(f"-m {memory}: RAM must be between 16M and 16G")
    check_nic(nic, net)
    if kernel is None:
        kernel = _default_kernel()
    bootargs = append if append is not None else (LINUX_DEFAULT_BOOTARGS if linux else "")
    board = BoardSpec(harts=smp, ram_size=ram_size, bootargs=bootargs, arch=arch)
    opts = MachineOptions(quantum=quantum, mips=mips, timeout=timeout, realtime=realtime,
                          stdin=None if replay else sys.stdin, stdout=sys.stdout, report=sys.stderr,
                          trace=trace, trace_events=trace_events, trace_profile=trace_profile,
                          gdb=gdb, gdb_wait=gdb_wait or wait_flag, drives=list(drives), net=net, nic=nic,
                          virtio_legacy=virtio_mmio == "legacy", record=record, replay=replay,
                          exact_stops=exact_stops)
    if opts.gdb_wait and not gdb:
        raise EmuError("--gdb-wait needs --gdb [HOST]:PORT")
    if snapshot_every is not None:
        if not gdb:
            raise EmuError("--snapshot-every is for reverse debugging: it needs --gdb [HOST]:PORT")
        if snapshot_every < 0 or snapshot_keep < 2:
            raise EmuError("--snapshot-every MS >= 0 and --snapshot-keep N >= 2")
        opts.snapshot_every, opts.snapshot_keep = snapshot_every, snapshot_keep
    from emu.runctl import parse_on_idle_eof

    opts.on_idle_eof = parse_on_idle_eof(on_idle_eof)  # scripted runs end by themselves
    opts.handle_signals = True  # SIGINT/SIGTERM/SIGHUP: exit 128+N with the trace and --stats written
    m = load_machine(board, kernel, initrd, opts)
    result = m.run()
    if stats:
        import json

        print(json.dumps({"exit_code": result.exit_code, "reason": result.reason, **result.stats}), file=sys.stderr)
    sys.exit(result.exit_code)


def check_nic(nic: str, net: str | None) -> None:
    """--nic names the model a --net backend is attached to: alone it would attach nothing."""
    if nic != "virtio" and net is None:
        raise EmuError(f"--nic {nic}: give its backend with --net user|tap,ifname=NAME|none")


ARCHES = ("riscv64", "x86_64")


def _check_x86_options(kernel: str | None) -> None:
    """What the x86_64 board cannot do is bad input, not a surprise later."""
    if kernel is None:
        raise EmuError("--arch x86_64 needs --kernel (an x86_64 ELF or bzImage)")


def load_machine(board: BoardSpec, kernel: str, initrd: str | None, opts: "MachineOptions") -> "Machine":
    """Load KERNEL (and INITRD) onto `board`: the one path behind `emu run` and the
    qemu-system-riscv64 front end, so both boot a kernel exactly the same way."""
    from emu.machine import Machine
    from loader.image import load_kernel

    image = load_kernel(kernel, board.ram.base, board.ram.size, board.arch)
    initrd_data = None
    if initrd is not None:
        initrd_data = read_initrd(initrd)
    return Machine(board, image, initrd_data, opts)


def read_initrd(path: str) -> "bytes | mmap.mmap":
    """The initrd's bytes, mapped rather than read: it is copied once into guest RAM (a
    zCore rootfs is 33 MB; reading it into a bytes object first cost a second copy and
    its page faults at every start)."""
    import mmap

    try:
        with open(path, "rb") as f:
            try:
                return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError:  # an empty file cannot be mapped
                return f.read()
    except IsADirectoryError:
        raise EmuError(f"cannot read initrd {path}: Is a directory") from None
    except OSError as err:
        raise EmuError(f"cannot read initrd {path}: {err.strerror}") from None


@main.group()
def trace() -> None:
    """Analyse trace files written by `emu run --trace`."""


@trace.command("report")
@click.argument("path")
@click.option("--compare", "compare", default=None, help="A second trace to put side by side.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--by", "by", type=click.Choice(["syscall", "thread"]), default="syscall", show_default=True,
              help="thread: per-thread calls, rates, latency and top calls only.")
def trace_report(path: str, compare: str | None, as_json: bool, by: str = "syscall") -> None:
    """Latency per stage and per system call, hand-offs and exits per hart."""
    import json

    from emu.trace.output import load_trace
    from emu.trace.report import format_compare, format_report, summarise

    summary = summarise(load_trace(path, sys.stderr))
    if by == "thread":
        from emu.trace.threads import format_threads

        click.echo(json.dumps(summary["per_thread"], indent=1) if as_json else "\n".join(format_threads(summary["per_thread"])))
        return
    if compare is not None:
        other = summarise(load_trace(compare, sys.stderr))
        click.echo(json.dumps([summary, other], indent=1) if as_json else format_compare(summary, other, path, compare))
        return
    click.echo(json.dumps(summary, indent=1) if as_json else format_report(summary, path))


@trace.command("plot")
@click.argument("path")
@click.option("-o", "output", required=True, help="PNG file to write.")
def trace_plot(path: str, output: str) -> None:
    """Histograms of each stage interval (matplotlib)."""
    from emu.trace.output import load_trace
    from emu.trace.plot import plot

    plot(load_trace(path, sys.stderr), output)


@main.command("gdb")
@click.argument("kernel")
@click.option("--port", default=1234, show_default=True, help="Port of a running `emu run --gdb :PORT`.")
def gdb_cmd(kernel: str, port: int) -> None:
    """Start gdb-multiarch on KERNEL (an ELF) connected to a running emu."""
    import os
    import shutil

    gdb = shutil.which("gdb-multiarch")
    if gdb is None:
        raise EmuError("gdb-multiarch not found (apt-get install gdb-multiarch)")
    if not Path(kernel).is_file():
        raise EmuError(f"kernel not found: {kernel}")
    with open(kernel, "rb") as f:
        head = f.read(20)
    machine = int.from_bytes(head[18:20], "little") if head[:4] == b"\x7fELF" else 0
    arch = GDB_ARCH.get(machine, "riscv:rv64")  # the ELF's e_machine: x86-64 (62), else riscv
    os.execv(gdb, [gdb, "-q", "-ex", f"set architecture {arch}", "-ex", f"target remote 127.0.0.1:{port}", kernel])


GDB_ARCH = {243: "riscv:rv64", 62: "i386:x86-64"}


def _default_kernel() -> str:
    """The built-in reference guest, built on first use when the toolchain is there."""
    import shutil
    import subprocess

    images = _repo_images()
    ref = images / "build" / "refguest" / "refguest.elf"
    if ref.exists():
        return str(ref)
    if not (images / "refguest" / "Makefile").exists():
        raise EmuError("no --kernel given and this installation has no reference guest sources")
    if shutil.which("riscv64-unknown-elf-gcc") is None or shutil.which("make") is None:
        raise EmuError("no --kernel given and the reference guest is not built: "
                       "apt-get install gcc-riscv64-unknown-elf make, then make -C images/refguest")
    print("emu: building the reference guest (make -C images/refguest)", file=sys.stderr)
    res = subprocess.run(["make", "-C", str(images / "refguest")], capture_output=True, text=True)
    if res.returncode != 0 or not ref.exists():
        last = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["make failed"]
        raise EmuError(f"building the reference guest failed: {last[0]}")
    return str(ref)


def entry() -> None:
    """Console-script entry: one-line errors and exit 2 for bad input."""
    try:
        main(standalone_mode=False)
    except (EmuError, click.ClickException) as err:
        msg = err.format_message() if isinstance(err, click.ClickException) else str(err)
        print(f"emu: error: {msg}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Abort:
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    entry()
