"""What a debugger step runs into (issues 18 and 20), against Debian's gdb-multiarch on small
two-hart guests, riscv64 and x86_64:

- GDB resumes from a breakpoint by stepping the instruction under it (breakpoint removed):
  when that instruction stores to a watched address, the stop is the watchpoint's;
- with `monitor step-others on`, a `stepi` that resumes the other threads steps every
  hart: a store by another hart is that hart's watchpoint hit;
- a continue of one thread (scheduler locking) leaves the others where they are, also the
  one that stopped at a breakpoint;
- going backwards, a watchpoint stops at the storing instruction, the store undone;
- a watchpoint on a virtual address fires (Unicorn matches memory hooks against
  physical addresses: the stub translates GDB's addresses);
- a watchpoint set once the code that stores has run (and been translated) fires;
- `reverse-stepi` with GDB's defaults (every thread resumes) goes back one instruction of
  the selected thread, even when GDB first steps another thread back over its breakpoint.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import emu_cmd
from tests.cpu.x86_64.x86guest import START_CPU1, USER_ALIAS
from tests.cpu.x86_64.x86guest import build as build_x86
from tests.cpu.x86_64.x86guest import needs_x86
from tests.guest import build as build_riscv
from tests.guest import START_HART1, needs_binutils

GDB = shutil.which("gdb-multiarch")
pytestmark = pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")

IPI = 0x735049
FLAG = "((struct ref_req *)$a0)->completed"  # the reference guest's request completion flag

# hart 0 stores 1 then 2 to `flag`; hart 1 stores 5 to `flag1`; then both spin
RISCV_STORES = START_HART1 + f"""
    la t0, flag
    li t1, 1
    .globl store
store:
    sd t1, 0(t0)
    .globl store2
store2:
    li t1, 2
    sd t1, 0(t0)
    .globl h0_loop
h0_loop:
    nop
    j h0_loop
hart1:
    la t0, flag1
    li t1, 5
    .globl h1_store
h1_store:
    sd t1, 0(t0)
    .globl h1_loop
h1_loop:
    nop
    j h1_loop
    .data
    .globl flag
flag: .dword 0
    .globl flag1
flag1: .dword 0
    .text
"""

X86_STORES = START_CPU1 + """
    .globl store
store:
    mov qword ptr [rip + flag], 1
    .globl store2
store2:
    nop
    mov qword ptr [rip + flag], 2
    .globl h0_loop
h0_loop:
    nop
    jmp h0_loop
ap_main:
    mov r12, 5
    .globl h1_store
h1_store:
    mov qword ptr [rip + flag1], r12
    .globl h1_loop
h1_loop:
    nop
    jmp h1_loop
    .data
    .globl flag
flag: .quad 0
    .globl flag1
flag1: .quad 0
"""

# one hart counts in `flag`
RISCV_LOOP = """
main:
    la t0, flag
    li t1, 0
    .globl loop
loop:
    addi t1, t1, 1
    sd t1, 0(t0)
    .globl back
back:
    j loop
    .data
    .globl flag
flag: .dword 0
    .text
"""

# a store through an alias of `flag` (riscv: Sv39 gigapage 0x1_0000_0000 -> 0x8000_0000;
# x86: the prelude's user alias), in a loop
RISCV_ALIAS = """
main:
    la t0, pt_root
    li t1, 0x80000000
    srli t1, t1, 2
    ori t2, t1, 0xCF
    sd t2, 16(t0)
    sd t2, 32(t0)
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    la t0, flag
    li t1, 0x80000000
    sub t0, t0, t1
    li t1, 0x100000000
    add t0, t0, t1
    li t1, 0
    .globl loop
loop:
    addi t1, t1, 1
    sd t1, 0(t0)
    j loop
    .data
    .globl flag
flag: .dword 0
    .text
"""
RISCV_ALIAS_BASE = 0x1_0000_0000 - 0x8000_0000

X86_ALIAS = f"""
main:
    lea rbx, [rip + flag]
    add rbx, {USER_ALIAS}
    xor rcx, rcx
    .globl loop
loop:
    inc rcx
    mov qword ptr [rbx], rcx
    jmp loop
    .data
    .globl flag
flag: .quad 0
"""

# hart 1 enables its software interrupt, says it is ready and waits in WFI; hart 0 sends
# it an IPI and counts in s0.  Hart 1's next turn starts in the trap handler (`trap`): its
# previous instruction (the WFI) lies rounds before hart 0's last one.
RISCV_WAKE = START_HART1 + f"""
    la t0, ready
1:  ld t1, 0(t0)
    beqz t1, 1b
    li a0, 2
    li a1, 0
    SBI {IPI}, 0
    li s0, 0
    .globl h0_loop
h0_loop:
    addi s0, s0, 1
    .globl h0_jump
h0_jump:
    j h0_loop
hart1:
    li t0, 2
    csrs sie, t0
    csrsi sstatus, 2
    la t0, ready
    li t1, 1
    sd t1, 0(t0)
1:  wfi
    j 1b
    .data
ready: .dword 0
    .text
"""


def debug(elf: Path, arch: str, commands: list[str], *extra: str) -> str:
    """Run `elf` on two harts under the stub (halted before the first instruction), drive
    it with a gdb batch, kill it; gdb's output."""
    proc = subprocess.Popen(emu_cmd("run", "--arch", arch, "--smp", "2", "--kernel", str(elf), "--timeout", "120",
                                    "--gdb", "127.0.0.1:0", "--gdb-wait", *extra),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", proc.stderr.readline().decode())
        assert m
        gdb_arch = "riscv:rv64" if arch == "riscv64" else "i386:x86-64"
        args = [GDB, "-q", "-nx", "-batch", "-ex", f"set architecture {gdb_arch}", "-ex", "set confirm off",
                "-ex", f"target remote 127.0.0.1:{m.group(1)}"]
        for c in [*commands, "kill"]:
            args += ["-ex", c]
        res = subprocess.run([*args, str(elf)], capture_output=True, text=True, timeout=90)
        proc.wait(timeout=60)
    finally:
        proc.kill()
        proc.stderr.close()
    return res.stdout + res.stderr


def _where(out: str) -> list[str]:
    """The symbols `info symbol $pc` printed, in order."""
    return re.findall(r"^(\w+(?: \+ \d+)?) in section \.text", out, re.M)


BOTH = [pytest.param("riscv64", marks=needs_binutils), pytest.param("x86_64", marks=needs_x86)]


@pytest.mark.parametrize("arch", BOTH)
def test_a_store_under_a_breakpoint_is_a_watchpoint_hit(arch, tmp_path):
    elf = build_riscv(RISCV_STORES, tmp_path) if arch == "riscv64" else build_x86(X86_STORES, tmp_path)
    out = debug(elf, arch, ["break store", "continue", "watch *(long *)&flag", "echo @@\\n", "continue",
                            "info symbol $pc", "continue", "info symbol $pc"])
    assert "Thread 1 hit Breakpoint 1" in out, out
    first, second = out.split("@@", 1)[1].split("in section", 1)
    assert "Thread 1 hit Hardware watchpoint 2" in first and "Old value = 0\nNew value = 1" in first, out
    assert "Thread 1 hit Hardware watchpoint 2" in second and "Old value = 1\nNew value = 2" in second, out
    assert _where(out) == ["store2", "h0_loop"], out  # right after each storing instruction


@pytest.mark.parametrize("arch", BOTH)
def test_reverse_continue_stops_at_each_store_before_it_wrote(arch, tmp_path):
    """Backwards, a watchpoint stops at the storing instruction with the store undone
    (riscv: the stub stops after it and gdb steps back over it; x86: the stub stops
    before it), so each reverse-continue reaches the store before, and forward again the
    first store is hit once more."""
    elf = build_riscv(RISCV_STORES, tmp_path) if arch == "riscv64" else build_x86(X86_STORES, tmp_path)
    second = "store2 + 4" if arch == "riscv64" else "store2 + 1"
    out = debug(elf, arch, ["break h0_loop", "continue", "watch *(long *)&flag", "echo @@\\n", "reverse-continue",
                            "info symbol $pc", "reverse-continue", "info symbol $pc", "continue", "info symbol $pc"],
                "--snapshot-every", "1")
    after = out.split("@@", 1)[1]
    assert re.findall(r"Old value = (\d+)\nNew value = (\d+)", after) == [("2", "1"), ("1", "0"), ("0", "1")], out
    assert _where(after) == [second, "store", "store2"], out


@needs_x86
def test_a_store_by_another_hart_during_a_step_is_its_watchpoint_hit(tmp_path):
    """x86_64: GDB steps with `vCont;s:1;c` (riscv single-steps with a breakpoint and a
    continue: the rounds, where a watchpoint is any hart's)."""
    elf = build_x86(X86_STORES, tmp_path)
    out = debug(elf, "x86_64", ["break h1_store", "continue", "delete", "thread 1", "monitor step-others on",
                                "watch *(long *)&flag1", "echo @@\\n", "stepi", "info threads"])
    assert "Thread 2 hit Breakpoint 1" in out, out
    after = out.split("@@", 1)[1]
    assert "Thread 2 hit Hardware watchpoint 2" in after and "Old value = 0\nNew value = 5" in after, out
    assert re.search(r"\* 2\s+Thread 2 .* in h1_loop", after), out


@pytest.mark.parametrize("arch", BOTH)
def test_a_watchpoint_on_a_virtual_address_fires(arch, tmp_path):
    elf = build_riscv(RISCV_ALIAS, tmp_path) if arch == "riscv64" else build_x86(X86_ALIAS, tmp_path)
    alias = RISCV_ALIAS_BASE if arch == "riscv64" else USER_ALIAS
    out = debug(elf, arch, ["break loop", "continue", "delete", f"watch *(long *)({alias:#x} + (long)&flag)",
                            "continue", "continue"])
    assert "Old value = 0\nNew value = 1" in out and "Old value = 1\nNew value = 2" in out, out


@needs_binutils
def test_a_watchpoint_set_after_the_code_ran_fires(tmp_path):
    """With reverse debugging the engine's exact stops are on from the start: adding a
    watchpoint changes nothing else, and the loop's store, translated without memory
    callbacks, must be translated again."""
    elf = build_riscv(RISCV_LOOP, tmp_path)
    out = debug(elf, "riscv64", ["break back", "continue", "continue", "delete", "watch *(long *)&flag", "continue",
                                 "info symbol $pc"], "--snapshot-every", "1")
    assert "Old value = 2\nNew value = 3" in out, out
    assert _where(out) == ["back"], out


@needs_binutils
def test_a_continue_of_one_thread_leaves_the_thread_stopped_at_a_breakpoint(tmp_path):
    """GDB's scheduler locking continues thread 1 alone: thread 2, stopped at a
    breakpoint, must not execute the instruction there (it would store to flag1)."""
    elf = build_riscv(RISCV_STORES, tmp_path)
    out = debug(elf, "riscv64", ["break h1_store", "continue", "delete", "break h0_loop",
                                 "set scheduler-locking on", "thread 1", "continue", "echo @@\\n", "info threads",
                                 "p *(long *)&flag1"])
    assert "Thread 1 hit Breakpoint 2" in out, out
    after = out.split("@@", 1)[1]
    assert re.search(r"\n  2\s+Thread 2 .* in h1_store", after), out
    assert re.search(r"\$\d+ = 0\n", after), out


@needs_binutils
def test_reverse_stepi_with_gdb_defaults_steps_the_selected_thread_back_one_instruction(tmp_path):
    """Hart 1 stops at the first instruction of its turn; the selected thread 1 goes back
    one of its instructions, in the same round (GDB first steps thread 2 back over its
    breakpoint: to its WFI, rounds earlier), and a stepi comes back to the same state."""
    elf = build_riscv(RISCV_WAKE, tmp_path)
    out = debug(elf, "riscv64", ["break trap", "continue", "monitor when", "thread 1", "echo @@\\n",
                                 "info symbol $pc", "p $s0", "reverse-stepi", "monitor when", "info symbol $pc",
                                 "p $s0", "stepi", "info symbol $pc", "p $s0"], "--snapshot-every", "1")
    assert "Thread 2 hit Breakpoint 1" in out, out
    stop, back = re.findall(r"position (\d+):(\d+):(\d+):", out)
    assert back[:2] == stop[:2] and back[2] == "0", out  # hart 0, in the round hart 1 stopped in
    where = _where(out.split("@@", 1)[1])
    counts = re.findall(r"\$\d+ = \(void \*\) (0x[0-9a-f]+)", out)
    assert where == ["h0_loop", "h0_jump", "h0_loop"], out  # the jump back to the loop's addi
    assert counts[0] == counts[1] == counts[2] and int(counts[0], 16) > 0, out


@needs_binutils
def test_reverse_continue_with_gdb_defaults_after_a_step_over(tmp_path):
    """The same stop; reverse-continue to a breakpoint on thread 1's loop finds its last
    pass there, in the round hart 1 stopped in (not one before hart 1's WFI, where GDB's
    step-over of thread 2 took the machine first)."""
    elf = build_riscv(RISCV_WAKE, tmp_path)
    out = debug(elf, "riscv64", ["break trap", "continue", "monitor when", "thread 1", "break h0_jump",
                                 "reverse-continue", "monitor when"], "--snapshot-every", "1")
    stop, found = re.findall(r"position (\d+):(\d+):(\d+):", out)
    assert "Thread 1 hit Breakpoint 2, 0x" in out and " in h0_jump" in out, out
    assert found[:2] == stop[:2] and found[2] == "0", out


@needs_binutils
def test_reverse_stepi_on_the_thread_that_stopped_goes_back_every_time(tmp_path):
    """GDB steps the thread at the breakpoint back with its own step-over: each
    reverse-stepi goes one instruction further back (hart 1: the WFI's return, the WFI)."""
    elf = build_riscv(RISCV_WAKE, tmp_path)
    out = debug(elf, "riscv64", ["break trap", "continue", "monitor when", "reverse-stepi", "monitor when",
                                 "reverse-stepi", "monitor when"], "--snapshot-every", "1")
    from emu.debug.position import Position

    stop, first, second = (Position.parse(p) for p in re.findall(r"position (\S+) \(", out))
    assert second < first < stop and first.hart == second.hart == 1, out
    assert first.pc == second.pc + 4, out  # the WFI, then the instruction before it


def test_a_watchpoint_after_a_trap_in_the_same_slice_stops_right_after_the_store(refguest_elf):
    """Hart 0 clears the completion flag in syscall_trap (`sd zero`), in the slice in which
    it took the system call's trap: the stop must come right after that store."""
    from tests.debug.test_gdb import Emu, gdb_batch

    emu = Emu(refguest_elf, "--gdb-wait")
    out = gdb_batch(refguest_elf, emu.port, "break ref_resume", "continue", f"watch -l {FLAG}", "delete 1",
                    "continue", "echo @@\\n", "x/i $pc - 4", "detach")
    emu.type(b"poweroff\n")
    code, _ = emu.finish()
    assert "Old value = 1\nNew value = 0" in out, out
    assert re.search(r"<syscall_trap\+\d+>:\s+sd\s+zero,", out.split("@@", 1)[1]), out
    assert code == 0
