"""A minimal modern virtio-pci driver over a PciHost and a bytearray RAM, for tests and the
fuzzer: it finds the structures the way Linux's virtio_pci_modern does (walking the vendor
capabilities in config space, reached through ports 0xCF8/0xCFC), uses each common
configuration field at its own width, notifies through the notify structure and takes
interrupts by reading the ISR.  The ring helpers are the virtio-mmio test driver's.
"""
from __future__ import annotations

import struct

from emu.devices.pci_host import BAR0, CAP_ID_VENDOR, CAP_PTR, COMMAND, PciHost
from emu.devices.pci_ports import PciConfigPorts
from emu.devices.virtio import mmio as M
from emu.devices.virtio import pci as P
from tests.devices.virtio_driver import Driver, Queue, Ram

CF8, CFC = 0, 4  # offsets of CONFIG_ADDRESS / CONFIG_DATA in the port range

# common configuration offsets (virtio 1.x 4.1.4.3)
DFSELECT, DF, GFSELECT, GF, NUM_QUEUES, STATUS, GENERATION = 0x00, 0x04, 0x08, 0x0C, 0x12, 0x14, 0x15
Q_SELECT, Q_SIZE, Q_ENABLE, Q_NOTIFY_OFF, Q_DESC, Q_DRIVER, Q_DEVICE = 0x16, 0x18, 0x1C, 0x1E, 0x20, 0x28, 0x30


class PciDriver(Driver):
    """Drives the function in `slot` of `host`; BAR0 must have been placed (assign_bars)."""

    def __init__(self, host: PciHost, slot: int, ram: Ram) -> None:
        self.host, self.slot, self.ram = host, slot, ram
        self.ports = PciConfigPorts(host)
        self.legacy = False
        self.features = 0
        self.dev = host.slots[slot]  # the VirtioPci (tests look at its state)
        self.caps = self.find_caps()
        self.bar = self.cfg(BAR0) & ~0xF

    # -- config space through the ports ------------------------------------------------------
    def cfg(self, reg: int, size: int = 4) -> int:
        self.ports.write(CF8, 4, 1 << 31 | self.slot << 11 | reg & 0xFC)
        return self.ports.read(CFC + (reg & 3), size)

    def cfg_write(self, reg: int, value: int, size: int = 4) -> None:
        self.ports.write(CF8, 4, 1 << 31 | self.slot << 11 | reg & 0xFC)
        self.ports.write(CFC + (reg & 3), size, value)

    def find_caps(self) -> dict[int, tuple[int, int, int, int]]:
        """cfg_type -> (config offset, BAR offset, length, notify multiplier)."""
        caps = {}
        at = self.cfg(CAP_PTR, 1)
        while at:
            if self.cfg(at, 1) == CAP_ID_VENDOR:
                cfg_type = self.cfg(at + 3, 1)
                mult = self.cfg(at + 16) if cfg_type == P.CAP_NOTIFY_CFG else 0
                caps.setdefault(cfg_type, (at, self.cfg(at + 8), self.cfg(at + 12), mult))
            at = self.cfg(at + 1, 1)
        return caps

    def enable(self) -> None:
        self.cfg_write(COMMAND, self.cfg(COMMAND, 2) | 0x6, 2)  # memory decoding, bus master

    # -- the structures in BAR0 -----------------------------------------------------------------
    def bar_read(self, cfg_type: int, off: int, size: int) -> int:
        return self.host.window.read(self.bar - self.host.window_base + self.caps[cfg_type][1] + off, size)

    def bar_write(self, cfg_type: int, off: int, size: int, value: int) -> None:
        self.host.window.write(self.bar - self.host.window_base + self.caps[cfg_type][1] + off, size, value)

    def common(self, off: int, size: int) -> int:
        return self.bar_read(P.CAP_COMMON_CFG, off, size)

    def set_common(self, off: int, size: int, value: int) -> None:
        self.bar_write(P.CAP_COMMON_CFG, off, size, value)

    def offered(self) -> int:
        self.set_common(DFSELECT, 4, 0)
        lo = self.common(DF, 4)
        self.set_common(DFSELECT, 4, 1)
        return lo | self.common(DF, 4) << 32

    def init(self, want: int = ~M.F_RING_EVENT_IDX) -> int:
        self.enable()
        self.set_common(STATUS, 1, 0)
        self.set_common(STATUS, 1, M.S_ACKNOWLEDGE)
        self.set_common(STATUS, 1, M.S_ACKNOWLEDGE | M.S_DRIVER)
        feats = self.offered() & want
        for sel in (0, 1):
            self.set_common(GFSELECT, 4, sel)
            self.set_common(GF, 4, feats >> 32 * sel & 0xFFFF_FFFF)
        self.set_common(STATUS, 1, M.S_ACKNOWLEDGE | M.S_DRIVER | M.S_FEATURES_OK)
        assert self.common(STATUS, 1) & M.S_FEATURES_OK, "device refused the features"
        self.features = feats
        return feats

    def setup_queue(self, index: int, num: int, base: int) -> Queue:
        self.set_common(Q_SELECT, 2, index)
        assert num <= self.common(Q_SIZE, 2)
        assert self.common(Q_ENABLE, 2) == 0
        desc = base
        avail = desc + 16 * num
        used = (avail + 6 + 2 * num + 3) & ~3
        self.ram.put(base, bytes(used + 4 + 8 * num + 2 - base))
        self.set_common(Q_SIZE, 2, num)
        self.set_common(Q_DESC, 8, desc)  # one 64-bit access
        self.set_common(Q_DRIVER, 4, avail & 0xFFFF_FFFF)  # two 32-bit halves, as Linux writes them
        self.set_common(Q_DRIVER + 4, 4, avail >> 32)
        self.set_common(Q_DEVICE, 8, used)
        self.set_common(Q_ENABLE, 2, 1)
        q = Queue(index, num, desc, avail, used)
        q.notify_off = self.common(Q_NOTIFY_OFF, 2)  # type: ignore[attr-defined]
        return q

    def driver_ok(self) -> None:
        self.set_common(STATUS, 1, self.common(STATUS, 1) | M.S_DRIVER_OK)

    def make_available(self, q: Queue, head: int, notify: bool = True) -> None:
        self.ram.put(q.avail + 4 + 2 * (q.avail_idx % q.num), struct.pack("<H", head))
        q.avail_idx = (q.avail_idx + 1) & 0xFFFF
        self.ram.put(q.avail + 2, struct.pack("<H", q.avail_idx))
        if notify:
            self.notify(q)

    def notify(self, q: Queue) -> None:
        mult = self.caps[P.CAP_NOTIFY_CFG][3]
        self.bar_write(P.CAP_NOTIFY_CFG, q.notify_off * mult, 2, q.index)  # type: ignore[attr-defined]

    def ack(self) -> int:
        return self.bar_read(P.CAP_ISR_CFG, 0, 1)  # reading the ISR clears it

    def device_config(self, off: int, size: int) -> int:
        return self.bar_read(P.CAP_DEVICE_CFG, off, size)
