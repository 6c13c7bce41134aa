"""PCI ECAM window with no devices: every read is all ones (vendor 0xFFFF = absent).

zCore probes ECAM at QEMU virt's 0x3000_0000 without asking the device tree and dies on
an access fault if nothing answers there.
"""
from __future__ import annotations


class PciEcamEmpty:
    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        pass
