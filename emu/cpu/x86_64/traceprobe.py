"""What the tracer (emu/trace/tracer.py) needs to know of x86_64; the tracer itself knows
no architecture.  System calls and interrupts enter the kernel natively (the engine), so
they are seen where they land: a system call at the `syscall` entry (LSTAR, hooked by the
adapter while tracing: number in rax, arguments in rdi, rsi, rdx, r10, r8, r9), an
interrupt at its IDT gate's handler (vectors 32-255; the IDT is read again when it moves
or changes).  Returns to user mode are `sysretq` sites (value in rax): those in the kernel's
code as loaded, and those within a page after the `syscall` entry once the kernel has set it
(a compressed kernel, Linux's bzImage, has no code to scan at load time; Linux's sysretq path
follows entry_SYSCALL_64 closely; returns through `iretq` stay unseen).  A thread is (CR3,
FS base): the address space and the user thread pointer (TLS), as (satp, tp) on riscv64 (the
GS base is 0 in every Linux user thread).
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as X

if TYPE_CHECKING:
    from emu.cpu.x86_64.cpu import X86Cpu

SYSRETQ = bytes([0x48, 0x0F, 0x07])
MSR_LSTAR = 0xC000_0082  # the `syscall` entry
ENTRY_SCAN = 4096  # bytes after the syscall entry searched for its sysretq
SYSCALL_CAUSE = 0x100  # what the adapter reports a traced `syscall` as (above the 256 vectors)
# General registers as trace profiles name them -> their number in the instruction encoding
# (cpu.xreg's order: rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi, r8..r15).
REGISTERS = {name: n for n, name in enumerate(
    ["rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi"] + [f"r{i}" for i in range(8, 16)])}


class X86TraceProbes:
    syscall_abi = "linux-x86_64"  # whose system call numbers rax holds (emu.trace.names)
    registers = REGISTERS  # what a trace profile's expressions may name (read with cpu.xreg)

    def __init__(self, cpu: "X86Cpu") -> None:
        self.cpu = cpu
        self._idt = b""
        self._handlers: dict[int, int] = {}  # interrupt handler address -> vector
        self._entries: set[int] = set()  # syscall entries already searched

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

    def late_user_return_sites(self) -> list[int]:
        """`sysretq` sites after a syscall entry (LSTAR) not searched before (each switch-in)."""
        entry = self.cpu.uc.msr_read(MSR_LSTAR)
        if not entry or entry in self._entries:
            return []
        code = self.cpu.read_virt_current(entry, ENTRY_SCAN) or \
            self.cpu.read_virt_current(entry, 4096 - (entry & 0xFFF))  # the entry's page only
        if code is None:
            return []  # not mapped here (yet): try again at the next switch-in
        self._entries.add(entry)
        return self.user_return_sites([(entry, code)])

    @staticmethod
    def returning_to_user() -> bool:
        return True  # sysretq always returns to CPL 3

    def return_value(self) -> int:
        return self.cpu.rreg(X.UC_X86_REG_RAX)

    @staticmethod
    def is_syscall(cause: int) -> bool:
        return cause == SYSCALL_CAUSE

    def syscall(self) -> tuple[int, list[int]]:
        r = self.cpu.rreg
        return r(X.UC_X86_REG_RAX), [r(reg) for reg in (X.UC_X86_REG_RDI, X.UC_X86_REG_RSI, X.UC_X86_REG_RDX,
                                                        X.UC_X86_REG_R10, X.UC_X86_REG_R8, X.UC_X86_REG_R9)]

    def trap_vectors(self) -> list[int]:
        """The handlers of the interrupt vectors (32-255) in the loaded CPU's IDT."""
        base, limit = self.cpu.rreg_pair(X.UC_X86_REG_IDTR)
        table = self.cpu.read_virt_current(base, min(limit + 1, 256 * 16))
        if table is None:
            return []
        if table != self._idt:
            self._idt = table
            self._handlers = {}
            for vector in range(len(table) // 16 - 1, 31, -1):  # the lowest vector wins a shared handler
                low, high = struct.unpack_from("<QQ", table, 16 * vector)
                if low & (1 << 47):  # present
                    handler = (low & 0xFFFF) | ((low >> 32) & 0xFFFF_0000) | ((high & 0xFFFF_FFFF) << 32)
                    self._handlers[handler] = vector
        return list(self._handlers)

    def interrupt_at_vector(self, pc: int) -> int | None:
        """At an interrupt handler: its vector."""
        return self._handlers.get(pc)

    def thread(self) -> str:
        return f"{self.cpu.rreg(X.UC_X86_REG_CR3):x}:{self.cpu.rreg(X.UC_X86_REG_FS_BASE):x}"
