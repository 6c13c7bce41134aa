"""x86_64 4-level paging walked in software, for the debugger and the tracer (the CPU's
own accesses go through QEMU's MMU): 1 GiB and 2 MiB pages included."""
from __future__ import annotations

from typing import Callable

ADDR = 0x000F_FFFF_FFFF_F000
PRESENT, LARGE = 1, 0x80


def translate(cr3: int, vaddr: int, pte: Callable[[int], int | None]) -> int | None:
    """The physical address of `vaddr` under the tables at `cr3` (0: paging off)."""
    if cr3 == 0:
        return vaddr
    table = cr3 & ADDR
    for level, shift in ((4, 39), (3, 30), (2, 21), (1, 12)):
        entry = pte(table + ((vaddr >> shift) & 511) * 8)
        if entry is None or not entry & PRESENT:
            return None
        if level in (3, 2) and entry & LARGE:
            mask = (1 << shift) - 1
            return (entry & ADDR & ~mask) | (vaddr & mask)
        table = entry & ADDR
    return table | (vaddr & 0xFFF)
