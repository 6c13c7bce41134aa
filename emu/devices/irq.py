"""An interrupt line from a device to an interrupt controller input."""
from __future__ import annotations

from typing import Callable


class IrqLine:
    """Level-triggered line: the device sets its level, the controller is told on change."""

    __slots__ = ("irq", "level", "_sink")

    def __init__(self, irq: int, sink: Callable[[int, bool], None]) -> None:
        self.irq = irq
        self.level = False
        self._sink = sink

    def set(self, level: bool) -> None:
        if level != self.level:
            self.level = level
            self._sink(self.irq, level)
