"""The PC's CMOS real-time clock (MC146818, ports 0x70/0x71) on the virtual clock.

The date starts at a fixed moment (EPOCH) and advances with virtual time, so a guest
reads the same wall clock in every run: determinism over realism.  Registers: the
time and date in BCD, 24-hour mode, no update ever in progress (UIP clear; Linux waits
up to a second for it otherwise), a valid battery; the rest of the 128 bytes of CMOS RAM
read back what was written.
"""
from __future__ import annotations

import datetime
from typing import Callable

EPOCH = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
TIME_REGS = {0x00: "second", 0x02: "minute", 0x04: "hour", 0x06: "weekday", 0x07: "day", 0x08: "month",
             0x09: "year", 0x32: "century"}


def _bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


class Mc146818:
    """Index port at offset 0, data port at offset 1; `seconds()` is virtual time."""

    def __init__(self, seconds: Callable[[], float]) -> None:
        self.seconds = seconds
        self.index = 0
        self.ram = bytearray(128)
        self.ram[REG_A] = 0x26  # 32.768 kHz time base, 1024 Hz rate, UIP clear
        self.ram[REG_B] = 0x02  # 24-hour, BCD, no interrupts
        self.ram[REG_D] = 0x80  # valid RAM and time

    def _field(self, reg: int) -> int:
        now = EPOCH + datetime.timedelta(seconds=int(self.seconds()))
        value = {"second": now.second, "minute": now.minute, "hour": now.hour,
                 "weekday": now.isoweekday() % 7 + 1, "day": now.day, "month": now.month,
                 "year": now.year % 100, "century": now.year // 100}[TIME_REGS[reg]]
        return _bcd(value)

    def read(self, offset: int, size: int) -> int:
        if offset == 0:
            return self.index
        reg = self.index & 0x7F
        if reg in TIME_REGS:
            return self._field(reg)
        if reg == REG_C:
            return 0  # no interrupt flags
        return self.ram[reg]

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == 0:
            self.index = value & 0xFF  # bit 7: NMI disable (no NMIs here)
            return
        reg = self.index & 0x7F
        if reg in (REG_C, REG_D) or reg in TIME_REGS:
            return  # read-only, or the guest setting the clock: the virtual clock rules
        if reg == REG_A:
            value &= 0x7F  # UIP is read-only
        self.ram[reg] = value & 0xFF
