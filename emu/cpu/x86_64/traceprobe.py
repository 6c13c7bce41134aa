"""What the tracer (emu/trace/tracer.py) needs to know of x86_64; the tracer itself knows
no architecture.  System calls and interrupts enter the kernel natively (the engine), so
for now the tracer sees returns to user mode (`sysretq` sites, value in rax), hart
states and the profile's stage points; a thread is (CR3, GS base).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

if TYPE_CHECKING:
    from emu.cpu.x86_64.cpu import X86Cpu

SYSRETQ = bytes([0x48, 0x0F, 0x07])


class X86TraceProbes:
    def __init__(self, cpu: "X86Cpu") -> None:
        self.cpu = cpu

    @staticmethod
    def user_return_sites(exec_segments: list[tuple[int, bytes]]) -> list[int]:
        """Every `sysretq` in the kernel's executable segments."""
        sites = []
        for vaddr, data in exec_segments:
            start = 0
            while (i := data.find(SYSRETQ, start)) >= 0:
                sites.append(vaddr + i)
                start = i + 1
        return sites

    @staticmethod
    def returning_to_user() -> bool:
        return True  # sysretq always returns to CPL 3

    def return_value(self) -> int:
        return self.cpu.rreg(X.UC_X86_REG_RAX)

    @staticmethod
    def is_syscall(cause: int) -> bool:
        return False  # system calls do not reach Python (native `syscall`)

    def syscall(self) -> tuple[int, list[int]]:
        r = self.cpu.rreg
        return r(X.UC_X86_REG_RAX), [r(reg) for reg in (X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
                                                        X.UC_X86_REG_R10, X.UC_X86_REG_R8, X.UC_X86_REG_R9)]

    @staticmethod
    def trap_vector() -> int:
        return 0  # one IDT gate per vector: no single vector to hook yet

    @staticmethod
    def interrupt_at_vector() -> int | None:
        return None

    def thread(self) -> str:
        return f"{self.cpu.rreg(X.UC_X86_REG_CR3):x}:{self.cpu.rreg(X.UC_X86_REG_GS_BASE):x}"
