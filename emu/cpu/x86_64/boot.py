"""The state an x86_64 kernel is entered in: long mode as the Linux 64-bit boot protocol
gives it (Documentation/x86/boot.rst, "64-bit boot protocol").

Paging on with the first 4 GiB identity-mapped (2 MiB pages), a GDT with a 64-bit code
segment at 0x10 (__BOOT_CS) and a data segment at 0x18 (__BOOT_DS), interrupts off,
rsi = the boot_params address.  The tables live in low RAM at BOOT_TABLES, which a
kernel replaces with its own; ELF test guests and the bzImage loader enter the same way.
"""
from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from unicorn import x86_const as X

if TYPE_CHECKING:
    from emu.cpu.x86_64.cpu import X86Cpu

BOOT_TABLES = 0x1_0000  # GDT, PML4, PDPT, 4 page directories: 0x1_0000 - 0x1_6FFF
BOOT_TABLES_END = 0x1_7000
GDT = BOOT_TABLES
PML4 = BOOT_TABLES + 0x1000
PDPT = BOOT_TABLES + 0x2000
PD = BOOT_TABLES + 0x3000
BOOT_CS, BOOT_DS = 0x10, 0x18
GDT_ENTRIES = (0, 0, 0x00AF_9A00_0000_FFFF, 0x00CF_9200_0000_FFFF)  # null, null, code64, data

CR0_PE, CR0_MP, CR0_ET, CR0_NE, CR0_WP, CR0_PG = 1, 2, 0x10, 0x20, 1 << 16, 1 << 31
CR4_PAE, CR4_PGE, CR4_OSFXSR, CR4_OSXMMEXCPT = 1 << 5, 1 << 7, 1 << 9, 1 << 10
MSR_EFER = 0xC000_0080
EFER_SCE, EFER_LME, EFER_LMA, EFER_NXE = 1, 1 << 8, 1 << 10, 1 << 11


def boot_tables() -> list[tuple[int, bytes]]:
    """(physical address, bytes) of the boot GDT and identity page tables."""
    gdt = b"".join(struct.pack("<Q", e) for e in GDT_ENTRIES)
    pml4 = struct.pack("<Q", PDPT | 3)
    pdpt = b"".join(struct.pack("<Q", (PD + 0x1000 * i) | 3) for i in range(4))
    pd = b"".join(struct.pack("<Q", (i << 21) | 0x83) for i in range(4 * 512))  # P RW PS
    return [(GDT, gdt), (PML4, pml4), (PDPT, pdpt), (PD, pd)]


def enter_long_mode(cpu: "X86Cpu", pc: int, rdi: int, rsi: int) -> None:
    """Put the loaded CPU in the boot protocol's 64-bit entry state at `pc`."""
    cpu.wreg(X.UC_X86_REG_CR3, PML4)
    cpu.wreg(X.UC_X86_REG_CR4, CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT)
    cpu.uc.msr_write(MSR_EFER, EFER_LME | EFER_LMA | EFER_NXE)
    cpu.wreg(X.UC_X86_REG_CR0, CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG)
    cpu.wreg(X.UC_X86_REG_GDTR, (0, GDT, 8 * len(GDT_ENTRIES) - 1, 0))
    cpu.wreg(X.UC_X86_REG_CS, BOOT_CS)
    for reg in (X.UC_X86_REG_DS, X.UC_X86_REG_ES, X.UC_X86_REG_SS):
        cpu.wreg(reg, BOOT_DS)
    cpu.wreg(X.UC_X86_REG_EFLAGS, 2)
    cpu.wreg(X.UC_X86_REG_RIP, pc)
    cpu.wreg(X.UC_X86_REG_RDI, rdi)
    cpu.wreg(X.UC_X86_REG_RSI, rsi)
