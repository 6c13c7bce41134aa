"""Device models: small self-contained objects (state, read, write) on the bus.

A device never reaches into a hart: it raises interrupt lines (to the PLIC) or calls
the callbacks it was given (console output, machine exit, the clock).
"""
from __future__ import annotations

from typing import Protocol


class Device(Protocol):
    """What the bus needs from a device model."""

    def read(self, offset: int, size: int) -> int: ...

    def write(self, offset: int, size: int, value: int) -> None: ...
