"""The GDB stub against Debian's gdb-multiarch and a raw protocol client (issue 6)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
from pathlib import Path

import pexpect
import pytest

from emu.debug.rsp import PacketReader, frame
from tests.conftest import emu_cmd

GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")


class Emu:
    """emu with a GDB stub on a free port, halted before the first instruction."""

    def __init__(self, elf: Path, *extra: str) -> None:
        self.proc = subprocess.Popen(emu_cmd("run", "--smp", "2", "--kernel", str(elf), "--append", "offload=ipi",
                                             "--timeout", "120", "--gdb", "127.0.0.1:0", *extra),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        self.port = int(m.group(1))

    def type(self, text: bytes) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def finish(self) -> tuple[int, bytes]:
        try:
            out, _ = self.proc.communicate(timeout=60)
        finally:
            self.proc.kill()
        return self.proc.returncode, out


def gdb_batch(elf: Path, port: int, *commands: str) -> str:
    args = [GDB, "-q", "-nx", "-batch", "-ex", "set architecture riscv:rv64", "-ex", "set confirm off",
            "-ex", f"target remote 127.0.0.1:{port}"]
    for c in commands:
        args += ["-ex", c]
    res = subprocess.run([*args, str(elf)], capture_output=True, text=True, timeout=90)
    return res.stdout + res.stderr


def test_threads_breakpoint_backtrace_and_per_thread_step(refguest_elf):
    emu = Emu(refguest_elf, "--gdb-wait")
    out = gdb_batch(refguest_elf, emu.port, "info threads", "break ref_wake", "continue", "info threads", "bt",
                    "info registers sepc", "thread 1", "bt", "p/x $pc", "thread 2", "p/x $pc", "stepi", "p/x $pc",
                    "thread 1", "p/x $pc", "detach")
    emu.type(b"poweroff\n")
    code, _ = emu.finish()
    assert "Thread 2 hit Breakpoint 1, ref_wake" in out, out
    first_info, after = out.split("Thread 2 hit Breakpoint 1", 1)
    assert "Thread 2" not in first_info.split("Breakpoint 1 at")[0]  # hart 1 not started yet: one thread
    assert re.search(r"\* 2\s+Thread 2 \(hart1 S-mode", after), after
    assert re.search(r"\n  1\s+Thread 1 \(hart0 S-mode", after), after
    assert "#0  ref_wake" in after and "server_main" in after
    assert re.search(r"sepc\s+0x", after)
    pcs = re.findall(r"\$\d+ = (0x[0-9a-f]+)", after)
    t1_before, t2_before, t2_after, t1_after = (int(p, 16) for p in pcs)
    assert t2_after != t2_before  # stepi advanced thread 2 ...
    assert t1_after == t1_before  # ... and only thread 2
    assert code == 0


def test_write_watchpoint_on_the_submission_queue(refguest_elf):
    emu = Emu(refguest_elf, "--gdb-wait")
    out = gdb_batch(refguest_elf, emu.port, "watch ref_sq.head", "continue", "bt 1", "info threads", "detach")
    emu.type(b"poweroff\n")
    code, _ = emu.finish()
    assert "Hardware watchpoint 1: ref_sq.head" in out
    assert re.search(r"Thread 1 hit Hardware watchpoint 1: ref_sq.head", out), out
    assert "in ref_submit" in out
    assert code == 0


def test_break_on_wake_stops_hart1_at_the_wake(refguest_elf):
    emu = Emu(refguest_elf, "--gdb-wait")
    out = gdb_batch(refguest_elf, emu.port, "monitor break-on wake", "continue", "bt 1", "monitor harts", "detach")
    emu.type(b"poweroff\n")
    code, _ = emu.finish()
    assert "will stop on wake" in out
    assert re.search(r"\[Switching to Thread 2\]", out), out
    assert "#0  ref_wake" in out
    assert "hart1 S-mode" in out and "<ref_wake>" in out
    assert code == 0


def test_ctrl_c_stops_and_detach_lets_the_guest_run_on(refguest_elf):
    emu = Emu(refguest_elf)
    gdb = pexpect.spawn(GDB, ["-q", "-nx", "-ex", "set architecture riscv:rv64", "-ex", "set confirm off",
                              "-ex", f"target remote 127.0.0.1:{emu.port}", str(refguest_elf)], timeout=30)
    try:
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("continue")
        gdb.expect("Continuing")
        gdb.sendcontrol("c")
        gdb.expect("received signal SIGINT")
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("detach")
        gdb.expect("Detaching|detached")
        gdb.sendline("quit")
        gdb.expect(pexpect.EOF)
    finally:
        gdb.close()
    emu.type(b"hello\npoweroff\n")
    code, out = emu.finish()
    assert b"hello, world" in out or b"hello" in out
    assert code == 0


def _client(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    return s


def _exchange(s: socket.socket, raw: bytes) -> list[tuple[str, bytes]]:
    s.sendall(raw)
    reader = PacketReader()
    got: list[tuple[str, bytes]] = []
    while not any(k == "packet" for k, _ in got) and not any(k == "nak" for k, _ in got):
        data = s.recv(4096)
        if not data:
            break
        got += reader.feed(data)
    return got


def test_bad_packets_unknown_packets_unmapped_memory_and_a_second_client(refguest_elf):
    emu = Emu(refguest_elf, "--gdb-wait")
    s = _client(emu.port)
    try:
        assert ("nak", b"") in _exchange(s, b"$g#00")  # bad checksum
        got = _exchange(s, frame(b"qFrobnicate"))
        assert ("packet", b"") in got  # unknown: empty reply
        got = _exchange(s, frame(b"m40000000,10"))
        assert any(k == "packet" and d.startswith(b"E") for k, d in got)  # nothing mapped there
        got = _exchange(s, frame(b"mzz,10"))
        assert any(k == "packet" and d.startswith(b"E") for k, d in got)
        second = _client(emu.port)
        assert b"E01" in second.recv(100)  # refused cleanly
        second.close()
        got = _exchange(s, frame(b"g"))
        assert any(k == "packet" and len(d) == 33 * 16 for k, d in got)  # still alive
        _exchange(s, frame(b"D"))
    finally:
        s.close()
    emu.type(b"poweroff\n")
    code, _ = emu.finish()
    assert code == 0



def test_timeout_and_signals_end_a_run_held_halted_by_a_silent_debugger(refguest_elf):
    """--timeout bounds every run: a debugger that holds the machine halted and says nothing
    does not keep it alive past it (nor would a signal: the halted stub's waits wake up to
    let the run loop see either; Python retries a select() a signal interrupts)."""
    from emu.errors import EXIT_TIMEOUT

    emu = Emu(refguest_elf, "--gdb-wait", "--timeout", "2")
    with socket.create_connection(("127.0.0.1", emu.port)) as s:
        s.sendall(frame(b"?"))
        reader = PacketReader()
        while not any(kind == "packet" for kind, _ in reader.feed(s.recv(4096))):
            pass
        code, _ = emu.finish()  # the client is still connected, silent
    assert code == EXIT_TIMEOUT
