"""PCI configuration mechanism #1 (ports 0xCF8/0xCFC) of the PC board, with no devices yet.

CONFIG_ADDRESS (0xCF8, 32 bits) selects bus/device/function/register; CONFIG_DATA
(0xCFC-0xCFF) reads all ones for a function that is not there, which is how Linux and
zCore see an empty slot.  Devices (virtio-blk-pci, virtio-net-pci) come later.
"""
from __future__ import annotations

ADDRESS = 0
ENABLE = 1 << 31


class PciConfigPorts:
    """The configuration ports; every function is absent."""

    def __init__(self) -> None:
        self.address = 0

    def read(self, offset: int, size: int) -> int:
        if offset == ADDRESS and size == 4:
            return self.address
        return (1 << (8 * size)) - 1  # no device at any bus/device/function

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == ADDRESS and size == 4:
            self.address = value & (ENABLE | 0x00FF_FFFC)
