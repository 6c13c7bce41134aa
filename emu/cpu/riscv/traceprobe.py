"""What the tracer (emu/trace/tracer.py) needs to know of riscv64 to see system calls,
returns to user mode, interrupts and threads; the tracer itself knows no architecture.

- a system call is a U-mode `ecall` trap: number in a7, arguments in a0..a5;
- a return to user mode is an `sret` with sstatus.SPP clear: its sites are found by scanning
  the kernel's code, its value is a0;
- an interrupt taken natively shows as entry to the trap vector (stvec) with scause's
  interrupt bit set;
- a thread is (satp, tp): the address space and the kernel's per-thread pointer.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn.riscv_const import UC_RISCV_REG_SATP, UC_RISCV_REG_SCAUSE, UC_RISCV_REG_SSTATUS, UC_RISCV_REG_STVEC

from emu.cpu.riscv import csr

if TYPE_CHECKING:
    from emu.cpu.riscv.cpu import RiscvCpu

INSN_SRET = 0x10200073
# Integer registers by ABI name (and fp = s0), as trace profiles write them -> x register number.
REGISTERS = {name: n for n, name in enumerate(
    ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1"] + [f"a{i}" for i in range(8)]
    + [f"s{i}" for i in range(2, 12)] + [f"t{i}" for i in range(3, 7)])} | {"fp": 8}


def sret_sites(exec_segments: list[tuple[int, bytes]]) -> list[int]:
    """Addresses of every `sret` in the kernel's executable segments (2-byte aligned)."""
    sites = []
    needle = INSN_SRET.to_bytes(4, "little")
    for vaddr, data in exec_segments:
        start = 0
        while (i := data.find(needle, start)) >= 0:
            if i % 2 == 0:
                sites.append(vaddr + i)
            start = i + 1
    return sites


class RiscvTraceProbes:
    syscall_abi = "linux-riscv64"  # whose system call numbers a7 holds (emu.trace.names)
    registers = REGISTERS  # what a trace profile's expressions may name (read with cpu.xreg)

    def __init__(self, cpu: "RiscvCpu") -> None:
        self.cpu = cpu

    @staticmethod
    def user_return_sites(exec_segments: list[tuple[int, bytes]]) -> list[int]:
        return sret_sites(exec_segments)

    @staticmethod
    def late_user_return_sites() -> list[int]:
        return []  # riscv kernels are loaded uncompressed: user_return_sites saw all of them

    def returning_to_user(self) -> bool:
        """At a user-return site: does it return to user mode (not to the kernel)?"""
        return not self.cpu.rreg(UC_RISCV_REG_SSTATUS) & csr.SSTATUS_SPP

    def return_value(self) -> int:
        return self.cpu.xreg(10)

    @staticmethod
    def is_syscall(cause: int) -> bool:
        return cause == csr.CAUSE_USER_ECALL

    def syscall(self) -> tuple[int, list[int]]:
        """At a system-call trap: its number and six arguments."""
        x = self.cpu.xreg
        return x(17), [x(10 + i) for i in range(6)]

    def trap_vectors(self) -> list[int]:
        """Where the kernel takes traps and interrupts now (stvec; none before it is set)."""
        vec = self.cpu.mcsr_read(UC_RISCV_REG_STVEC) & ~3
        return [vec] if vec else []

    def interrupt_at_vector(self, pc: int) -> int | None:
        """At the trap vector: the interrupt number being taken, or None for an exception."""
        cause = self.cpu.rreg(UC_RISCV_REG_SCAUSE)
        return cause & 0xFF if cause >> 63 else None

    def thread(self) -> str:
        return f"{self.cpu.mcsr_read(UC_RISCV_REG_SATP):x}:{self.cpu.xreg(4):x}"
