"""`emu qemu-system-riscv64 ARGS...`, the `emu-qemu-system-riscv64` console script and
`emu shim DIR`: emu under QEMU's name, for tooling (zCore's xtask and Makefile,
zcore-tests) that starts `qemu-system-riscv64` itself.

The argv becomes a QemuPlan (config.py, pure); this module does the side effects: vetting
`-bios`, converting disk images, opening `-serial file:` copies, printing the warnings,
then booting through `emu.cli.load_machine`, the code path of `emu run`.
"""
from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path

import click

from emu.errors import EXIT_BAD_INPUT, EmuError
from emu.qemu_compat.config import QemuPlan, plan_from_argv

PROG = "qemu-system-riscv64"
CONSOLE_SCRIPT = "emu-qemu-system-riscv64"
SHIM_MARK = "# written by `emu shim`"
OPENSBI_NAMES = ("fw_dynamic", "fw_jump")
USAGE = f"""\
usage: {PROG} [options]   (emu's QEMU-compatible front end; see README "Drop-in for qemu-system-riscv64")

honoured: -machine/-M virt  -bios default|OpenSBI fw_dynamic/fw_jump  -m [size=]N  -smp N[,cores=..]
          -kernel F  -initrd F  -append S  -nographic  -display none  -no-reboot  -S  -s  -gdb tcp::PORT
          -serial mon:stdio|stdio|file:PATH|null  -drive file=F,if=none|virtio,format=raw|qcow2,id=ID
          -device virtio-blk-device,drive=ID  -netdev user,id=N[,hostfwd=R]|tap,id=N,ifname=T
          -device virtio-net-device|e1000|e1000e,netdev=N  -nic user|tap,...[,model=e1000|e1000e]
          -snapshot  -accel tcg  -cpu rv64
          -d int -D FILE (Perfetto trace)  -icount (deterministic clock)  -monitor none  -name  -k  -rtc
other devices are a warning (the guest does not see them); unknown options are an error
"""
VERSION = "QEMU emulator version 7.2.0 (emu 0.1.0: emu's qemu-system-riscv64 front end)"


def run_qemu(argv: list[str]) -> int:
    """Run a qemu-system-riscv64 command line on emu; returns the exit code."""
    from emu.board import BoardSpec
    from emu.cli import load_machine
    from emu.machine import MachineOptions
    from emu.qemu_compat.disks import DiskSet

    plan = plan_from_argv(argv)
    if plan.help or plan.version:
        print(USAGE if plan.help else VERSION)
        return 0
    bios_note = check_bios(plan.bios)
    if bios_note:
        plan.warn(bios_note)
    if plan.kernel is None:
        raise EmuError("-kernel is required: emu is the firmware and boots an S-mode kernel")
    board = BoardSpec(harts=plan.smp, ram_size=plan.ram_size, bootargs=plan.append)
    with ExitStack() as stack:
        disks = stack.enter_context(DiskSet(plan.drives))
        copies = open_serial_files(plan.serial_files)
        stack.callback(lambda: [os.close(fd) for fd in copies])
        opts = MachineOptions(realtime=not plan.deterministic,
                              stdin=sys.stdin if plan.console_stdio else None,
                              stdout=sys.stdout if plan.console_stdio else None, report=sys.stderr,
                              trace=plan.trace_file, trace_events=plan.trace_events,
                              gdb=plan.gdb, gdb_wait=plan.gdb_wait, drives=disks.specs, net=plan.net, nic=plan.nic,
                              console_copies=copies, console_escape=plan.console_escape)
        machine = load_machine(board, plan.kernel, plan.initrd, opts)
        report_warnings(plan)
        if plan.dumpdtb is not None:  # QEMU: write the final device tree, run nothing
            from emu.fdt import build_fdt

            try:
                Path(plan.dumpdtb).write_bytes(build_fdt(board))
            except OSError as err:
                raise EmuError(f"-machine dumpdtb={plan.dumpdtb}: {err.strerror}") from None
            return 0
        return machine.run().exit_code


def report_warnings(plan: QemuPlan) -> None:
    for text in plan.warnings:
        print(f"emu: warning: {text}", file=sys.stderr)
    sys.stderr.flush()


def check_bios(spec: str) -> str | None:
    """emu is the firmware (SBI).  `default` is emu itself; Debian's OpenSBI fw_dynamic /
    fw_jump are replaced by it (a warning); `none` and any other file are M-mode code emu
    cannot run: an error, since the guest would not get the firmware it was given."""
    if spec == "default":
        return None
    if spec == "none":
        raise EmuError("-bios none: the kernel would have to run in M-mode; emu runs S-mode kernels "
                       "on its own SBI (use -bios default)")
    path = Path(spec)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise EmuError(f"-bios {spec}: {err.strerror}") from None
    if b"OpenSBI" in data and any(n in path.name for n in OPENSBI_NAMES) and "payload" not in path.name:
        return f"-bios {spec}: OpenSBI is replaced by emu's own SBI firmware"
    raise EmuError(f"-bios {spec}: emu cannot run M-mode firmware (only -bios default or OpenSBI fw_dynamic/fw_jump)")


def open_serial_files(paths: list[str]) -> list[int]:
    """`-serial file:PATH`: created / truncated as QEMU does; returns the fds."""
    fds: list[int] = []
    try:
        for path in paths:
            fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
    except OSError as err:
        for fd in fds:
            os.close(fd)
        raise EmuError(f"-serial file:{err.filename}: {err.strerror}") from None
    return fds


def write_shim(directory: Path) -> Path:
    """Write DIR/qemu-system-riscv64: a script run by this interpreter (so a venv works
    without activation) that imports this copy of emu (so a source checkout works too)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / PROG
    if target.exists() and SHIM_MARK not in target.read_text(errors="replace")[:400]:
        raise EmuError(f"{target} exists and was not written by emu shim; not replacing it")
    package_root = Path(__file__).resolve().parent.parent.parent
    text = (f"#!{sys.executable}\n{SHIM_MARK}: emu's front end under QEMU's name\n"
            "import sys\n"
            f"sys.path.insert(0, {str(package_root)!r})\n"
            "from emu.qemu_compat.cli import entry\n"
            "entry()\n")
    tmp = target.with_name(f".{PROG}.tmp")
    tmp.write_text(text)
    tmp.chmod(0o755)
    tmp.replace(target)
    return directory


def entry(argv: list[str] | None = None) -> None:
    """Console script `emu-qemu-system-riscv64` (and the shim): one-line errors, exit 2."""
    try:
        code = run_qemu(sys.argv[1:] if argv is None else argv)
    except EmuError as err:
        print(f"emu: error: {err}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


@click.command(PROG, add_help_option=False,
               context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def qemu_command(args: tuple[str, ...]) -> None:
    """Run a qemu-system-riscv64 command line on emu (QEMU's option syntax)."""
    sys.exit(run_qemu(list(args)))


@click.command("shim")
@click.argument("directory", type=click.Path(file_okay=False))
def shim_command(directory: str) -> None:
    """Write DIR/qemu-system-riscv64 running emu, print DIR: PATH=$(emu shim DIR):$PATH make run."""
    try:
        click.echo(write_shim(Path(directory).absolute()))
    except OSError as err:
        raise EmuError(f"emu shim {directory}: {err.strerror}") from None
