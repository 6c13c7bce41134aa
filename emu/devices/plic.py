"""Platform-Level Interrupt Controller (SiFive PLIC, QEMU virt layout).

Contexts are numbered as on QEMU virt: hart h has M-mode context 2h and S-mode context
2h + 1.  The PLIC reports each context's interrupt-pending output through `on_output`
(context, level); the machine maps S contexts to the hart's SEIP.  Sources are level
triggered: a source still high at complete becomes pending again.
"""
from __future__ import annotations

from typing import Callable

PLIC_NDEV = 0x5F  # sources on QEMU virt (VIRT_IRQCHIP_NUM_SOURCES - 1)
PRIORITY_BASE = 0x0
PENDING_BASE = 0x1000
ENABLE_BASE = 0x2000
ENABLE_STRIDE = 0x80
CONTEXT_BASE = 0x20_0000
CONTEXT_STRIDE = 0x1000


class Plic:
    def __init__(self, num_sources: int, num_contexts: int, on_output: Callable[[int, bool], None]) -> None:
        self.num_sources = num_sources
        self.num_contexts = num_contexts
        self.on_output = on_output
        self.priority = [0] * (num_sources + 1)
        self.pending = 0
        self.claimed = 0
        self.level = 0
        self.enable = [0] * num_contexts
        self.threshold = [0] * num_contexts
        self.output = [False] * num_contexts

    # -- interrupt lines ---------------------------------------------------
    def set_level(self, irq: int, level: bool) -> None:
        bit = 1 << irq
        if level:
            self.level |= bit
            if not self.claimed & bit:
                self.pending |= bit
        else:
            self.level &= ~bit
            self.pending &= ~bit
        self._update()

    def _best(self, ctx: int) -> int:
        cand = self.pending & self.enable[ctx] & ~self.claimed
        best, best_prio = 0, self.threshold[ctx]
        while cand:
            low = cand & -cand
            irq = low.bit_length() - 1
            cand ^= low
            if self.priority[irq] > best_prio:
                best, best_prio = irq, self.priority[irq]
        return best

    def _update(self) -> None:
        for ctx in range(self.num_contexts):
            out = self._best(ctx) != 0
            if out != self.output[ctx]:
                self.output[ctx] = out
                self.on_output(ctx, out)

    # -- registers ---------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset < PENDING_BASE:
            irq = offset >> 2
            return self.priority[irq] if 0 < irq <= self.num_sources else 0
        if offset < ENABLE_BASE:
            word = (offset - PENDING_BASE) >> 2
            return (self.pending >> (32 * word)) & 0xFFFFFFFF
        if offset < CONTEXT_BASE:
            ctx, word = divmod(offset - ENABLE_BASE, ENABLE_STRIDE)
            if ctx < self.num_contexts:
                return (self.enable[ctx] >> (8 * word)) & 0xFFFFFFFF
            return 0
        ctx, reg = divmod(offset - CONTEXT_BASE, CONTEXT_STRIDE)
        if ctx >= self.num_contexts:
            return 0
        if reg == 0:
            return self.threshold[ctx]
        if reg == 4:  # claim
            irq = self._best(ctx)
            if irq:
                self.pending &= ~(1 << irq)
                self.claimed |= 1 << irq
                self._update()
            return irq
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFFFFFFFF
        if offset < PENDING_BASE:
            irq = offset >> 2
            if 0 < irq <= self.num_sources:
                self.priority[irq] = value & 7
                self._update()
            return
        if offset < ENABLE_BASE:
            return  # pending bits are read-only
        if offset < CONTEXT_BASE:
            ctx, word = divmod(offset - ENABLE_BASE, ENABLE_STRIDE)
            if ctx < self.num_contexts and word < (self.num_sources + 32) // 32 * 4:
                shift = 8 * word
                mask = 0xFFFFFFFF << shift
                self.enable[ctx] = (self.enable[ctx] & ~mask) | ((value << shift) & mask)
                self.enable[ctx] &= ~1  # source 0 does not exist
                self._update()
            return
        ctx, reg = divmod(offset - CONTEXT_BASE, CONTEXT_STRIDE)
        if ctx >= self.num_contexts:
            return
        if reg == 0:
            self.threshold[ctx] = value & 7
            self._update()
        elif reg == 4:  # complete
            if 0 < value <= self.num_sources:
                bit = 1 << value
                self.claimed &= ~bit
                if self.level & bit:
                    self.pending |= bit
                self._update()
