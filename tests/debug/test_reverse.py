"""Reverse execution (issue 20) against Debian's gdb-multiarch on the reference guest.

The guest's first system calls (the shell's prompt) go through the offload path without
any console input: hart 0 submits, hart 1 executes and sets the request's completion flag
(ref_complete), then wakes the task, which hart 0 resumes (ref_resume).
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
from emu.debug.position import Position
from tests.debug.test_gdb import gdb_batch

GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")
FLAG = "((struct ref_req *)$a0)->completed"


class ReverseEmu:
    """emu with reverse debugging, halted before the first instruction, no console input."""

    def __init__(self, elf: Path, smp: int = 2, *extra: str, stdin: int = subprocess.DEVNULL) -> None:
        self.marker = f"120.{uuid.uuid4().int % 10**9:09d}"  # a --timeout that finds every process of this run
        self.proc = subprocess.Popen(
            emu_cmd("run", "--smp", str(smp), "--kernel", str(elf), "--append", "offload=ipi",
                    "--timeout", self.marker, "--gdb", "127.0.0.1:0", "--gdb-wait", "--snapshot-every", "1", *extra),
            stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line = self.proc.stderr.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        self.port = int(m.group(1))

    def finish(self) -> tuple[int, bytes, bytes]:
        try:
            out, err = self.proc.communicate(timeout=60)
        finally:
            self.proc.kill()
        assert self.leftovers() == [], "snapshot processes outlived the run"
        return self.proc.returncode, out, err

    def leftovers(self) -> list[int]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if self.marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                pass
        return found


def _spawn_gdb(elf: Path, port: int) -> pexpect.spawn:
    """An interactive gdb (its answers decide the next command), plain text."""
    return pexpect.spawn(GDB, ["-q", "-nx", "-ex", "set style enabled off", "-ex", "set architecture riscv:rv64",
                               "-ex", "set confirm off", "-ex", "set pagination off",
                               "-ex", f"target remote 127.0.0.1:{port}", str(elf)],
                         timeout=60, env={**os.environ, "TERM": "dumb"})


class Gdb:
    """An interactive gdb on a run: each command's output, `monitor when`'s position, and a
    detach that lets the run go on."""

    PROMPT = r"\(gdb\) "

    def __init__(self, elf: Path, port: int) -> None:
        self.p = _spawn_gdb(elf, port)
        self.p.expect(self.PROMPT)

    def cmd(self, line: str) -> str:
        self.p.sendline(line)
        self.p.expect(self.PROMPT)
        return self.p.before.decode(errors="replace")

    def when(self) -> str:
        self.p.sendline("monitor when")
        self.p.expect(r"position (\S+) \(")  # the whole position (output may arrive in pieces)
        pos = self.p.match.group(1).decode()
        self.p.expect(self.PROMPT)
        return pos

    def detach(self) -> None:
        self.cmd("detach")
        self.p.sendline("quit")
        self.p.expect(pexpect.EOF)

    def close(self) -> None:
        self.p.close()


def _registers(text: str) -> list[str]:
    return [line for line in text.splitlines() if re.match(r"^(ra|sp|gp|tp|t\d|fp|s\d+|a\d|pc)\s+0x", line)]


@pytest.mark.parametrize("smp", [2, 4])
def test_reverse_continue_finds_the_completion_write_on_the_other_hart(refguest_elf, smp):
    emu = ReverseEmu(refguest_elf, smp)
    out = gdb_batch(refguest_elf, emu.port, "break ref_resume", "continue", "echo @@P\\n", "monitor when",
                    f"watch -l {FLAG}", "reverse-continue", "echo @@RC\\n", "info threads", "x/i $pc", f"p {FLAG}",
                    "echo @@R1\\n", "info registers", "reverse-stepi", "echo @@RS\\n", "p/x $pc", "stepi",
                    "echo @@R2\\n", "info registers", "echo @@W\\n", "stepi", f"p {FLAG}", "kill")
    code, _, _ = emu.finish()
    assert "Thread 1 hit Breakpoint 1, ref_resume" in out, out
    _, after = out.split("@@P", 1)
    assert re.search(r"position 1:\d+:0:\d+:0x[0-9a-f]+ ", after), after
    rc, rest = after.split("@@RC", 1)
    assert "Thread 2 hit Hardware watchpoint 2" in rc, out  # hart 1 wrote it, hart 0 waits for it
    assert "in ref_complete" in rc
    assert re.search(r"\* 2\s+Thread 2 \(hart1 S-mode", rest), rest
    store = re.search(r"=> (0x[0-9a-f]+) <ref_complete\+\d+>:\s+(amoswap\.d|amoor\.d|sd)\s", rest)
    assert store, rest  # stopped on the writing instruction itself ...
    before_write = rest.split("@@R1", 1)[0]
    assert re.search(r"\$\d+ = 0\n", before_write), before_write  # ... before it wrote 1
    regs1 = _registers(rest.split("@@R1", 1)[1].split("@@RS", 1)[0])
    stepped_back = rest.split("@@RS", 1)[1].split("@@R2", 1)[0]
    assert int(re.search(r"\$\d+ = (0x[0-9a-f]+)", stepped_back).group(1), 16) < int(store.group(1), 16)
    regs2 = _registers(rest.split("@@R2", 1)[1].split("@@W", 1)[0])
    assert len(regs1) == 32 and regs1 == regs2  # reverse-stepi then stepi: the same state
    assert re.search(r"\$\d+ = 1\n", rest.split("@@W", 1)[1]), rest  # the write, forward again
    assert code == 0


def test_when_goto_and_reverse_finish(refguest_elf):
    emu = ReverseEmu(refguest_elf, 2)
    gdb = _spawn_gdb(refguest_elf, emu.port)
    prompt = r"\(gdb\) "

    def cmd(line: str) -> str:
        gdb.sendline(line)
        gdb.expect(prompt)
        return gdb.before.decode(errors="replace")
    try:
        gdb.expect(prompt)
        cmd("break ref_resume")
        cmd("continue")  # the prompt's write has completed
        first = re.search(r"position (\S+)", cmd("monitor when")).group(1)
        cmd("break ref_submit")
        assert "ref_submit" in cmd("continue")  # the shell's read is submitted
        second = re.search(r"position (\S+)", cmd("monitor when")).group(1)
        assert first.split(":")[0] != second.split(":")[0]  # two resumes: two segments
        assert f"now at {first}" in cmd(f"monitor goto {first}")
        cmd("maint flush register-cache")
        assert "#0  ref_resume" in cmd("bt 1")
        assert f"position {first}" in cmd("monitor when")
        assert "later segment" in cmd(f"monitor goto {second}")  # that future was left behind
        assert "bad position" in cmd("monitor goto nowhere")
        cmd("delete")
        cmd("break ref_submit")
        assert "ref_submit" in cmd("continue")
        cmd("delete")
        cmd(f"watch -l {FLAG}")
        assert "syscall_trap" in cmd("reverse-continue")  # hart 0 clears it for the read
        assert "ref_complete" in cmd("reverse-continue")  # hart 1 set it for the write
        finished = cmd("reverse-finish")
        assert "finish (" in finished, finished  # back in the caller, before the call
        assert "ref_complete(req)" in finished or "103" in finished
        assert "history" not in cmd("reverse-next")
        gdb.sendline("kill")
        gdb.expect(prompt)
        gdb.sendline("quit")
        gdb.expect(pexpect.EOF)
    finally:
        gdb.close()
    code, _, _ = emu.finish()
    assert code == 0


def _session(elf: Path, trace: Path, go_back: bool) -> tuple[bytes, bytes]:
    """Boot to the first ref_resume under gdb, optionally go back and forth in time, then
    detach and let the guest idle out; the console output and the trace file."""
    emu = ReverseEmu(elf, 2, "--trace", str(trace))
    gdb = _spawn_gdb(elf, emu.port)
    try:
        gdb.expect(r"\(gdb\) ")
        for line in ["break ref_resume", "continue"]:
            gdb.sendline(line)
            gdb.expect(r"\(gdb\) ")
        if go_back:
            gdb.sendline("monitor when")
            gdb.expect(r"position (\S+) \(")  # the whole position (output may arrive in pieces)
            here = gdb.match.group(1).decode()
            gdb.expect(r"\(gdb\) ")
            for line in [f"watch -l {FLAG}", "reverse-continue", "reverse-stepi", "delete", f"monitor goto {here}"]:
                gdb.sendline(line)
                gdb.expect(r"\(gdb\) ")
            assert f"now at {here}" in gdb.before.decode(errors="replace")
        gdb.sendline("delete")
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("detach")
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("quit")
        gdb.expect(pexpect.EOF)
    finally:
        gdb.close()
    code, out, _ = emu.finish()
    assert code == 125  # idle after the end of (empty) input, as without a debugger
    return out, trace.read_bytes()


def test_going_back_and_returning_leaves_console_and_trace_byte_identical(refguest_elf, tmp_path):
    plain_out, plain_trace = _session(refguest_elf, tmp_path / "plain.json", go_back=False)
    back_out, back_trace = _session(refguest_elf, tmp_path / "back.json", go_back=True)
    assert b"ref> " in plain_out
    assert back_out == plain_out  # re-executed output is not shown twice, nothing is lost
    assert back_trace == plain_trace


def test_reverse_needs_snapshots_and_refuses_what_it_cannot_replay(refguest_elf):
    res = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--snapshot-every", "1", "--timeout", "5"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "needs --gdb" in res.stderr
    res = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--gdb", "127.0.0.1:0", "--snapshot-every", "1",
                                 "--net", "user", "--timeout", "5"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "network" in res.stderr, res.stderr
    res = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--gdb", "127.0.0.1:0", "--record", "x.rec",
                                 "--timeout", "5"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "--record: not with --gdb" in res.stderr and res.stderr.count("\n") == 1, res.stderr


def _replay_session(elf: Path, rec: Path) -> tuple[dict[str, str], bytes, int]:
    """Debug a replayed run (snapshots at resumes only): stop where the shell asks to spawn
    the first typed command (the first stop: until there the replay is exact), then at the
    next resume of an offloaded call, go back to its completion write, then to the first
    stop (re-executed from the start, the typed bytes given again from the file), then let
    the replay run to its end."""
    emu = ReverseEmu(elf, 2, "--replay", str(rec), "--snapshot-every", "0")
    gdb = Gdb(elf, emu.port)
    seen: dict[str, str] = {}
    try:
        gdb.cmd("break syscall.c:98")  # the shell's spawn call: no stop before the typed line
        seen["spawn"] = gdb.cmd("continue")
        seen["first"] = first = gdb.when()
        for line in ["delete", "break ref_resume", "continue", "delete", f"watch -l {FLAG}"]:
            gdb.cmd(line)
        seen["back"] = gdb.cmd("reverse-continue")
        seen["insn"] = gdb.cmd("x/i $pc")
        seen["second"] = gdb.when()
        gdb.cmd("delete")
        seen["goto"] = gdb.cmd(f"monitor goto {first}")
        gdb.cmd("maint flush register-cache")
        seen["frame"] = gdb.cmd("bt 1")
        gdb.detach()
    finally:
        gdb.close()
    code, console, err = emu.finish()
    seen["stderr"] = err.decode(errors="replace")
    return seen, console, code


def test_a_replayed_run_is_debugged_backwards_with_its_inputs_from_the_file(refguest_elf, tmp_path):
    from tests.test_record import typed_run

    rec = tmp_path / "run.rec"
    recorded = typed_run(emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi",
                                 "--timeout", "120", "--exact-stops", "--record", str(rec)), "ref> ",
                         ["echo one two", "echo three"], seed=4)  # exact stops, as reverse debugging has them
    first, console, code = _replay_session(refguest_elf, rec)
    assert "stops are exact" not in first["stderr"] and "cut a scheduling round" in first["stderr"], first
    assert "hit Breakpoint 1, sys_dispatch" in first["spawn"], first
    assert "Hardware watchpoint" in first["back"], first
    assert re.search(r"=> 0x[0-9a-f]+ <ref_complete\+\d+>", first["insn"]), first
    assert f"now at {first['first']}" in first["goto"], first
    assert "#0  sys_dispatch" in first["frame"], first  # reached again: the typed line was given again
    assert code == 0, first  # the recorded poweroff, typed at its virtual time
    assert console == recorded  # the same console, although the debugger cut rounds
    second, _, _ = _replay_session(refguest_elf, rec)
    assert (first["first"], first["second"]) == (second["first"], second["second"])  # the replay repeats exactly


def test_typed_input_is_given_again_when_going_back_past_it(refguest_elf):
    """Console input typed during a live debugged run is journaled: reverse-continue finds
    the guest's console interrupts for the typed bytes (re-executing across them from
    snapshots taken before), and a goto forward again reaches the spawn of the typed line."""
    emu = ReverseEmu(refguest_elf, 2, stdin=subprocess.PIPE)
    gdb = Gdb(refguest_elf, emu.port)
    try:
        gdb.cmd("break syscall.c:98")  # the shell spawns a typed command
        gdb.p.sendline("continue")
        emu.proc.stdin.write(b"echo one two\n")  # typed while the guest runs (a pipe: one byte a round)
        emu.proc.stdin.flush()
        gdb.p.expect(Gdb.PROMPT)
        assert "hit Breakpoint 1, sys_dispatch" in gdb.p.before.decode(errors="replace")
        spawn = gdb.when()
        gdb.cmd("delete")
        gdb.cmd("break console_rx_irq")
        assert "hit Breakpoint 2, console_rx_irq" in gdb.cmd("reverse-continue")  # the newline's interrupt
        last = gdb.when()
        assert "hit Breakpoint 2, console_rx_irq" in gdb.cmd("reverse-continue")  # the byte before it
        before = gdb.when()
        assert Position.parse(before) < Position.parse(last) < Position.parse(spawn)
        gdb.cmd("delete")
        assert f"now at {spawn}" in gdb.cmd(f"monitor goto {spawn}")  # forward across the typed bytes again
        gdb.cmd("maint flush register-cache")
        gdb.cmd(f"thread {Position.parse(spawn).hart + 1}")  # gdb keeps the thread it had selected
        assert "#0  sys_dispatch" in gdb.cmd("bt 1")
        gdb.detach()
    finally:
        gdb.close()
    emu.proc.stdin.write(b"poweroff\n")
    emu.proc.stdin.flush()
    code, console, err = emu.finish()
    assert code == 0, err.decode()[-2000:]
    assert b"ref> echo one two\r\none two\r\nref> poweroff" in console, console  # shown once, in order
