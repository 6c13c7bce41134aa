"""The shim under the conditions zCore's tooling creates (issue 17 acceptance 2), with the
reference guest in place of zCore's files:
- `make justrun` hands QEMU a raw `zcore.bin` (objcopy -O binary), loaded at 0x80200000;
- zcore-tests' runner (utils/test_qemu.py) starts `make ... justrun` with shell=True in a new
  session, talks to the console through pipes (stdout and stderr merged), and ends the run
  with SIGTERM to the process group."""
from __future__ import annotations

import os
import re
import selectors
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pexpect
import pytest

from tests.conftest import emu_cmd
from tests.guest import build, needs_binutils
from tests.qemu.test_frontend import free_netdev, poweroff, spawn, substitute
from tests.qemu.test_plan import MAKEFILE, MAKEFILE_NETDEV, XTASK


def justrun_line(kernel: Path, initrd: Path, serial_out: Path) -> str:
    """The line the fork's `make justrun LINUX=1 SMP=2 ARCH=riscv64` runs, as its shell gets it."""
    table = {"zcore.bin": str(kernel), "riscv64.img": str(initrd), "file:/tmp/serial.out": f"file:{serial_out}",
             MAKEFILE_NETDEV: free_netdev()}
    argv = [table.get(a, a) for a in MAKEFILE]
    return "qemu-system-riscv64 " + " ".join(f'"{a}"' if a.startswith("LOG=") else shlex.quote(a) for a in argv)


class Reader:
    """Non-blocking reads of a pipe until a pattern shows up (the runner's reader thread)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.text = proc, ""
        self.sel = selectors.DefaultSelector()
        self.sel.register(proc.stdout, selectors.EVENT_READ)

    def expect(self, pattern: str, timeout: float = 60) -> str:
        end = time.monotonic() + timeout
        while not re.search(pattern, self.text):
            left = end - time.monotonic()
            assert left > 0, f"no {pattern!r} in:\n{self.text[-2000:]}"
            if self.sel.select(min(left, 0.5)):
                data = os.read(self.proc.stdout.fileno(), 65536)
                assert data, f"EOF before {pattern!r}:\n{self.text[-2000:]}"
                self.text += data.decode(errors="replace")
        return self.text


@pytest.fixture
def refguest_bin(refguest_elf) -> Path:
    path = refguest_elf.with_name("refguest.bin")  # built beside the ELF (objcopy -O binary)
    assert path.exists() and path.read_bytes()[:4] != b"\x7fELF"
    return path


def test_runner_drives_justrun_through_pipes_and_ends_it_with_sigterm(refguest_bin, shim_dir, tmp_path):
    initrd = tmp_path / "riscv64.img"
    initrd.write_bytes(b"dummy initrd\n" * 100)
    env = dict(os.environ, PATH=f"{shim_dir}:{os.environ['PATH']}")
    proc = subprocess.Popen(justrun_line(refguest_bin, initrd, tmp_path / "serial.out"), shell=True, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        out = Reader(proc)
        booted = out.expect("ref> ")
        assert "OpenSBI" not in booted  # emu, not a real QEMU further down PATH
        assert "emu: warning" not in booted  # stderr merged into the console stream: -device e1000e is modelled
        assert 'bootargs "LOG=warn ROOTPROC=/bin/busybox?sh"' in booted  # the shell's quotes are gone
        time.sleep(3)  # the runner sleeps 5 s before its first line: the guest idles meanwhile
        proc.stdin.write(b"echo zcore-tests\n")
        proc.stdin.flush()
        out.expect(r"zcore-tests\s+ref> ")
        os.killpg(os.getpgid(proc.pid), signal.SIGTERM)  # TestRunner.stop_qemu
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(os.getpgid(proc.pid), signal.SIGKILL)
            proc.wait()
    assert proc.returncode != 0  # killed, as QEMU would be
    assert "ref> " in (tmp_path / "serial.out").read_text()


@needs_binutils
def test_idle_time_passes_in_real_time_so_the_clock_never_leads_the_host(tmp_path):
    """The front end runs --realtime (QEMU's clock is the host's).  A guest that idles until a
    timer 1.5 s away must wake after 1.5 s of host time.  Before, the idle skip jumped the
    clock to the deadline at once and pacing then held every round back (0.05 s each) until
    the host caught up: zCore, whose idle deadline is tens of seconds away, took seconds per
    command through zcore-tests' pipes and timed out on every case."""
    elf = build("""
main:
    rdtime s1
    li t0, 15000000         # 1.5 s at 10 MHz
    add a0, s1, t0
    li a7, 0x54494D45       # SBI TIME set_timer
    li a6, 0
    ecall
    li t0, 0x20             # sie.STIE
    csrs sie, t0
    csrsi sstatus, 2
1:  la t0, rec
    ld t0, 0(t0)
    bnez t0, 1f
    wfi
    j 1b
1:  EXIT_PASS
""", tmp_path)
    start = time.monotonic()
    proc = subprocess.Popen(emu_cmd("qemu-system-riscv64", "-kernel", str(elf), "-nographic", "-serial", "mon:stdio"),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)  # a pipe that stays open
    try:
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.stdin.close()
    wall = time.monotonic() - start
    assert 1.5 <= wall < 15, wall


def test_mon_stdio_escape_keys_and_plain_stdio_without_them(refguest_elf, shim_dir, tmp_path):
    """xtask's `-serial mon:stdio`: Ctrl-A h lists the keys, Ctrl-A c says there is no monitor
    (QEMU would switch to it), Ctrl-A x quits.  A plain `-serial stdio` is no mux in QEMU:
    Ctrl-A goes to the guest like any other byte."""
    initrd = tmp_path / "riscv64.img"
    initrd.write_bytes(b"dummy initrd\n" * 100)
    child = spawn("shim", substitute(XTASK, refguest_elf, initrd, tmp_path), shim_dir)
    try:
        child.expect("ref> ")
        child.send("\x01h")
        child.expect(r"C-a x +exit emulator")
        child.send("\x01c")
        child.expect("emu: no QEMU monitor on this console")
        child.send("\x01x")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    child = spawn("shim", ["-kernel", str(refguest_elf), "-display", "none", "-serial", "stdio"], shim_dir)
    try:
        child.expect("ref> ")
        child.send("\x01x")  # two bytes for the guest's shell, not a quit
        child.sendline("")
        child.expect("unknown command")
        assert child.isalive()
        poweroff(child)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
