"""CLINT / ACLINT (SiFive layout): msip, mtimecmp, mtime, readable by MMIO.

S-mode kernels time through SBI and never touch it; it is here so M-mode code and
probes see QEMU virt's registers.  64-bit registers arrive as two 32-bit halves
(Unicorn splits 8-byte MMIO), so each half is served separately; reading the low half
of mtime latches the high half so a 32-bit pair read is consistent.
"""
from __future__ import annotations

from typing import Callable

MSIP_BASE = 0x0
MTIMECMP_BASE = 0x4000
MTIME = 0xBFF8


class Aclint:
    def __init__(self, harts: int, now: Callable[[], int]) -> None:
        self.harts = harts
        self.now = now
        self.msip = [0] * harts
        self.mtimecmp = [0xFFFFFFFFFFFFFFFF] * harts
        self._mtime_hi_latch = 0

    def read(self, offset: int, size: int) -> int:
        if offset < MTIMECMP_BASE:
            h = offset >> 2
            return self.msip[h] if h < self.harts else 0
        if offset < MTIME:
            h, half = divmod(offset - MTIMECMP_BASE, 8)
            if h >= self.harts:
                return 0
            val = self.mtimecmp[h]
            return val >> 32 if half >= 4 else (val if size == 8 else val & 0xFFFFFFFF)
        now = self.now()
        if offset == MTIME:
            self._mtime_hi_latch = now >> 32
            return now if size == 8 else now & 0xFFFFFFFF
        if offset == MTIME + 4:
            return self._mtime_hi_latch
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset < MTIMECMP_BASE:
            h = offset >> 2
            if h < self.harts:
                self.msip[h] = value & 1
            return
        if offset < MTIME:
            h, half = divmod(offset - MTIMECMP_BASE, 8)
            if h >= self.harts:
                return
            old = self.mtimecmp[h]
            if size == 8:
                self.mtimecmp[h] = value
            elif half >= 4:
                self.mtimecmp[h] = (old & 0xFFFFFFFF) | ((value & 0xFFFFFFFF) << 32)
            else:
                self.mtimecmp[h] = (old & ~0xFFFFFFFF) | (value & 0xFFFFFFFF)
