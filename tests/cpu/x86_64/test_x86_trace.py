"""Tracing on x86_64: system calls (seen at the kernel's `syscall` entry) and interrupts
(seen at their IDT handlers) reach the trace although the engine enters them natively.
The tracer hooks kernel addresses while the CPU runs user code: that page walk used to
leave a #PF's CR2 and double-fault state behind and the guest triple-faulted later."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from emu.board import BoardSpec
from emu.machine import Machine, MachineOptions
from emu.trace.output import read_trace
from loader.image import load_kernel
from tests.cpu.x86_64.test_x86_interrupts import TIMER_THEN_USER, USER_STACK
from tests.cpu.x86_64.x86guest import USER_PROGRAM, build, needs_x86

pytestmark = needs_x86


def traced(elf: Path, trace: Path) -> dict:
    """Runs the guest on one CPU with --trace; the trace's `emu` section."""
    spec = BoardSpec(harts=1, ram_size=64 << 20, arch="x86_64")
    kernel = load_kernel(elf, 0, spec.ram.size, arch="x86_64")
    m = Machine(spec, kernel, None, MachineOptions(quantum=10_000, timeout=20, stdout=None, capture=True,
                                                   report=sys.stderr, trace=str(trace)))
    result = m.run()
    assert result.exit_code == 0, result.reason
    return read_trace(trace)


def test_syscalls_and_timer_interrupts_are_traced(tmp_path):
    elf = build(f"""{TIMER_THEN_USER}    .globl user_code
user_code:
    lea rcx, [rip + irq_count + 0x40 * 8]
2:  mov rax, 41
    mov rdi, 7
    push rcx
    syscall
    pop rcx
    cmp qword ptr [rcx], 2
    jb 2b
    ud2
{USER_STACK}""", tmp_path)
    events = traced(elf, tmp_path / "trace.json")["events"]
    syscalls = [e[3] for e in events if e[2] == "syscall"]
    irqs = [e[3] for e in events if e[2] == "irq"]
    assert syscalls and all(s["num"] == 41 and s["args"][0] == 7 for s in syscalls)
    assert [i["cause"] for i in irqs] == [0x40, 0x40]


def test_x86_system_calls_are_named_from_the_x86_64_table(tmp_path):
    """`read` is 0 and `write` is 1 on x86_64 (riscv64's table says io_setup, io_destroy): the
    adapter names its ABI, the trace header records it, the report and Perfetto use it."""
    from emu.trace.report import format_report, summarise

    # the calls come after the first slice: the adapter hooks the syscall entry (LSTAR) that the
    # prelude set when a CPU is next switched in
    elf = build(f"""{USER_PROGRAM}    mov ecx, 100000
2:  dec ecx
    jnz 2b
    xor eax, eax                  # read (0); the test kernel returns rax + 1
    syscall
    syscall                       # write (1)
    ud2                           # back to the kernel
{USER_STACK}""", tmp_path)
    trace = tmp_path / "trace.json"
    emu = traced(elf, trace)
    assert emu["syscall_abi"] == "linux-x86_64"
    summary = summarise(emu)
    assert [r["name"] for r in summary["per_syscall"].values()] == ["read (0)", "write (1)"]
    text = format_report(summary)
    assert "read (0)" in text and "write (1)" in text and "io_setup" not in text
    slices = [e["name"] for e in json.loads(trace.read_text())["traceEvents"] if e.get("cat") == "syscall"]
    assert slices == ["read (0)", "write (1)"]
