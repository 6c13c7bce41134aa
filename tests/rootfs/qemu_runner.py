"""A zcore-tests style list runner on real QEMU: the reference `emu test` is compared with.

Boots `qemu-system-riscv64` once (Debian's QEMU 7.2 with its OpenSBI, `-bios default`, the command
line of scripts/bench_linux.py) and drives its console with pexpect as zcore-tests'
utils/test_qemu.py does: for each case of the list, the command is typed on the shell (`?` ->
blank), the output up to the next prompt is judged by the same failure patterns (`failed`,
`ERROR`, ...; emu.testrunner.verdict), and a case without a prompt within --timeout seconds is
TIMEOUT (then Ctrl-C, as a user would, so the next case finds the shell again).

    python -m tests.rootfs.qemu_runner --kernel Image --initrd initramfs.cpio.gz --list LIST

prints one line per case, `[i/n] STATUS  PATH (s)`, the format `emu test` prints, and exits 1 when
a case did not reproduce its listed status.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
from dataclasses import dataclass

import pexpect

from emu.testrunner.cases import Case, Status, parse_list
from emu.testrunner.verdict import DEFAULT_FAIL_PATTERNS, DEFAULT_PROMPT

QEMU_CPU = "rv64,sstc=off,h=off,zba=off,zbb=off,zbc=off,zbs=off"  # as scripts/bench_linux.py


@dataclass
class Result:
    case: Case
    status: Status
    output: str
    seconds: float


def qemu_command(kernel: str, initrd: str, smp: int = 2, memory: str = "256M",
                 append: str = "console=ttyS0") -> list[str]:
    qemu = shutil.which("qemu-system-riscv64")
    if qemu is None:
        raise FileNotFoundError("qemu-system-riscv64 (apt-get install qemu-system-misc opensbi)")
    return [qemu, "-M", "virt", "-nographic", "-bios", "default", "-cpu", QEMU_CPU, "-smp", str(smp),
            "-m", memory, "-kernel", kernel, "-initrd", initrd, "-append", append, "-no-reboot"]


def judge(output: str, patterns=DEFAULT_FAIL_PATTERNS) -> Status:
    return Status.FAILED if any(p in output for p in patterns) else Status.OK


class QemuShell:
    """One QEMU machine with busybox's shell on its console."""

    def __init__(self, cmd: list[str], prompt: str = DEFAULT_PROMPT, boot_timeout: float = 120.0):
        self.prompt = re.compile(prompt)
        self.child = pexpect.spawn(cmd[0], cmd[1:], timeout=boot_timeout, encoding="utf-8",
                                   codec_errors="replace", maxread=65536)
        self.boot_log = ""
        t0 = time.monotonic()
        self.child.expect(self.prompt)
        self.boot_seconds = time.monotonic() - t0
        self.boot_log = self.child.before

    def run(self, case: Case, timeout: float = 10.0) -> Result:
        c = self.child
        t0 = time.monotonic()
        c.sendline(case.command)
        # The shell's echo of the command line comes first; the output starts after it.
        try:
            c.expect(r"\n", timeout=timeout)
        except pexpect.TIMEOUT:
            pass
        status = None
        try:
            c.expect(self.prompt, timeout=max(0.1, timeout - (time.monotonic() - t0)))
            output = c.before
        except pexpect.TIMEOUT:
            output = c.before
            status = Status.TIMEOUT
            c.sendcontrol("c")  # the hung program goes; the shell prints its prompt again
            try:
                c.expect(self.prompt, timeout=10)
            except pexpect.TIMEOUT:
                pass
        seconds = time.monotonic() - t0
        if status is None:
            status = judge(output)
        return Result(case, status, output.replace("\r", ""), seconds)

    def close(self) -> None:
        if self.child.isalive():
            self.child.sendline("poweroff -f")
            try:
                self.child.expect(pexpect.EOF, timeout=10)
            except pexpect.TIMEOUT:
                pass
        self.child.close(force=True)


def run_list(cases: list[Case], kernel: str, initrd: str, smp: int = 2, memory: str = "256M",
             timeout: float = 10.0, echo=None) -> tuple[list[Result], float]:
    """Runs the cases in list order on one booted QEMU; the results and the boot time (s)."""
    shell = QemuShell(qemu_command(kernel, initrd, smp, memory))
    results = []
    try:
        for i, case in enumerate(cases, 1):
            if case.expected is Status.SKIPPED:
                continue
            r = shell.run(case, timeout)
            results.append(r)
            if echo:
                echo(f"[{i}/{len(cases)}] {r.status.value:<7} {case.path} ({r.seconds:.2f} s)")
    finally:
        shell.close()
    return results, shell.boot_seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", required=True)
    ap.add_argument("--initrd", required=True)
    ap.add_argument("--list", required=True)
    ap.add_argument("--case", action="append", default=[], help="only this case (repeatable)")
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("-m", "--memory", default="256M")
    ap.add_argument("--timeout", type=float, default=10.0, help="host seconds per case")
    args = ap.parse_args(argv)
    cases = parse_list(args.list)
    if args.case:
        cases = [c for c in cases if c.path in args.case]
    t0 = time.monotonic()
    results, boot = run_list(cases, args.kernel, args.initrd, args.smp, args.memory, args.timeout, echo=print)
    counts = {s: sum(r.status is s for r in results) for s in Status}
    print(f"qemu runner: {len(results)} case(s) in {time.monotonic() - t0:.2f} s (boot {boot:.2f} s): "
          + ", ".join(f"{n} {s.value}" for s, n in counts.items() if n))
    bad = [r for r in results if r.case.expected is not None and r.status is not r.case.expected]
    for r in bad:
        print(f"  {r.case.path}: expected {r.case.expected.value}, got {r.status.value}\n{r.output}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
