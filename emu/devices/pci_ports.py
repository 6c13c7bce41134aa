"""PCI configuration mechanism #1 (ports 0xCF8/0xCFC) of the PC board.

CONFIG_ADDRESS (0xCF8, 32 bits) selects enable/bus/device/function/register; CONFIG_DATA
(0xCFC-0xCFF, any width) reaches that register plus the port's offset in the dword.  A
function that is not there reads all ones, which is how Linux and zCore see an empty
slot.  Without a host (no PCI device on the command line) every function is absent, so
the machine looks as it did before PCI devices existed.  Byte writes to 0xCF8-0xCFB (Linux's
mechanism #2 probe) change nothing.
"""
from __future__ import annotations

from emu.devices.pci_host import PciHost

ADDRESS = 0
DATA = 4
ENABLE = 1 << 31


class PciConfigPorts:
    """The configuration ports in front of bus 0 of `host` (None: an empty bus)."""

    def __init__(self, host: PciHost | None = None) -> None:
        self.host = host
        self.address = 0

    def _target(self, offset: int, size: int):
        """(function, register) CONFIG_DATA at `offset` reaches, or None for nothing."""
        if self.host is None or not self.address & ENABLE or offset < DATA or offset - DATA + size > 4:
            return None
        a = self.address
        dev = self.host.function((a >> 16) & 0xFF, (a >> 11) & 31, (a >> 8) & 7)
        return dev, (a & 0xFC) + offset - DATA

    def read(self, offset: int, size: int) -> int:
        if offset == ADDRESS and size == 4:
            return self.address
        target = self._target(offset, size)
        if target is None:
            return (1 << (8 * size)) - 1  # no device at any bus/device/function
        assert self.host is not None
        return self.host.config_read(target[0], target[1], size)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == ADDRESS and size == 4:
            self.address = value & (ENABLE | 0x00FF_FFFC)
            return
        target = self._target(offset, size)
        if target is not None:
            assert self.host is not None
            self.host.config_write(target[0], target[1], size, value)
