"""virtio over PCI (virtio 1.x section 4.1), the modern layout: virtio-blk-pci and virtio-net-pci.

The function is 1af4:1040+ID (1041 net, 1042 blk), revision 1 (modern only, no legacy I/O
BAR), with four vendor capabilities (4.1.4) pointing into one 16 KiB memory BAR0, laid out
as QEMU lays out its own:

    0x0000 common configuration  (4.1.4.3: features, status, queue select/size/enable/addresses)
    0x1000 ISR status            (read: the bits, and clears them, lowering INTx)
    0x2000 device configuration  (the blk / net config struct)
    0x3000 notifications         (queue i at 0x3000 + 4 * i: queue_notify_off = i, multiplier 4)

Why a wrapper rather than a second register engine: the virtio-mmio model (modern, Version 2)
already keeps the device status, feature negotiation, the queues and their checks, reset,
NEEDS_RESET and the interrupt status; PCI only lays the same registers out differently.
So each common-configuration field is translated into the virtio-mmio register that means
the same thing, and the device models (blk, net) and the queue code run unchanged.

Interrupts: INTx (pin A) is asserted while the ISR has a bit set and COMMAND.INTX_DISABLE is
clear; STATUS.INTX shows the pending state either way.  No MSI-X capability: Linux's driver
then uses INTx with one shared handler (and zCore has no virtio-pci driver).  Not modelled:
the VIRTIO_PCI_CAP_PCI_CFG window (only firmware that cannot reach the BAR needs it).

Every access is bounds-checked: an offset, width or queue index the guest makes up reads 0
or is ignored; queue addresses reach guest memory only through GuestMemory (virtio/queue.py).
"""
from __future__ import annotations

import struct

from emu.devices.dma import GuestMemory
from emu.devices.irq import IrqLine
from emu.devices.pci_host import CAP_ID_VENDOR, CMD_INTX_DISABLE, Bar, PciConfig
from emu.devices.virtio import mmio as M
from emu.devices.virtio.mmio import VirtioBackend, VirtioMmio

VENDOR_VIRTIO = 0x1AF4
DEVICE_MODERN_BASE = 0x1040  # + virtio device ID (4.1.2.1)
SUBSYSTEM = (0x1AF4, 0x1100)  # QEMU's
CLASS_CODES = {1: 0x020000, 2: 0x010000}  # net: Ethernet; blk: SCSI storage (as QEMU)
CLASS_OTHER = 0xFF0000

BAR_SIZE = 0x4000
COMMON, ISR, DEVICE, NOTIFY = 0x0000, 0x1000, 0x2000, 0x3000
REGION = 0x1000  # each structure's length in the BAR
NOTIFY_MULTIPLIER = 4

# virtio_pci_cap cfg_type (4.1.4)
CAP_COMMON_CFG, CAP_NOTIFY_CFG, CAP_ISR_CFG, CAP_DEVICE_CFG = 1, 2, 3, 4

NO_VECTOR = 0xFFFF  # VIRTIO_MSI_NO_VECTOR: no MSI-X here

# struct virtio_pci_common_cfg (4.1.4.3): offset -> (width, name)
COMMON_FIELDS = {
    0x00: (4, "device_feature_select"), 0x04: (4, "device_feature"),
    0x08: (4, "driver_feature_select"), 0x0C: (4, "driver_feature"),
    0x10: (2, "msix_config"), 0x12: (2, "num_queues"),
    0x14: (1, "device_status"), 0x15: (1, "config_generation"),
    0x16: (2, "queue_select"), 0x18: (2, "queue_size"),
    0x1A: (2, "queue_msix_vector"), 0x1C: (2, "queue_enable"),
    0x1E: (2, "queue_notify_off"),
    0x20: (8, "queue_desc"), 0x28: (8, "queue_driver"), 0x30: (8, "queue_device"),
}
COMMON_SIZE = 0x38
# Writable fields and the virtio-mmio register with the same meaning (64-bit ones: the low half).
_MMIO_REG = {
    "device_feature_select": M.DEVICE_FEATURES_SEL, "driver_feature_select": M.DRIVER_FEATURES_SEL,
    "driver_feature": M.DRIVER_FEATURES, "device_status": M.STATUS, "queue_select": M.QUEUE_SEL,
    "queue_size": M.QUEUE_NUM, "queue_enable": M.QUEUE_READY,
    "queue_desc": M.QUEUE_DESC_LOW, "queue_driver": M.QUEUE_DRIVER_LOW, "queue_device": M.QUEUE_DEVICE_LOW,
}


def _cap(cfg_type: int, offset: int, length: int, extra: bytes = b"") -> bytes:
    """struct virtio_pci_cap after cap_vndr/cap_next: cap_len, cfg_type, bar, padding, offset, length."""
    return struct.pack("<BBB3xII", 16 + len(extra), cfg_type, 0, offset, length) + extra


class VirtioPci:
    """One virtio PCI function holding a device (blk or net), for a slot of a PciHost."""

    def __init__(self, backend: VirtioBackend, dma: GuestMemory, irq: IrqLine,
                 queue_num_max: int = M.QUEUE_NUM_MAX_DEFAULT) -> None:
        self.intx = irq
        self.pending = False  # the ISR has a bit set
        self.core = VirtioMmio(backend, dma, IrqLine(0, self._core_irq), legacy=False, queue_num_max=queue_num_max)
        device_id = backend.device_id
        self.config = PciConfig(VENDOR_VIRTIO, DEVICE_MODERN_BASE + device_id,
                                CLASS_CODES.get(device_id, CLASS_OTHER), revision=1, subsystem=SUBSYSTEM,
                                pin=1, bars=(Bar(BAR_SIZE),))
        self.config.add_capability(CAP_ID_VENDOR, _cap(CAP_COMMON_CFG, COMMON, REGION))
        self.config.add_capability(CAP_ID_VENDOR, _cap(CAP_ISR_CFG, ISR, REGION))
        self.config.add_capability(CAP_ID_VENDOR, _cap(CAP_DEVICE_CFG, DEVICE, REGION))
        self.config.add_capability(CAP_ID_VENDOR, _cap(CAP_NOTIFY_CFG, NOTIFY, REGION,
                                                       struct.pack("<I", NOTIFY_MULTIPLIER)))

    @property
    def backend(self) -> VirtioBackend:
        return self.core.backend

    # -- interrupts ---------------------------------------------------------------------------
    def _core_irq(self, _line: int, level: bool) -> None:
        self.pending = level
        self._update_intx()

    def _update_intx(self) -> None:
        self.config.set_intx_status(self.pending)
        self.intx.set(self.pending and not self.config.command & CMD_INTX_DISABLE)

    # -- PCI function -------------------------------------------------------------------------
    def config_written(self) -> None:
        """COMMAND may have changed: INTX_DISABLE masks the line."""
        self._update_intx()

    def bar_read(self, bar: int, offset: int, size: int) -> int:
        if bar != 0 or size not in (1, 2, 4, 8):
            return 0
        region, at = offset & ~(REGION - 1), offset & (REGION - 1)
        if region == COMMON:
            return self._common_read(at, size)
        if region == ISR:
            if at:
                return 0
            bits = self.core.isr
            self.core.write(M.INTERRUPT_ACK, 4, bits)  # reading clears, and lowers INTx (4.1.4.5)
            return bits
        if region == DEVICE:
            return self.core.read(M.CONFIG + at, size)
        return 0  # notifications are write-only

    def bar_write(self, bar: int, offset: int, size: int, value: int) -> None:
        if bar != 0 or size not in (1, 2, 4, 8):
            return
        region, at = offset & ~(REGION - 1), offset & (REGION - 1)
        value &= (1 << 8 * size) - 1
        if region == COMMON:
            self._common_write(at, size, value)
        elif region == DEVICE:
            self.core.write(M.CONFIG + at, size, value)
        elif region == NOTIFY and at % NOTIFY_MULTIPLIER == 0:
            index = at // NOTIFY_MULTIPLIER
            if index < len(self.core.queues):
                self.core.write(M.QUEUE_NOTIFY, 4, index)

    def poll(self) -> None:
        self.core.poll()

    def wait_fds(self) -> list[int]:
        return self.core.wait_fds()

    def close(self) -> None:
        self.core.close()

    # -- common configuration -------------------------------------------------------------------
    @staticmethod
    def _field(at: int, size: int) -> tuple[int, int, str] | None:
        """The field [at, at + size) lies in (its offset, width, name), or None."""
        for start, (width, name) in COMMON_FIELDS.items():
            if start <= at and at + size <= start + width:
                return start, width, name
        return None

    def _common_value(self, name: str) -> int:
        core = self.core
        if name == "device_feature_select":
            return core.device_features_sel
        if name == "device_feature":
            return core.read(M.DEVICE_FEATURES, 4)
        if name == "driver_feature_select":
            return core.driver_features_sel
        if name == "driver_feature":
            sel = core.driver_features_sel
            return (core.driver_features >> 32 * sel) & 0xFFFF_FFFF if sel < 2 else 0
        if name in ("msix_config", "queue_msix_vector"):
            return NO_VECTOR
        if name == "num_queues":
            return len(core.queues)
        if name == "device_status":
            return core.status
        if name == "config_generation":
            return core.config_generation & 0xFF
        if name == "queue_select":
            return core.queue_sel & 0xFFFF
        if name == "queue_notify_off":
            return core.queue_sel if core.queue_sel < len(core.queues) else 0
        reg = _MMIO_REG[name]
        if name.startswith("queue_d"):  # 64-bit addresses: two mmio halves
            return core.read(reg, 4) | core.read(reg + 4, 4) << 32
        return core.read(reg, 4)

    def _common_read(self, at: int, size: int) -> int:
        field = self._field(at, size)
        if field is None:
            return 0
        start, _, name = field
        return (self._common_value(name) >> 8 * (at - start)) & ((1 << 8 * size) - 1)

    def _common_write(self, at: int, size: int, value: int) -> None:
        """A write of a whole field (or a 32-bit half of an address): what it means on mmio."""
        field = self._field(at, size)
        if field is None:
            return
        start, width, name = field
        reg = _MMIO_REG.get(name)
        if reg is None:
            return  # read-only, or an MSI-X vector (none here)
        if width == 8:
            if size == 8:
                self.core.write(reg, 4, value & 0xFFFF_FFFF)
                self.core.write(reg + 4, 4, value >> 32)
            elif size == 4:
                self.core.write(reg + (at - start), 4, value)
            return
        if size == width:
            self.core.write(reg, 4, value)
