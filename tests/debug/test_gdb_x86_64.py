"""The GDB stub on `--arch x86_64` against Debian's gdb-multiarch (i386:x86-64): two CPUs
as threads, a breakpoint on the AP, its registers, disassembly, a single step of one
thread, a write watchpoint that stops after the storing instruction."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.conftest import emu_cmd
from tests.cpu.x86_64.x86guest import START_CPU1, build, needs_x86

GDB = shutil.which("gdb-multiarch")
pytestmark = [needs_x86, pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")]

GUEST = START_CPU1 + """
1:  pause
    cmp qword ptr [rip + flag], 7
    jne 1b
    POWER_OFF
ap_main:
    mov r12, 0x1234
    .globl ap_work
ap_work:
    mov r13, 0x5678
    .globl ap_store
ap_store:
    mov qword ptr [rip + flag], 7
    .globl ap_after
ap_after:
2:  hlt
    jmp 2b
    .data
    .globl flag
flag: .quad 0
"""


def test_threads_breakpoint_registers_step_and_watchpoint(tmp_path):
    elf = build(GUEST, tmp_path)
    proc = subprocess.Popen(emu_cmd("run", "--arch", "x86_64", "--smp", "2", "--kernel", str(elf), "--timeout", "120",
                                    "--gdb", "127.0.0.1:0", "--gdb-wait"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = proc.stderr.readline().decode()
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        assert m, line
        args = [GDB, "-q", "-nx", "-batch", "-ex", "set architecture i386:x86-64", "-ex", "set confirm off",
                "-ex", f"target remote 127.0.0.1:{m.group(1)}"]
        for c in ("info threads", "break ap_work", "continue", "info threads", "p/x $r12", "p/x $rip",
                  "info registers eflags cs", "x/1i $pc", "stepi", "p/x $r13", "p/x $rip",
                  "watch *(long *)&flag", "continue", "p *(long *)&flag", "p/x $rip", "thread 1", "p/x $rip", "detach"):
            args += ["-ex", c]
        out = subprocess.run([*args, str(elf)], capture_output=True, text=True, timeout=90)
        text = out.stdout + out.stderr
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    syms = {n: int(a, 16) for a, n in re.findall(r"^([0-9a-f]+) \w (\w+)$",
                                                 subprocess.run(["nm", str(elf)], capture_output=True, text=True).stdout, re.M)}
    assert "Thread 2 hit Breakpoint 1" in text, text
    assert re.search(r"\* 2\s+Thread 2 \(hart1 long CPL0", text), text
    assert re.search(r"\n  1\s+Thread 1 \(hart0 long CPL0", text), text
    values = re.findall(r"\$\d+ = (\S+)", text)
    assert values[0] == "0x1234" and int(values[1], 16) == syms["ap_work"]
    assert re.search(r"cs\s+0x8", text)
    assert "movabs $0x5678,%r13" in text or "mov    $0x5678,%r13" in text
    assert values[2] == "0x5678" and int(values[3], 16) == syms["ap_store"]  # stepi ran one instruction
    assert "Hardware watchpoint 2" in text and "New value = 7" in text
    assert values[4] == "7"
    assert int(values[5], 16) == syms["ap_after"]  # stopped after the storing instruction, which is not run again
    assert code == 0


def test_a_watchpoint_on_read_modify_write_instructions_applies_each_once(tmp_path):
    elf = build("""
main:
    mov qword ptr [rip + counter], 0
    .globl rmw
rmw:
    lock inc qword ptr [rip + counter]
    add qword ptr [rip + counter], 10
    add qword ptr [rip + counter], 100
    POWER_OFF
    .data
    .globl counter
counter: .quad 0
""", tmp_path)
    proc = subprocess.Popen(emu_cmd("run", "--arch", "x86_64", "--kernel", str(elf), "--timeout", "120",
                                    "--gdb", "127.0.0.1:0", "--gdb-wait"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stderr.readline().decode())
        assert m
        args = [GDB, "-q", "-nx", "-batch", "-ex", "set architecture i386:x86-64", "-ex", "set confirm off",
                "-ex", f"target remote 127.0.0.1:{m.group(1)}", "-ex", "watch *(long *)&counter"]
        for _ in range(3):
            args += ["-ex", "continue", "-ex", "p *(long *)&counter"]
        out = subprocess.run([*args, "-ex", "detach", str(elf)], capture_output=True, text=True, timeout=90)
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    values = re.findall(r"\$\d+ = (\S+)", out.stdout)
    assert values == ["1", "11", "111"], out.stdout + out.stderr  # no instruction ran twice
    assert code == 0
