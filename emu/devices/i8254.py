"""The i8254 programmable interval timer (ports 0x40-0x43) and port 0x61's channel 2 gate
and output, on the virtual clock.

Linux calibrates the TSC with channel 2 (gate through port 0x61, polling OUT2 or the
count) and uses channel 0 on IRQ 0 as the tick while it calibrates the local APIC timer.
Counts run at 1.193182 MHz of virtual time, so readings are deterministic.  Modes 0
(interrupt on terminal count), 2 (rate generator) and 3 (square wave) are modelled; 1, 4
and 5 behave as 0.  The model computes when channel 0 next raises IRQ 0; the platform
arms that deadline.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

PIT_HZ = 1_193_182
NEVER = (1 << 64) - 1


@dataclass
class Channel:
    """One counter: its programming and the virtual tick its count was loaded at."""

    mode: int = 0
    access: int = 3  # 1 low byte, 2 high byte, 3 low then high
    reload: int = 0  # 0 means 65536
    start: int = 0  # tick the count was (re)loaded
    loaded: bool = False
    gate: bool = True
    write_high: bool = False
    read_high: bool = False
    latched: int | None = None
    low: int = 0

    def period(self) -> int:
        return self.reload or 0x1_0000


class Pit:
    """Three counters; `now()` gives virtual ticks at `tick_hz`."""

    def __init__(self, now: Callable[[], int], tick_hz: int) -> None:
        self.now = now
        self.tick_hz = tick_hz
        self.channels = [Channel(), Channel(), Channel(gate=False)]
        self.speaker = 0  # port 0x61 bit 1
        self.on_program: Callable[[], None] | None = None  # channel 0 changed: re-arm

    # -- time ------------------------------------------------------------------------
    def _elapsed(self, ch: Channel) -> int:
        """PIT clocks since the count was loaded."""
        return (self.now() - ch.start) * PIT_HZ // self.tick_hz

    def _ticks_for(self, clocks: int) -> int:
        return -(-clocks * self.tick_hz // PIT_HZ)

    def count(self, ch: Channel) -> int:
        if not ch.loaded:
            return 0
        if not ch.gate:
            return ch.period() & 0xFFFF
        n = self._elapsed(ch)
        if ch.mode in (2, 3):
            return (ch.period() - n % ch.period()) & 0xFFFF
        return (ch.period() - n) & 0xFFFF

    def out(self, ch: Channel) -> bool:
        if not ch.loaded or not ch.gate:
            return ch.mode != 0
        n = self._elapsed(ch)
        if ch.mode == 3:
            return n % ch.period() < (ch.period() + 1) // 2
        if ch.mode == 2:
            return n % ch.period() != ch.period() - 1
        return n >= ch.period()

    def next_irq(self) -> int:
        """The tick at which channel 0 next raises IRQ 0 (NEVER: not armed)."""
        ch = self.channels[0]
        if not ch.loaded or not ch.gate:
            return NEVER
        n = self._elapsed(ch)
        if ch.mode in (2, 3):
            return ch.start + self._ticks_for((n // ch.period() + 1) * ch.period())
        if n < ch.period():
            return ch.start + self._ticks_for(ch.period())
        return NEVER

    # -- ports 0x40-0x43 ------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset > 2:
            return 0xFF
        ch = self.channels[offset]
        value = ch.latched if ch.latched is not None else self.count(ch)
        if ch.access == 1:
            ch.latched = None
            return value & 0xFF
        if ch.access == 2:
            ch.latched = None
            return value >> 8
        ch.read_high = not ch.read_high
        if not ch.read_high:
            ch.latched = None
            return value >> 8
        return value & 0xFF

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == 3:
            self._control(value)
            return
        ch = self.channels[offset]
        if ch.access == 1:
            self._load(ch, value)
        elif ch.access == 2:
            self._load(ch, value << 8)
        elif not ch.write_high:
            ch.low = value
            ch.write_high = True
        else:
            ch.write_high = False
            self._load(ch, ch.low | (value << 8))
        if offset == 0 and self.on_program:
            self.on_program()

    def _control(self, value: int) -> None:
        index = value >> 6
        if index == 3:  # read-back: latch the counts asked for
            for i in range(3):
                if value & (2 << i) and not value & 0x20:
                    self.channels[i].latched = self.count(self.channels[i])
            return
        ch = self.channels[index]
        access = (value >> 4) & 3
        if access == 0:  # counter latch
            ch.latched = self.count(ch)
            return
        ch.access = access
        ch.mode = (value >> 1) & 7
        if ch.mode > 5:
            ch.mode -= 4  # 6 and 7 are 2 and 3
        ch.loaded = False
        ch.write_high = ch.read_high = False
        ch.latched = None
        if index == 0 and self.on_program:
            self.on_program()

    def _load(self, ch: Channel, count: int) -> None:
        ch.reload = count & 0xFFFF
        ch.start = self.now()
        ch.loaded = True

    # -- port 0x61 -----------------------------------------------------------------------
    def read_port61(self) -> int:
        ch = self.channels[2]
        return (0x20 if self.out(ch) else 0) | self.speaker << 1 | (1 if ch.gate else 0)

    def write_port61(self, value: int) -> None:
        ch = self.channels[2]
        gate = bool(value & 1)
        if gate and not ch.gate:
            ch.start = self.now()  # a rising gate restarts the count
        ch.gate = gate
        self.speaker = (value >> 1) & 1


class Port61:
    """Port 0x61 (system control port B) as a device on the port bus."""

    def __init__(self, pit: Pit) -> None:
        self.pit = pit

    def read(self, offset: int, size: int) -> int:
        return self.pit.read_port61()

    def write(self, offset: int, size: int, value: int) -> None:
        self.pit.write_port61(value)
