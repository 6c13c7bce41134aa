"""An empty virtio-mmio slot (device ID 0), as QEMU virt shows unused slots.

Legacy layout (version 1), QEMU's default: zCore's driver accepts only that.  Real
block and network devices come with the virtio issue.
"""
from __future__ import annotations

MAGIC = 0x74726976  # "virt"
VENDOR_QEMU = 0x554D4551


class VirtioMmioEmpty:
    def read(self, offset: int, size: int) -> int:
        return {0x0: MAGIC, 0x4: 1, 0x8: 0, 0xC: VENDOR_QEMU}.get(offset, 0)

    def write(self, offset: int, size: int, value: int) -> None:
        pass
