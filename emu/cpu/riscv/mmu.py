"""Software page-table walk (Sv39/Sv48/Sv57) over guest RAM.

Unicorn's memory API is physical-only, so reading guest memory by virtual address
(an SBI hart-mask pointer, the instruction at a trap's epc, a trace field) walks the
hart's page tables here.  Unicorn keeps whichever of Sv39/48/57 the guest writes to
satp (Linux ends up in Sv57), so all three are handled.
"""
from __future__ import annotations

from typing import Callable

PAGE_SHIFT = 12
PTE_V, PTE_R, PTE_W, PTE_X, PTE_U = 1, 2, 4, 8, 16
LEVELS = {8: 3, 9: 4, 10: 5}


def satp_levels(satp: int) -> int:
    """Number of page-table levels for satp's MODE (0 for bare)."""
    return LEVELS.get(satp >> 60, 0)


def translate(satp: int, vaddr: int, read_u64: Callable[[int], int | None]) -> int | None:
    """Return the physical address of `vaddr` under `satp`, or None if unmapped.

    `read_u64(paddr)` reads a page-table entry (None when outside RAM).  Permission
    bits other than V and the leaf test are not checked: callers read on behalf of a
    hart that was allowed to make the access.
    """
    levels = satp_levels(satp)
    if levels == 0:
        return vaddr
    table = (satp & ((1 << 44) - 1)) << PAGE_SHIFT
    for level in range(levels - 1, -1, -1):
        shift = PAGE_SHIFT + 9 * level
        index = (vaddr >> shift) & 0x1FF
        pte = read_u64(table + 8 * index)
        if pte is None or not pte & PTE_V:
            return None
        ppn = (pte >> 10) & ((1 << 44) - 1)
        if pte & (PTE_R | PTE_X):  # leaf; superpage when level > 0
            return ((ppn << PAGE_SHIFT) & ~((1 << shift) - 1)) | (vaddr & ((1 << shift) - 1))
        table = ppn << PAGE_SHIFT
    return None
