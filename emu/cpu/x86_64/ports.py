"""x86 port I/O: the IN/OUT hooks and the devices behind port ranges.

Each access costs PORT_IO_TICKS of virtual time, as an ISA bus cycle does on a PC (about a
microsecond): a loop polling the PIT or port 0x61 then reads it at a steady, realistic rate
(Linux's TSC calibration rejects uneven ones), and a 10 ms calibration costs ten thousand
Python reads, not millions.  Deterministic: it depends only on the code run.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import unicorn
from unicorn import Uc
from unicorn import x86_const as X

from emu.devices import Device

if TYPE_CHECKING:
    from emu.cpu import native

PORT_IO_TICKS = 10  # virtual time one IN or OUT takes: 1 us (an ISA bus cycle)


class PortBus:
    """Port ranges and their devices; absent ports read all ones and ignore writes."""

    def __init__(self, uc: Uc, budget: "native.BudgetStruct") -> None:
        self.budget = budget
        self.clock: "native.ClockStruct | None" = None  # set when the clock is attached
        self.ranges: list[tuple[int, int, Device]] = []
        uc.hook_add(unicorn.UC_HOOK_INSN, self._on_in, None, 1, 0, X.UC_X86_INS_IN)
        uc.hook_add(unicorn.UC_HOOK_INSN, self._on_out, None, 1, 0, X.UC_X86_INS_OUT)

    def map(self, base: int, size: int, device: Device) -> None:
        """IN/OUT at [base, base + size) reach `device.read/write(offset, size)`."""
        self.ranges.append((base, base + size, device))

    def _find(self, port: int) -> tuple[Device, int] | None:
        for start, end, device in self.ranges:
            if start <= port < end:
                return device, port - start
        return None

    def _charge(self) -> None:
        self.budget.events += 1
        clock = self.clock
        if clock is not None:
            skip = PORT_IO_TICKS * clock.bytes_per_tick
            self.budget.budget -= skip
            clock.skipped_bytes += skip

    def _on_in(self, _uc: Uc, port: int, size: int, _ud: object) -> int:
        self._charge()
        hit = self._find(port)
        if hit is None:
            return (1 << (8 * size)) - 1  # nothing there: all ones, as on a PC
        return hit[0].read(hit[1], size)

    def _on_out(self, _uc: Uc, port: int, size: int, value: int, _ud: object) -> None:
        self._charge()
        hit = self._find(port)
        if hit is not None:
            hit[0].write(hit[1], size, value & ((1 << (8 * size)) - 1))
