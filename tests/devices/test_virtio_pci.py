"""virtio-blk-pci and virtio-net-pci (modern virtio 1.0 PCI) on a PCI host reached through
ports 0xCF8/0xCFC, as on the x86_64 PC board: config space, BAR sizing and placement, the
capability list, feature negotiation and queue setup through the common configuration, I/O
through the rings, INTx and the ISR, and what bad guest input does (nothing to the host)."""
from __future__ import annotations

import struct

import pytest

from emu.board import PC_PCI_GSI_BASE, PC_RAM_MAX
from emu.devices.pci_host import (BAR0, CMD_INTX_DISABLE, COMMAND, INTERRUPT_LINE, INTERRUPT_PIN, STATUS,
                                  STATUS_CAP_LIST, STATUS_INTX, PciHost)
from emu.devices.pci_ports import PciConfigPorts
from emu.devices.virtio import make_virtio_pci, parse_drive
from emu.devices.virtio import mmio as M
from emu.devices.virtio import pci as P
from emu.devices.virtio.blk import S_OK, T_IN, T_OUT
from emu.devices.virtio.net import F_MAC
from tests.devices.test_virtio_net import Recorder
from tests.devices.virtio_driver import RAM_BASE, Irq, Ram
from tests.devices.virtio_pci_driver import CF8, CFC, GENERATION, NUM_QUEUES, PciDriver

WINDOW = PC_RAM_MAX
WINDOW_SIZE = 0x1000_0000
BLK_SLOT, NET_SLOT = 3, 2
QBASE = RAM_BASE + 0x1000
HDR, DATA, STATUS_BYTE = RAM_BASE + 0x10000, RAM_BASE + 0x11000, RAM_BASE + 0x20000
MAGIC = b"EMUDISK1"


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    data = bytearray(16 * 512)
    data[:len(MAGIC)] = MAGIC
    data[512:1024] = bytes(range(256)) * 2
    path.write_bytes(bytes(data))
    return path


class Pc:
    """The PC board's PCI bus in miniature: a host, a disk in slot 3, a NIC in slot 2."""

    def __init__(self, disk, net_backend=None) -> None:
        self.ram = Ram(1 << 20)
        self.irqs: dict[int, list[bool]] = {}
        self.host = PciHost(WINDOW)
        self.blk_irq, self.net_irq = Irq(), Irq()
        self.host.attach(make_virtio_pci("blk", parse_drive(f"file={disk}"), self.ram.mem, self.blk_irq.line),
                         BLK_SLOT)
        if net_backend is not None:
            self.host.attach(make_virtio_pci("net", {"backend": net_backend}, self.ram.mem, self.net_irq.line),
                             NET_SLOT)
        self.host.assign_bars(WINDOW_SIZE, PC_PCI_GSI_BASE)
        self.ports = PciConfigPorts(self.host)

    def cfg(self, slot: int, reg: int, size: int = 4, bus: int = 0, fn: int = 0) -> int:
        self.ports.write(CF8, 4, 1 << 31 | bus << 16 | slot << 11 | fn << 8 | reg & 0xFC)
        return self.ports.read(CFC + (reg & 3), size)


def test_config_space_identifies_modern_virtio_functions(disk):
    pc = Pc(disk, Recorder())
    assert pc.cfg(0, 0) == 0x0008_1B36  # the host bridge at 00:00.0 (Linux's type 1 sanity check)
    assert pc.cfg(0, 8) >> 8 == 0x060000
    assert pc.cfg(BLK_SLOT, 0) == 0x1042_1AF4
    assert pc.cfg(NET_SLOT, 0) == 0x1041_1AF4
    assert pc.cfg(BLK_SLOT, 8) == 0x010000 << 8 | 1  # class (storage), revision 1: modern only
    assert pc.cfg(NET_SLOT, 8) >> 8 == 0x020000
    assert pc.cfg(BLK_SLOT, 0x2C) == 0x1100_1AF4  # subsystem
    assert pc.cfg(BLK_SLOT, INTERRUPT_PIN, 1) == 1  # INTA
    assert pc.cfg(BLK_SLOT, STATUS, 2) & STATUS_CAP_LIST
    # byte and word reads at every offset of CONFIG_DATA
    assert pc.cfg(BLK_SLOT, 2, 2) == 0x1042 and pc.cfg(BLK_SLOT, 1, 1) == 0x1A


def test_absent_functions_and_disabled_cycles_read_all_ones(disk):
    pc = Pc(disk)
    assert pc.cfg(7, 0) == 0xFFFF_FFFF  # empty slot
    assert pc.cfg(BLK_SLOT, 0, fn=1) == 0xFFFF_FFFF  # function 1
    assert pc.cfg(BLK_SLOT, 0, bus=1) == 0xFFFF_FFFF  # bus 1
    pc.ports.write(CF8, 4, BLK_SLOT << 11)  # enable bit clear
    assert pc.ports.read(CFC, 4) == 0xFFFF_FFFF
    assert pc.ports.read(CF8, 4) == BLK_SLOT << 11
    pc.ports.write(3, 1, 1)  # Linux's mechanism #2 probe (outb 0xCFB) leaves CONFIG_ADDRESS alone
    assert pc.ports.read(CF8, 4) == BLK_SLOT << 11
    empty = PciConfigPorts()  # the board without PCI devices
    empty.write(CF8, 4, 1 << 31)
    assert empty.read(CFC, 4) == 0xFFFF_FFFF and empty.read(CFC + 2, 2) == 0xFFFF


def test_bars_are_placed_as_firmware_does_and_size_by_all_ones(disk):
    pc = Pc(disk, Recorder())
    net_bar, blk_bar = pc.cfg(NET_SLOT, BAR0), pc.cfg(BLK_SLOT, BAR0)
    assert (net_bar, blk_bar) == (WINDOW, WINDOW + P.BAR_SIZE)  # slot order, each aligned to its size
    assert pc.cfg(BLK_SLOT, COMMAND, 2) & 0x2  # memory decoding on
    assert pc.cfg(NET_SLOT, INTERRUPT_LINE, 1) == PC_PCI_GSI_BASE + (NET_SLOT + 0) % 4  # 18
    assert pc.cfg(BLK_SLOT, INTERRUPT_LINE, 1) == PC_PCI_GSI_BASE + (BLK_SLOT + 0) % 4  # 19
    # sizing: all ones in, the size mask out (32-bit, non-prefetchable memory), then restored
    pc.ports.write(CF8, 4, 1 << 31 | BLK_SLOT << 11 | BAR0)
    pc.ports.write(CFC, 4, 0xFFFF_FFFF)
    assert pc.ports.read(CFC, 4) == (~(P.BAR_SIZE - 1)) & 0xFFFF_FFFF
    pc.ports.write(CFC, 4, blk_bar)
    assert pc.host.route(blk_bar + 0x10)[0] is pc.host.slots[BLK_SLOT]
    assert pc.host.window.read(0x0FFF_0000, 4) == 0  # nothing decodes there


def test_capability_list_points_into_bar0(disk):
    pc = Pc(disk)
    drv = PciDriver(pc.host, BLK_SLOT, pc.ram)
    assert sorted(drv.caps) == [P.CAP_COMMON_CFG, P.CAP_NOTIFY_CFG, P.CAP_ISR_CFG, P.CAP_DEVICE_CFG]
    for cfg_type, (at, offset, length, mult) in drv.caps.items():
        assert drv.cfg(at + 4, 1) == 0  # BAR0
        assert offset + length <= P.BAR_SIZE
        assert drv.cfg(at + 2, 1) == (20 if cfg_type == P.CAP_NOTIFY_CFG else 16)  # cap_len
    assert drv.caps[P.CAP_NOTIFY_CFG][3] == P.NOTIFY_MULTIPLIER
    assert drv.caps[P.CAP_COMMON_CFG][2] >= P.COMMON_SIZE


def blk_request(drv: PciDriver, q, rtype: int, sector: int, length: int, writable: bool) -> int:
    drv.ram.put(HDR, struct.pack("<IIQ", rtype, 0, sector))
    drv.ram.put(STATUS_BYTE, b"\xff")
    return drv.add_chain(q, [(HDR, 16, False), (DATA, length, writable), (STATUS_BYTE, 1, True)])


def test_blk_read_and_write_through_the_ring_with_intx(disk):
    pc = Pc(disk)
    drv = PciDriver(pc.host, BLK_SLOT, pc.ram)
    feats = drv.init()
    assert feats & M.F_VERSION_1
    assert drv.common(NUM_QUEUES, 2) == 1
    assert drv.device_config(0, 8) == 16  # capacity in sectors
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    head = blk_request(drv, q, T_IN, 0, 1024, True)
    assert drv.take_used(q) == [(head, 1025)]
    assert pc.ram.get(DATA, 8) == MAGIC and pc.ram.get(DATA + 512, 512) == bytes(range(256)) * 2
    assert pc.ram.get(STATUS_BYTE, 1) == bytes([S_OK])
    assert pc.blk_irq.level  # INTA asserted, STATUS.INTX shows it
    assert drv.cfg(STATUS, 2) & STATUS_INTX
    assert drv.ack() == M.INT_USED  # reading the ISR clears it and lowers the line
    assert not pc.blk_irq.level and not drv.cfg(STATUS, 2) & STATUS_INTX
    assert drv.ack() == 0
    # a write, with INTx disabled in COMMAND: pending shows in STATUS, the line stays low
    drv.cfg_write(COMMAND, drv.cfg(COMMAND, 2) | CMD_INTX_DISABLE, 2)
    pc.ram.put(DATA, b"W" * 512)
    head = blk_request(drv, q, T_OUT, 2, 512, False)
    assert drv.take_used(q) == [(head, 1)]
    assert not pc.blk_irq.level and drv.cfg(STATUS, 2) & STATUS_INTX
    drv.cfg_write(COMMAND, drv.cfg(COMMAND, 2) & ~CMD_INTX_DISABLE, 2)
    assert pc.blk_irq.level  # enabling INTx again delivers what is pending
    drv.ack()
    assert disk.read_bytes()[1024:1536] == b"W" * 512


def test_net_transmits_and_receives(disk):
    backend = Recorder()
    pc = Pc(disk, backend)
    drv = PciDriver(pc.host, NET_SLOT, pc.ram)
    assert drv.init() & F_MAC
    assert bytes(drv.device_config(i, 1) for i in range(6)) == bytes.fromhex("525400123456")
    rx = drv.setup_queue(0, 8, QBASE)
    tx = drv.setup_queue(1, 8, QBASE + 0x2000)
    assert (rx.notify_off, tx.notify_off) == (0, 1)
    drv.driver_ok()
    frame = b"\xff" * 6 + bytes.fromhex("525400123456") + b"\x08\x06" + b"x" * 46
    pc.ram.put(DATA, bytes(12) + frame)
    drv.add_chain(tx, [(DATA, 12 + len(frame), False)])
    assert backend.sent == [frame]
    drv.add_chain(rx, [(DATA + 0x1000, 2048, True)])
    backend.inbox.append(b"reply-frame" * 6)
    pc.host.poll()
    assert drv.take_used(rx) == [(0, 12 + 66)]
    assert pc.ram.get(DATA + 0x1000 + 12, 66) == b"reply-frame" * 6
    assert drv.ack() == M.INT_USED and not pc.net_irq.level
    pc.host.close()
    assert backend.closed


def test_features_without_version_1_are_refused(disk):
    pc = Pc(disk)
    drv = PciDriver(pc.host, BLK_SLOT, pc.ram)
    with pytest.raises(AssertionError, match="refused"):
        drv.init(want=~M.F_VERSION_1)


def test_hostile_accesses_do_nothing_to_the_host(disk):
    pc = Pc(disk)
    drv = PciDriver(pc.host, BLK_SLOT, pc.ram)
    drv.init()
    dev = drv.dev
    # widths and offsets no field has: reads 0, writes ignored
    for off in range(0, 0x40):
        for size in (1, 2, 3, 4, 8):
            drv.common(off, size)
            drv.set_common(off, size, 0xFFFF_FFFF_FFFF_FFFF)
    for region in (P.ISR + 8, P.DEVICE + 0xFF8, P.NOTIFY + 2, P.NOTIFY + 4 * 1000, P.BAR_SIZE - 8):
        pc.host.window.write(drv.bar - WINDOW + region, 4, 0x1234)
        pc.host.window.read(drv.bar - WINDOW + region, 4)
    assert drv.common(GENERATION, 1) == 0
    # a queue whose rings lie outside RAM: NEEDS_RESET at the kick, never an exception
    drv.set_common(0x14, 1, 0)
    drv.init()
    drv.set_common(0x16, 2, 0)
    drv.set_common(0x20, 8, 0xFFFF_FFFF_0000)
    drv.set_common(0x28, 8, 0xFFFF_FFFF_1000)
    drv.set_common(0x30, 8, 0xFFFF_FFFF_2000)
    drv.set_common(0x1C, 2, 1)
    drv.driver_ok()
    pc.host.window.write(drv.bar - WINDOW + P.NOTIFY, 2, 0)
    assert dev.core.status & M.S_NEEDS_RESET
    assert pc.ram.outside == []
    drv.set_common(0x14, 1, 0)  # reset clears it
    assert drv.common(0x14, 1) == 0 and not dev.core.status & M.S_NEEDS_RESET


def test_memory_decoding_off_hides_the_bar(disk):
    pc = Pc(disk)
    drv = PciDriver(pc.host, BLK_SLOT, pc.ram)
    drv.cfg_write(COMMAND, 0, 2)
    assert pc.host.window.read(drv.bar - WINDOW + P.COMMON + NUM_QUEUES, 2) == 0
    drv.enable()
    assert pc.host.window.read(drv.bar - WINDOW + P.COMMON + NUM_QUEUES, 2) == 1


def test_functions_sharing_an_interrupt_input_are_wired_or():
    from emu.cpu.x86_64.pci import SharedIntx

    seen = []
    wires = SharedIntx(lambda pin, level: seen.append((pin, level)))
    a, b = wires.line(19, 3), wires.line(19, 7)  # slots 3 and 7: the same I/O APIC input
    a.set(True)
    b.set(True)
    a.set(False)  # b still asserts: the input stays high
    assert seen == [(19, True)]
    b.set(False)
    assert seen == [(19, True), (19, False)]
