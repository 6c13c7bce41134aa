"""Arch-neutral per-hart state the scheduler and firmware work with."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from emu.cpu.native import SpinStruct

NO_DEADLINE = (1 << 64) - 1


class HsmState(enum.IntEnum):
    """SBI HSM hart states (values as sbi_hart_get_status returns them)."""

    STARTED = 0
    STOPPED = 1
    START_PENDING = 2
    STOP_PENDING = 3
    SUSPENDED = 4


@dataclass
class Hart:
    id: int
    ctx: Any = None  # the arch adapter's saved context
    state: HsmState = HsmState.STOPPED
    parked: bool = False  # in WFI (or a retentive suspend) until an interrupt is pending
    deadline: int = NO_DEADLINE  # timer compare value, in ticks
    stip: bool = False
    seip: bool = False
    ssip_pending: bool = False  # an IPI to set SSIP at the next switch-in
    flush_tlb: bool = False  # a whole-TLB flush is due at the next switch-in
    flush_pages: list[int] = field(default_factory=list)  # pages to flush at the next switch-in
    start: tuple[int, int, int] | None = None  # (pc, a0, a1) to enter at the next switch-in
    resume_nonretentive: bool = False
    wake_mask: int = 0  # mie when parked
    parked_mip: int = 0
    spin_streak: int = 0  # rounds in a row this hart ended polling memory
    round_bytes: int = 0  # code bytes executed (plus skips) in the current round
    ran_bytes: int = 0  # code bytes this hart's slices were charged, over the whole run
    time_poll: SpinStruct = field(default_factory=SpinStruct)  # native rdtime's polling state
    last_fault: tuple[int, int, int] = (-1, -1, -1)
    fault_repeats: int = 0
    stats: dict[str, int] = field(default_factory=dict)

    def count(self, key: str, n: int = 1) -> None:
        self.stats[key] = self.stats.get(key, 0) + n
