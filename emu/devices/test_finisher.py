"""SiFive test finisher (`sifive,test0`): a write ends the machine.

0x5555 = pass (exit 0), 0x3333 | code << 16 = fail with that exit code, 0x7777 = reset.
"""
from __future__ import annotations

from typing import Callable

FINISHER_FAIL = 0x3333
FINISHER_PASS = 0x5555
FINISHER_RESET = 0x7777


class TestFinisher:
    __test__ = False  # not a pytest class

    def __init__(self, on_exit: Callable[[int, str], None]) -> None:
        self.on_exit = on_exit

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset != 0:
            return
        status = value & 0xFFFF
        if status == FINISHER_PASS:
            self.on_exit(0, "test finisher: pass")
        elif status == FINISHER_FAIL:
            code = (value >> 16) & 0xFFFF
            self.on_exit(code, f"test finisher: fail {code}")
        elif status == FINISHER_RESET:
            self.on_exit(0, "test finisher: reset")
