"""RISC-V privileged-architecture constants used by the hart adapter and firmware."""
from __future__ import annotations

PRV_U, PRV_S, PRV_M = 0, 1, 3

# sstatus / mstatus bits
SSTATUS_SIE = 1 << 1
SSTATUS_SPIE = 1 << 5
SSTATUS_SPP = 1 << 8
MSTATUS_MIE = 1 << 3
MSTATUS_MPIE = 1 << 7
MSTATUS_MPP_SHIFT = 11
MSTATUS_FS = 3 << 13

# interrupt bits (mip / mie)
IRQ_SSI, IRQ_MSI, IRQ_STI, IRQ_MTI, IRQ_SEI, IRQ_MEI = 1, 3, 5, 7, 9, 11
MIP_SSIP, MIP_STIP, MIP_SEIP = 1 << IRQ_SSI, 1 << IRQ_STI, 1 << IRQ_SEI
S_INTERRUPTS = MIP_SSIP | MIP_STIP | MIP_SEIP

# exception causes
CAUSE_MISALIGNED_FETCH = 0
CAUSE_FETCH_ACCESS = 1
CAUSE_ILLEGAL_INSTRUCTION = 2
CAUSE_BREAKPOINT = 3
CAUSE_MISALIGNED_LOAD = 4
CAUSE_LOAD_ACCESS = 5
CAUSE_MISALIGNED_STORE = 6
CAUSE_STORE_ACCESS = 7
CAUSE_USER_ECALL = 8
CAUSE_SUPERVISOR_ECALL = 9
CAUSE_MACHINE_ECALL = 11
CAUSE_FETCH_PAGE_FAULT = 12
CAUSE_LOAD_PAGE_FAULT = 13
CAUSE_STORE_PAGE_FAULT = 15

# exceptions whose tval is the faulting address (QEMU's env->badaddr)
ADDRESS_CAUSES = frozenset({0, 1, 4, 5, 6, 7, 12, 13, 15})

# What OpenSBI delegates to S-mode; emu also redirects the rest from U/S to S, as
# OpenSBI's trap redirection does, so this is only what the guest sees in medeleg.
MEDELEG_DEFAULT = (
    (1 << CAUSE_MISALIGNED_FETCH) | (1 << CAUSE_BREAKPOINT) | (1 << CAUSE_USER_ECALL)
    | (1 << CAUSE_FETCH_PAGE_FAULT) | (1 << CAUSE_LOAD_PAGE_FAULT) | (1 << CAUSE_STORE_PAGE_FAULT)
)
MIDELEG_DEFAULT = S_INTERRUPTS

INSN_WFI = 0x10500073
INSN_EBREAK = 0x00100073
INSN_C_EBREAK = 0x9002
CSR_TIME = 0xC01
