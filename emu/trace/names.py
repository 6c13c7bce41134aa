"""Names for the numbers a trace records: system calls, SBI calls, traps and interrupts.

One place, so the Perfetto trace, `emu trace report`, the hang report and the debugger
say the same thing.  A name always keeps its number beside it where the number is what
a reader would grep the kernel for (`getpid (172)`, `SBI TIME set_timer`).
"""
from __future__ import annotations

import functools
import importlib

# System call tables by ABI: a CPU adapter's trace probes name theirs (`syscall_abi`), the trace
# header records it, and every reader looks it up here.  Modules load on first use.
SYSCALL_TABLES = {
    "linux-riscv64": ("emu.trace.syscalls_linux", "LINUX_RISCV64_SYSCALLS"),
    "linux-x86_64": ("emu.trace.syscalls_linux_x86_64", "LINUX_X86_64_SYSCALLS"),
}
DEFAULT_ABI = "linux-riscv64"  # what traces written before the header named an ABI used

# SBI v2.0 extensions and functions (the spec's names; emu/firmware/sbi.py implements them).
SBI_EXTENSIONS: dict[int, tuple[str, dict[int, str]]] = {
    0x10: ("BASE", {0: "get_spec_version", 1: "get_impl_id", 2: "get_impl_version", 3: "probe_extension",
                    4: "get_mvendorid", 5: "get_marchid", 6: "get_mimpid"}),
    0x54494D45: ("TIME", {0: "set_timer"}),
    0x735049: ("IPI", {0: "send_ipi"}),
    0x52464E43: ("RFENCE", {0: "remote_fence_i", 1: "remote_sfence_vma", 2: "remote_sfence_vma_asid",
                            3: "remote_hfence_gvma_vmid", 4: "remote_hfence_gvma", 5: "remote_hfence_vvma_asid",
                            6: "remote_hfence_vvma"}),
    0x48534D: ("HSM", {0: "hart_start", 1: "hart_stop", 2: "hart_get_status", 3: "hart_suspend"}),
    0x53525354: ("SRST", {0: "system_reset"}),
    0x4442434E: ("DBCN", {0: "console_write", 1: "console_read", 2: "console_write_byte"}),
    0x504D55: ("PMU", {}),
    0x535553: ("SUSP", {0: "system_suspend"}),
    0x43505043: ("CPPC", {}),
}
SBI_LEGACY = {0: "set_timer", 1: "console_putchar", 2: "console_getchar", 3: "clear_ipi", 4: "send_ipi",
              5: "remote_fence_i", 6: "remote_sfence_vma", 7: "remote_sfence_vma_asid", 8: "shutdown"}

# mcause/scause values (privileged spec): exceptions, then interrupts.
EXCEPTIONS = {
    0: "instruction address misaligned", 1: "instruction access fault", 2: "illegal instruction",
    3: "breakpoint", 4: "load address misaligned", 5: "load access fault", 6: "store address misaligned",
    7: "store access fault", 8: "user ecall", 9: "supervisor ecall", 10: "virtual supervisor ecall",
    11: "machine ecall", 12: "instruction page fault", 13: "load page fault", 15: "store page fault",
    18: "software check", 19: "hardware error", 20: "instruction guest page fault",
    21: "load guest page fault", 22: "virtual instruction", 23: "store guest page fault",
}
# x86_64 exception vectors (Intel SDM vol. 3, table 6-1), and how the x86 adapter reports a
# traced `syscall` instruction (emu/cpu/x86_64/traceprobe.py SYSCALL_CAUSE: above the vectors).
X86_EXCEPTIONS = {
    0: "divide error (#DE)", 1: "debug (#DB)", 2: "NMI", 3: "breakpoint (#BP)", 4: "overflow (#OF)",
    5: "bound range exceeded (#BR)", 6: "invalid opcode (#UD)", 7: "device not available (#NM)",
    8: "double fault (#DF)", 10: "invalid TSS (#TS)", 11: "segment not present (#NP)",
    12: "stack-segment fault (#SS)", 13: "general protection (#GP)", 14: "page fault (#PF)",
    16: "x87 floating-point error (#MF)", 17: "alignment check (#AC)", 18: "machine check (#MC)",
    19: "SIMD floating-point (#XM)", 20: "virtualization (#VE)", 21: "control protection (#CP)",
    0x100: "syscall",
}
INTERRUPTS = {
    1: "supervisor software interrupt", 3: "machine software interrupt", 5: "supervisor timer interrupt",
    7: "machine timer interrupt", 9: "supervisor external interrupt", 11: "machine external interrupt",
    13: "counter overflow interrupt",
}
# What a hart-state event means (emu.trace.tracer.on_hart, the scheduler's on_hart_state).
HART_STATES = {"park": "WFI park", "unpark": "WFI wake", "start": "hart start", "stop": "hart stop"}


def syscall_table(abi: str = DEFAULT_ABI, extra: dict[int, str] | None = None) -> dict[int, str]:
    """The names of `abi`'s system calls, with `extra` (a profile's own numbers, e.g. the
    reference guest's 500+) over them.  An ABI this emu does not know names nothing."""
    return {**_linux_table(abi), **(extra or {})}


@functools.cache
def _linux_table(abi: str) -> dict[int, str]:
    where = SYSCALL_TABLES.get(abi)
    return getattr(importlib.import_module(where[0]), where[1]) if where else {}


TRAP_TABLES = {"linux-riscv64": EXCEPTIONS, "linux-x86_64": X86_EXCEPTIONS}


def syscall_name(num: int, names: dict[int, str] | None = None) -> str:
    """`getpid (172)`; a number the table does not know stays `syscall 600`.

    `names`: the trace's table (`syscall_table`); without one, the default ABI's.
    """
    name = (names if names is not None else _linux_table(DEFAULT_ABI)).get(num)
    return f"{name} ({num})" if name else f"syscall {num}"


def sbi_name(eid: int, fid: int | None = None) -> str:
    """`TIME set_timer`, `HSM hart_start`, `legacy console_putchar`, or the numbers in hex."""
    if eid in SBI_LEGACY:
        return f"legacy {SBI_LEGACY[eid]}"
    ext = SBI_EXTENSIONS.get(eid)
    if ext is None:
        return f"SBI {eid:#x}" + ("" if fid is None else f" fid {fid}")
    name, functions = ext
    if fid is None:
        return name
    return f"{name} {functions.get(fid, f'fid {fid}')}"


def trap_name(cause: int, abi: str = DEFAULT_ABI) -> str:
    """An exception's name in the CPU's own numbering: scause for riscv64, the vector for x86_64
    (the trace header's `syscall_abi` says which CPU made the trace)."""
    return TRAP_TABLES.get(abi, EXCEPTIONS).get(cause, f"exception {cause}")


def irq_name(cause: int) -> str:
    return INTERRUPTS.get(cause, f"interrupt {cause}")
