"""A lost wake-up on the reference guest, found by going backwards (issue 20, acceptance 4).

With `bug=lostwake` hart 0 submits a system call with a placeholder waker (`no_waker`)
and registers the real one (`ref_wake`) only after it has checked that the call is not
done yet (kernel/offload.c). When hart 1 completes the call and calls the waker between
the check and the registration, the task stays parked for good. `stress` (null calls with
pseudo-random pauses) runs into it after some ten thousand calls, at the same call every
run. The test stops where the placeholder is called and four timer ticks later (where the
README's example presses Ctrl-C), then asks gdb, going backwards:
who registered the waker (hart 0, after), who set `completed` (hart 1, before), who read
it (hart 0, before that), and whether anything woke the task after (no).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pexpect
import pytest

from tests.conftest import emu_cmd
from tests.debug.test_reverse import ReverseEmu

GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")
TASK = "tasks[1]"  # the shell is tasks[0]; `stress` (pid 2) is the next task slot
REQ = f"{TASK}.req"


def _position(text: str) -> tuple[int, int, int, int, int]:
    """`monitor when`'s position as a sortable (segment, round, hart, bytes, pc): in a round
    the harts run in id order, so this is the order of execution."""
    m = re.search(r"position (\d+):(\d+):(\d+):(\d+):(0x[0-9a-f]+) ", text)
    assert m, text
    return tuple(int(x, 0) for x in m.groups())  # type: ignore[return-value]


class Session:
    """emu running `stress` with the planted bug under gdb (interactive: answers decide)."""

    leftovers = ReverseEmu.leftovers  # the processes whose command line holds self.marker

    def __init__(self, elf: Path) -> None:
        self.marker = f"300.{uuid.uuid4().int % 10**9:09d}"  # a --timeout that finds every process of this run
        self.emu = subprocess.Popen(
            emu_cmd("run", "--smp", "2", "-m", "256M", "--kernel", str(elf), "--append", "offload=poll bug=lostwake",
                    "--timeout", self.marker, "--gdb", "127.0.0.1:0", "--gdb-wait", "--snapshot-every", "10"),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.emu.stderr.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        self.emu.stdin.write(b"stress 100000\n")  # all the input there is: read long before the race
        self.emu.stdin.close()
        self.emu.stdin = None  # communicate() at the end must not flush it
        self.gdb = pexpect.spawn(GDB, ["-q", "-nx", "-ex", "set style enabled off", "-ex", "set confirm off",
                                       "-ex", "set pagination off", "-ex", f"target remote 127.0.0.1:{m.group(1)}",
                                       str(elf)], timeout=240, env={**os.environ, "TERM": "dumb"}, dimensions=(100, 500))
        self.gdb.expect(r"\(gdb\) ")

    def cmd(self, line: str) -> str:
        self.gdb.sendline(line)
        self.gdb.expect(r"\(gdb\) ")
        return self.gdb.before.decode(errors="replace")

    def value(self, expr: str) -> str:
        m = re.search(r"\$\d+ = (.*)", self.cmd(f"p {expr}"))
        assert m, expr
        return m.group(1).strip()

    def back(self, point: str, stop: str) -> tuple[str, tuple[int, int, int, int, int]]:
        """Set one break/watchpoint, reverse-continue to it (gdb's report must match `stop`),
        and return the report and the position; the point is deleted again."""
        self.cmd(point)
        out = self.cmd("reverse-continue")
        assert re.search(stop, out), out
        where = _position(self.cmd("monitor when"))
        self.cmd("delete")
        return out, where

    def close(self) -> tuple[int, bytes]:
        try:
            self.gdb.sendline("kill")
            self.gdb.expect(r"\(gdb\) ")
            self.gdb.sendline("quit")
            self.gdb.expect(pexpect.EOF)
        finally:
            self.gdb.close()
        try:
            out, _ = self.emu.communicate(timeout=60)
        finally:
            self.emu.kill()
        assert self.leftovers() == [], "snapshot processes outlived the run"
        return self.emu.returncode, out


def test_reverse_continue_finds_the_interleaving_that_lost_a_wake_up(refguest_elf):
    s = Session(refguest_elf)
    try:
        # Run until stress hangs: the placeholder waker is called on hart 1 (a call that
        # hart 0 checks after its completion resumes at once; the one it checked before
        # stays parked), then four timer ticks more, as a user waits before Ctrl-C.
        for _ in range(10):
            s.cmd("break no_waker")
            assert re.search(r"Thread 2 hit Breakpoint \d+, no_waker \(req=0x[0-9a-f]+ <tasks\+760>\)",
                             s.cmd("continue"))
            seq = int(s.value("req->seq"))
            s.cmd("delete")
            s.cmd("tbreak timer_tick")
            for _ in range(4):
                assert "timer_tick" in s.cmd("continue")
                s.cmd("tbreak timer_tick")
            s.cmd("delete")
            if s.value(f"(enum tstate){TASK}.state") == "T_BLOCKED" and int(s.value(f"{REQ}.seq")) == seq:
                break
        else:
            pytest.fail("stress did not hang")
        stop = _position(s.cmd("monitor when"))

        # The hang: parked, its call completed, the real waker registered.
        assert s.value(f"{REQ}.completed") == "1"
        assert "<ref_wake>" in s.value(f"{REQ}.waker")

        # Backwards, one question at a time. Who registered the waker: hart 0, in park_task.
        out, registered = s.back(f"watch -l {REQ}.waker", r"Thread 1 hit Hardware watchpoint \d+")
        assert "in park_task" in out, out
        assert re.search(r"Old value = .*<ref_wake>\s+New value = .*<no_waker>", out), out

        # Before that, hart 1 read the waker the request carried then: the placeholder.
        out, called = s.back(f"rwatch -l {REQ}.waker", r"Thread 2 hit Hardware read watchpoint \d+")
        assert "finish (status=" in out and re.search(r"Value = .*<no_waker>", out), out

        # Who completed the call: hart 1, in ref_complete, stopped on the storing instruction.
        out, completed = s.back(f"watch -l {REQ}.completed", r"Thread 2 hit Hardware watchpoint \d+")
        assert "in ref_complete" in out and re.search(r"Old value = 1\s+New value = 0", out), out
        store = re.search(r"=> (0x[0-9a-f]+) <ref_complete\+\d+>:\s+(amoswap\.d|amoor\.d|sd)\s", s.cmd("x/i $pc"))
        assert store and completed[4] == int(store.group(1), 16)  # the position names the store ...
        assert s.value(f"{REQ}.completed") == "0"  # ... not executed yet

        # Who looked at it before the write: hart 0, right after submitting, and saw 0.
        out, checked = s.back(f"rwatch -l {REQ}.completed", r"Thread 1 hit Hardware read watchpoint \d+")
        assert re.search(r"Value = 0\b", out), out
        assert "syscall_trap_lostwake" in s.cmd("bt 2")  # the load right after ref_submit returns

        # And the last ref_wake of all before the stop woke this task's previous call.
        _, woken = s.back("break ref_wake", r"hit Breakpoint \d+, ref_wake \(req=0x[0-9a-f]+ <tasks\+760>\)")
        assert int(s.value("req->seq")) == seq - 1
        assert woken < checked < completed < called < registered < stop
        assert [p[2] for p in (checked, completed, called, registered)] == [0, 1, 1, 0]  # the harts
    finally:
        code, out = s.close()
    assert b"stress: 20000 calls" in out and b"stress: 100000 calls" not in out
    assert code == 0
