"""virtio-mmio transport (virtio 1.x section 4.2), legacy (Version 1) or modern (Version 2).

Legacy is the default, as QEMU's `force-legacy=on`: zCore's driver (rcore-os
virtio-drivers) accepts only Version 1.  The two layouts share the register file except:

  legacy (v1): HostFeatures/GuestFeatures (32-bit words, word 0 only offered),
               GuestPageSize 0x028, QueueAlign 0x03c, QueuePFN 0x040; the queue lives at
               QueuePFN * GuestPageSize with the used ring aligned to QueueAlign; no
               FEATURES_OK step, no ConfigGeneration.
  modern (v2): DeviceFeatures(Sel)/DriverFeatures(Sel) with VIRTIO_F_VERSION_1 (bit 32)
               offered and required, FEATURES_OK checked, QueueReady 0x044,
               QueueDesc/Driver/Device Low/High 0x080-0x0a4, ConfigGeneration 0x0fc.

Interrupts: InterruptStatus bit 0 = used buffer, bit 1 = configuration change; the IRQ
line is high while any bit is set and InterruptACK clears bits.  A driver that breaks
the virtqueue rules puts the device in DEVICE_NEEDS_RESET (and, after DRIVER_OK, raises a
configuration-change interrupt, spec 2.1.2); it then ignores its queues until reset.
Writing 0 to Status resets the device.
"""
from __future__ import annotations

from typing import Protocol

from emu.devices.dma import DmaError, GuestMemory
from emu.devices.irq import IrqLine
from emu.devices.virtio.queue import VirtqError, Virtqueue

MAGIC = 0x74726976  # "virt"
VENDOR_QEMU = 0x554D4551

# Register offsets (virtio 1.x, 4.2.2 and 4.2.4)
MAGIC_VALUE = 0x000
VERSION = 0x004
DEVICE_ID = 0x008
VENDOR_ID = 0x00C
DEVICE_FEATURES = 0x010
DEVICE_FEATURES_SEL = 0x014
DRIVER_FEATURES = 0x020
DRIVER_FEATURES_SEL = 0x024
GUEST_PAGE_SIZE = 0x028  # legacy
QUEUE_SEL = 0x030
QUEUE_NUM_MAX = 0x034
QUEUE_NUM = 0x038
QUEUE_ALIGN = 0x03C  # legacy
QUEUE_PFN = 0x040  # legacy
QUEUE_READY = 0x044  # modern
QUEUE_NOTIFY = 0x050
INTERRUPT_STATUS = 0x060
INTERRUPT_ACK = 0x064
STATUS = 0x070
QUEUE_DESC_LOW = 0x080
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC
SHM_LEN_LOW = 0x0B0
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC
CONFIG = 0x100

# Device status bits (2.1)
S_ACKNOWLEDGE = 1
S_DRIVER = 2
S_DRIVER_OK = 4
S_FEATURES_OK = 8
S_NEEDS_RESET = 0x40
S_FAILED = 0x80

INT_USED = 1
INT_CONFIG = 2

# Transport / ring feature bits (6)
F_RING_INDIRECT_DESC = 1 << 28
F_RING_EVENT_IDX = 1 << 29
F_VERSION_1 = 1 << 32

QUEUE_NUM_MAX_DEFAULT = 256
PAGE_SIZE_DEFAULT = 4096


class VirtioBackend(Protocol):
    """What a device type (blk, net) gives the transport."""

    device_id: int
    num_queues: int
    features: int  # device-type feature bits (the transport adds ring and version bits)

    def config_bytes(self) -> bytes: ...

    def config_write(self, offset: int, data: bytes) -> None: ...

    def reset(self) -> None: ...

    def process(self, transport: VirtioMmio, queue: Virtqueue) -> None: ...


class VirtioMmio:
    """One virtio-mmio slot holding a device (the MMIO model mapped by the machine)."""

    def __init__(self, backend: VirtioBackend, dma: GuestMemory, irq: IrqLine, legacy: bool = True,
                 queue_num_max: int = QUEUE_NUM_MAX_DEFAULT) -> None:
        self.backend = backend
        self.mem = dma
        self.irq = irq
        self.legacy = legacy
        self.queues = [Virtqueue(i, queue_num_max) for i in range(backend.num_queues)]
        offered = backend.features | F_RING_INDIRECT_DESC | F_RING_EVENT_IDX
        self.device_features = offered & 0xFFFF_FFFF if legacy else offered | F_VERSION_1
        self.config_generation = 0
        self.error: str | None = None  # why the device entered NEEDS_RESET (diagnostics)
        self.errors = 0
        self._reset_state()
        attach = getattr(backend, "attach", None)
        if attach is not None:
            attach(self)

    def _reset_state(self) -> None:
        self.status = 0
        self.isr = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.features = 0  # negotiated
        self.queue_sel = 0
        self.page_size = PAGE_SIZE_DEFAULT
        self.shm_sel = 0
        for q in self.queues:
            q.reset()

    def reset(self) -> None:
        """Device reset (Status written 0, spec 2.4)."""
        self._reset_state()
        self.error = None
        self.backend.reset()
        self.irq.set(False)

    # -- MMIO ------------------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset >= CONFIG:
            return self._config_read(offset - CONFIG, size)
        if size != 4 or offset & 3:
            return 0  # registers are 32-bit (4.2.2.2); QEMU answers 0 too
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return 1 if self.legacy else 2
        if offset == DEVICE_ID:
            return self.backend.device_id
        if offset == VENDOR_ID:
            return VENDOR_QEMU
        if offset == DEVICE_FEATURES:
            if self.device_features_sel > 1:
                return 0
            return (self.device_features >> (32 * self.device_features_sel)) & 0xFFFF_FFFF
        if offset == INTERRUPT_STATUS:
            return self.isr
        if offset == STATUS:
            return self.status
        if offset == CONFIG_GENERATION:
            return 0 if self.legacy else self.config_generation
        if offset in (SHM_LEN_LOW, SHM_LEN_HIGH) and not self.legacy:
            return 0xFFFF_FFFF  # no shared memory regions
        q = self._selected()
        if offset == QUEUE_NUM_MAX:
            return q.num_max if q is not None else 0  # 0: no such queue (4.2.2)
        if q is None:
            return 0
        if offset == QUEUE_NUM:
            return q.num
        if self.legacy:
            if offset == QUEUE_PFN:
                return q.pfn
            if offset == QUEUE_ALIGN:
                return q.align
            return 0
        if offset == QUEUE_READY:
            return int(q.ready)
        addr = {QUEUE_DESC_LOW: q.desc, QUEUE_DRIVER_LOW: q.avail, QUEUE_DEVICE_LOW: q.used}
        if offset in addr:
            return addr[offset] & 0xFFFF_FFFF
        if offset - 4 in addr:
            return addr[offset - 4] >> 32
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= CONFIG:
            self._config_write(offset - CONFIG, size, value)
            return
        if size != 4 or offset & 3:
            return
        value &= 0xFFFF_FFFF
        if offset == STATUS:
            self._write_status(value)
        elif offset == INTERRUPT_ACK:
            self.isr &= ~value
            self._update_irq()
        elif offset == QUEUE_NOTIFY:
            if value < len(self.queues):
                self.notify(value)
        elif offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == DRIVER_FEATURES:
            self._write_driver_features(value)
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == GUEST_PAGE_SIZE:
            if self.legacy:
                # QEMU keeps the page shift (ctz); 0 would make every PFN address 0.
                self.page_size = value & -value if value else PAGE_SIZE_DEFAULT
        elif offset == SHM_SEL:
            self.shm_sel = value
        else:
            self._write_queue_reg(offset, value)

    def _write_queue_reg(self, offset: int, value: int) -> None:
        q = self._selected()
        if q is None:
            return
        if offset == QUEUE_NUM:
            if 0 < value <= q.num_max and not (q.ready and not self.legacy):
                q.num = value
                if self.legacy and q.pfn:
                    q.set_legacy(q.pfn, self.page_size)
            return
        if self.legacy:
            if offset == QUEUE_ALIGN:
                q.align = value
                if q.pfn:
                    q.set_legacy(q.pfn, self.page_size)
            elif offset == QUEUE_PFN:
                q.set_legacy(value, self.page_size)
                if value:
                    q.event_idx = bool(self.features & F_RING_EVENT_IDX)
            return
        if offset == QUEUE_READY:
            if value & 1 and not q.ready:
                q.ready = True
                q.event_idx = bool(self.features & F_RING_EVENT_IDX)
            elif not value & 1:
                q.ready = False  # without VIRTIO_F_RING_RESET the driver should not do this
            return
        if q.ready:
            return  # addresses are fixed while the queue is enabled (4.2.3.2)
        if offset == QUEUE_DESC_LOW:
            q.desc = (q.desc & ~0xFFFF_FFFF) | value
        elif offset == QUEUE_DESC_HIGH:
            q.desc = (q.desc & 0xFFFF_FFFF) | value << 32
        elif offset == QUEUE_DRIVER_LOW:
            q.avail = (q.avail & ~0xFFFF_FFFF) | value
        elif offset == QUEUE_DRIVER_HIGH:
            q.avail = (q.avail & 0xFFFF_FFFF) | value << 32
        elif offset == QUEUE_DEVICE_LOW:
            q.used = (q.used & ~0xFFFF_FFFF) | value
        elif offset == QUEUE_DEVICE_HIGH:
            q.used = (q.used & 0xFFFF_FFFF) | value << 32

    def _write_driver_features(self, value: int) -> None:
        if self.driver_features_sel > 1:
            return
        if not self.legacy and self.status & S_FEATURES_OK:
            return  # features are fixed once FEATURES_OK is set (3.1.1)
        shift = 32 * self.driver_features_sel
        self.driver_features = (self.driver_features & ~(0xFFFF_FFFF << shift)) | value << shift
        if self.legacy:  # no FEATURES_OK step: what the driver writes is what it uses
            self.features = self.driver_features & self.device_features

    def _write_status(self, value: int) -> None:
        value &= 0xFF
        if value == 0:
            self.reset()
            return
        old = self.status
        if not self.legacy and value & S_FEATURES_OK and not old & S_FEATURES_OK:
            # 2.2.2 / 6.1: refuse features the device did not offer, and a modern device
            # refuses a driver that did not accept VIRTIO_F_VERSION_1.
            if self.driver_features & ~self.device_features or not self.driver_features & F_VERSION_1:
                value &= ~S_FEATURES_OK
            else:
                self.features = self.driver_features
        self.status = value & ~S_NEEDS_RESET | old & S_NEEDS_RESET
        if self.status & S_DRIVER_OK and not old & S_DRIVER_OK:
            self._driver_ok()

    def _driver_ok(self) -> None:
        """DRIVER_OK: the device goes live; take whatever the driver queued already."""
        for q in self.queues:
            self.notify(q.index)
        on = getattr(self.backend, "driver_ok", None)
        if on is not None:
            self._guarded(on, self)

    # -- config space ----------------------------------------------------------------------
    def _config_read(self, offset: int, size: int) -> int:
        if size not in (1, 2, 4, 8):
            return 0
        data = self.backend.config_bytes()
        chunk = data[offset:offset + size]
        return int.from_bytes(chunk.ljust(size, b"\0"), "little")

    def _config_write(self, offset: int, size: int, value: int) -> None:
        if size not in (1, 2, 4, 8):
            return
        if offset + size > len(self.backend.config_bytes()):
            return
        self.backend.config_write(offset, (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little"))

    def config_changed(self) -> None:
        """The device changed its configuration space: new generation, interrupt (4.2.2)."""
        self.config_generation = (self.config_generation + 1) & 0xFFFF_FFFF
        if self.status & S_DRIVER_OK:
            self.isr |= INT_CONFIG
            self._update_irq()

    # -- queues ----------------------------------------------------------------------------
    def _selected(self) -> Virtqueue | None:
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    def live(self) -> bool:
        """Whether the device may use its queues now."""
        if self.status & (S_NEEDS_RESET | S_FAILED):
            return False
        return self.legacy or bool(self.status & S_DRIVER_OK)

    def notify(self, index: int) -> None:
        """The driver kicked queue `index`: run the device over it."""
        q = self.queues[index]
        if not q.ready or not self.live():
            return
        q.event_idx = bool(self.features & F_RING_EVENT_IDX)
        self._guarded(self.backend.process, self, q)

    def _guarded(self, fn, *args) -> None:
        try:
            fn(*args)
        except (VirtqError, DmaError) as exc:
            self.fail(str(exc))

    def fail(self, reason: str) -> None:
        """The driver broke the rules: DEVICE_NEEDS_RESET (2.1.2)."""
        self.errors += 1
        if self.error is None:
            self.error = reason
        if self.status & S_NEEDS_RESET:
            return
        self.status |= S_NEEDS_RESET
        if self.status & S_DRIVER_OK:
            self.isr |= INT_CONFIG
            self._update_irq()

    def used(self, q: Virtqueue) -> None:
        """After pushing buffers to `q`: a used-buffer interrupt unless the driver suppressed it."""
        if q.needs_interrupt(self.mem):
            self.isr |= INT_USED
            self._update_irq()

    def _update_irq(self) -> None:
        self.irq.set(self.isr != 0)

    # -- machine hooks ------------------------------------------------------------------------
    def poll(self) -> None:
        """Between rounds: let the device take host-side input (network frames)."""
        poll = getattr(self.backend, "poll", None)
        if poll is not None:
            self._guarded(poll, self)

    def wait_fds(self) -> list[int]:
        """Host fds whose readiness means input for this device (to select on when idle)."""
        fds = getattr(self.backend, "wait_fds", None)
        return list(fds()) if fds is not None else []

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close is not None:
            close()
