"""The I/O APIC (82093AA, version 0x20 as QEMU's): 24 inputs, each routed by its
redirection entry to a vector on a local APIC.

Edge-triggered inputs send on a rising level; an edge that arrives while the entry is
masked is latched and sent when the guest unmasks it (QEMU's IRR: zCore programs COM1
before it unmasks IRQ 4, and input typed ahead raised the line in between).
Level-triggered ones send while high and then wait for the local APIC's EOI of that
vector (remote IRR), as the hardware does.
The model only decides what to send; `deliver(dest, vector, logical)` (the platform)
puts the vector into the destination CPUs' local APICs.
"""
from __future__ import annotations

from typing import Callable

IOAPIC_BASE = 0xFEC0_0000
NUM_PINS = 24
IOREGSEL, IOWIN, IOEOI = 0x00, 0x10, 0x40
REG_ID, REG_VER, REG_ARB, REG_REDTBL = 0x00, 0x01, 0x02, 0x10
VERSION = ((NUM_PINS - 1) << 16) | 0x20
MASKED = 1 << 16
LEVEL = 1 << 15
REMOTE_IRR = 1 << 14
LOGICAL = 1 << 11


class IoApic:
    """State, MMIO registers (IOREGSEL/IOWIN/EOI) and input lines of one I/O APIC."""

    def __init__(self, apic_id: int, deliver: Callable[[int, int, bool], None]) -> None:
        self.apic_id = apic_id
        self.deliver = deliver
        self.select = 0
        self.redirection = [MASKED] * NUM_PINS
        self.levels = [False] * NUM_PINS
        self.latched = [False] * NUM_PINS  # an edge seen while masked

    # -- inputs ---------------------------------------------------------------------------
    def set_level(self, pin: int, level: bool) -> None:
        """A device drives input `pin` (GSI) high or low."""
        if not 0 <= pin < NUM_PINS:
            return
        rising = level and not self.levels[pin]
        self.levels[pin] = level
        entry = self.redirection[pin]
        if entry & LEVEL:
            if level:
                self._send(pin)
        elif rising:
            if entry & MASKED:
                self.latched[pin] = True
            else:
                self._send(pin)

    def _send(self, pin: int) -> None:
        entry = self.redirection[pin]
        if entry & MASKED or entry & REMOTE_IRR:
            return
        if entry & LEVEL:
            self.redirection[pin] = entry | REMOTE_IRR
        self.deliver(entry >> 56, entry & 0xFF, bool(entry & LOGICAL))

    def eoi(self, vector: int) -> None:
        """A local APIC ended `vector`: level inputs routed to it may send again."""
        for pin, entry in enumerate(self.redirection):
            if entry & LEVEL and entry & REMOTE_IRR and entry & 0xFF == vector:
                self.redirection[pin] = entry & ~REMOTE_IRR
                if self.levels[pin]:
                    self._send(pin)

    # -- registers ------------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == IOREGSEL:
            return self.select
        if offset == IOWIN:
            return self._read_reg(self.select)
        return 0

    def _read_reg(self, reg: int) -> int:
        if reg == REG_ID:
            return self.apic_id << 24
        if reg == REG_VER:
            return VERSION
        if reg == REG_ARB:
            return self.apic_id << 24
        index = reg - REG_REDTBL
        if 0 <= index < 2 * NUM_PINS:
            entry = self.redirection[index >> 1]
            return (entry >> 32) & 0xFFFF_FFFF if index & 1 else entry & 0xFFFF_FFFF
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFFFF_FFFF
        if offset == IOREGSEL:
            self.select = value & 0xFF
        elif offset == IOWIN:
            self._write_reg(self.select, value)
        elif offset == IOEOI:
            self.eoi(value & 0xFF)

    def _write_reg(self, reg: int, value: int) -> None:
        if reg == REG_ID:
            self.apic_id = (value >> 24) & 0xF
            return
        index = reg - REG_REDTBL
        if not 0 <= index < 2 * NUM_PINS:
            return
        pin = index >> 1
        entry = self.redirection[pin]
        if index & 1:
            entry = (entry & 0xFFFF_FFFF) | (value << 32)
        else:
            keep = entry & (REMOTE_IRR | (1 << 12))  # read-only: remote IRR, delivery status
            entry = (entry & ~0xFFFF_FFFF) | (value & ~(REMOTE_IRR | (1 << 12))) | keep
        self.redirection[pin] = entry
        if entry & MASKED:
            return
        if entry & LEVEL:
            self.latched[pin] = False
            if self.levels[pin]:
                self._send(pin)
        elif self.latched[pin]:
            self.latched[pin] = False
            self._send(pin)
