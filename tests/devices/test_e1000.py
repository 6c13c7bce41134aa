"""The PCI host (ECAM, BAR sizing, the MMIO window, the device-tree node) and the e1000 /
e1000e NIC, driven from Python the way zCore's driver (isomorphic_drivers' E1000) drives it:
zCore's scan and enable sequence, legacy descriptor rings of 256 entries, RX buffers of 4 KiB
(BSEX | BSIZE=3), SECRC; then libslirp answers (ARP, ping) and bad guest input.
"""
from __future__ import annotations

import random
import socket
import struct
import time

import libfdt
import pytest

from emu.board import BoardSpec
from emu.devices import e1000 as E
from emu.devices.e1000 import E1000, make_e1000
from emu.devices.e1000_mgmt import eeprom_image
from emu.devices.pci_host import PciHost, intx_irq
from emu.fdt import build_fdt
from tests.devices.test_virtio_net import (BCAST, GUEST_MAC, Recorder, arp_request, icmp_echo, is_arp_reply,
                                           is_echo_reply, needs_slirp)
from tests.devices.virtio_driver import RAM_BASE, Irq, Ram
from tests.guest import build, needs_binutils

WINDOW = 0x4000_0000
SLOT = 1
TX_RING, RX_RING = RAM_BASE + 0x1000, RAM_BASE + 0x2000
TX_BUFS, RX_BUFS = RAM_BASE + 0x10000, RAM_BASE + 0x20000
RING = 256  # zCore: one 4 KiB page of 16-byte descriptors
BUF = 4096
ZCORE_MAC = bytes([0x54, 0x51, 0x9F, 0x71, 0xC0, 0x00])  # what zCore's driver programs into RA[0]


def cfg_addr(slot: int, reg: int, bus: int = 0, fn: int = 0) -> int:
    return bus << 20 | slot << 15 | fn << 12 | reg


class Board:
    """A PCI host with one NIC in slot 1 and a driver that talks through ECAM and the window."""

    def __init__(self, model: str = "e1000", backend=None, ram_size: int = 2 << 20) -> None:
        self.ram, self.irq = Ram(ram_size), Irq()
        self.backend = backend if backend is not None else Recorder()
        self.nic = E1000(model, self.backend, GUEST_MAC, self.ram.mem, self.irq.line)
        self.host = PciHost(WINDOW)
        self.host.attach(self.nic, SLOT)
        self.tx_tail = 0

    # config space, as zCore's pci crate reaches it (32-bit accesses only)
    def cfg_read(self, reg: int, slot: int = SLOT) -> int:
        return self.host.ecam.read(cfg_addr(slot, reg), 4)

    def cfg_write(self, reg: int, value: int, slot: int = SLOT) -> None:
        self.host.ecam.write(cfg_addr(slot, reg), 4, value)

    # BAR0 registers through the MMIO window
    def r(self, reg: int) -> int:
        return self.host.window.read(reg, 4)

    def w(self, reg: int, value: int) -> None:
        self.host.window.write(reg, 4, value)

    def enable(self) -> None:
        """zCore's pci.rs `enable` for a function without MSI: BAR0, then COMMAND and the line."""
        self.cfg_write(0x10, WINDOW)
        self.cfg_write(0x04, 0x6)
        self.cfg_write(0x3C, 33)

    def init(self) -> None:
        """isomorphic_drivers E1000::new, minus the MTA loop."""
        for i in range(RING):
            self.ram.put(TX_RING + 16 * i, struct.pack("<Q", TX_BUFS + 64 * i))
            self.ram.put(RX_RING + 16 * i, struct.pack("<Q", RX_BUFS + BUF * (i % 8)))
        self.w(E.TDBAL, TX_RING)
        self.w(E.TDBAH, 0)
        self.w(E.TDLEN, RING * 16)
        self.w(E.TDH, 0)
        self.w(E.TDT, 0)
        self.w(E.TCTL, (1 << 1) | (1 << 3) | (0x10 << 4) | (0x40 << 12))
        self.w(E.RA, int.from_bytes(ZCORE_MAC[:4], "little"))
        self.w(E.RA + 4, int.from_bytes(ZCORE_MAC[4:], "little") | 1 << 31)
        self.w(E.RDBAL, RX_RING)
        self.w(E.RDBAH, 0)
        self.w(E.RDLEN, RING * 16)
        self.w(E.RDH, 0)
        self.w(E.RDT, RING - 1)
        self.w(E.RCTL, (1 << 1) | (1 << 15) | (3 << 16) | (1 << 25) | (1 << 26))
        self.w(E.ICR, self.r(E.ICR))
        self.w(E.IMS, 1 << 7)
        self.w(E.ICR, self.r(E.ICR))

    def send(self, frame: bytes) -> int:
        """One legacy descriptor, RS | IFCS | EOP; returns its index."""
        i = self.tx_tail
        addr = TX_BUFS + 64 * i
        if len(frame) > 64:
            addr = RAM_BASE + 0x60000
        self.ram.put(TX_RING + 16 * i, struct.pack("<QHBBBBH", addr, len(frame), 0, 0x0B, 0, 0, 0))
        self.ram.put(addr, frame)
        self.tx_tail = (i + 1) % RING
        self.w(E.TDT, self.tx_tail)
        return i

    def received(self) -> list[bytes]:
        """Frames in descriptors the device completed, given back as zCore's receive() does."""
        out = []
        while True:
            index = (self.r(E.RDT) + 1) % RING
            desc = RX_RING + 16 * index
            length, _csum, status = struct.unpack("<HHB", self.ram.get(desc + 8, 5))
            if not status & E.DD:
                return out
            addr = struct.unpack("<Q", self.ram.get(desc, 8))[0]
            out.append(self.ram.get(addr, length))
            self.ram.put(desc + 12, b"\0")
            self.w(E.RDT, index)


@pytest.fixture
def board():
    b = Board()
    b.enable()
    b.init()
    return b


# -- PCI host ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model,device_id", [("e1000", 0x100E), ("e1000e", 0x10D3)])
def test_config_space_and_bar_sizing(model, device_id):
    b = Board(model)
    assert b.cfg_read(0, slot=0) == 0x0008_1B36  # QEMU's host bridge, which zCore lists and skips
    assert b.cfg_read(0) == device_id << 16 | 0x8086
    assert b.cfg_read(0x08) >> 8 == 0x020000  # Ethernet controller
    assert b.host.ecam.read(cfg_addr(2, 0), 4) == 0xFFFF_FFFF  # empty slot
    assert b.host.ecam.read(cfg_addr(SLOT, 0, fn=1), 2) == 0xFFFF  # no function 1
    assert b.host.ecam.read(cfg_addr(0, 0, bus=1), 4) == 0xFFFF_FFFF  # no bus behind a bridge
    assert b.host.ecam.read(cfg_addr(SLOT, 0x100), 4) == 0  # extended config space: nothing
    # the pci crate's BAR::decode: save, write all ones, read the size mask, restore
    for i in range(6):
        raw = b.cfg_read(0x10 + 4 * i)
        b.cfg_write(0x10 + 4 * i, 0xFFFF_FFFF)
        mask = b.cfg_read(0x10 + 4 * i)
        b.cfg_write(0x10 + 4 * i, raw)
        assert (raw, mask) == ((0, 0xFFFE_0000) if i == 0 else (0, 0))  # BAR0: 128 KiB, 32-bit memory
    assert b.cfg_read(0x3C) >> 8 & 0xFF == 1  # INTA
    b.enable()  # its 32-bit write at 0x3C must not clear the read-only pin
    assert b.cfg_read(0x3C) & 0xFFFF == 0x0121
    assert b.cfg_read(0x10) == WINDOW and b.cfg_read(0x04) & 0xFFFF == 0x6
    b.cfg_write(0x04, 0xFFFF_FFFF)
    assert b.cfg_read(0x04) & 0xFFFF == 0x0407  # IO, MEM, MASTER, INTX_DISABLE are writable
    assert intx_irq(SLOT, 1) == 33


def test_capabilities_are_msi_on_e1000e_only():
    assert not Board("e1000").cfg_read(0x04) & (1 << 20)  # STATUS.CAP_LIST clear
    b = Board("e1000e")
    assert b.cfg_read(0x04) & (1 << 20) and b.cfg_read(0x34) & 0xFF == 0xD0
    ctrl = b.cfg_read(0xD0)
    assert ctrl & 0xFF == 5 and ctrl >> 8 & 0xFF == 0 and ctrl >> 16 & (1 << 7)  # MSI, last, 64-bit
    # zCore's MSI path: address, data (64-bit layout), enable; COMMAND never written
    b.cfg_write(0x10, WINDOW)
    b.cfg_write(0xD4, 0xFEE0_0000)
    b.cfg_write(0xDC, 24 + 32)
    b.cfg_write(0xD0, ctrl | 0x10000)
    assert b.nic.config.msi_enabled
    assert b.r(E.STATUS) == 0 and b.r(E.RDT) == 0  # COMMAND.MEM off: the BAR does not decode
    b.w(E.IMS, 1 << 7)
    assert b.nic.regs[E.IMS // 4] == 0  # the write went nowhere, as on QEMU
    b.cfg_write(0x04, 0x6)
    b.w(E.IMS, 1 << 7)
    b.w(E.ICS, 1 << 7)
    assert not b.irq.level and b.nic.stats.msi_dropped  # MSI on: no INTx, and no MSI controller


def test_window_routes_only_decoded_bars(board):
    assert board.r(E.STATUS) & E.STATUS_LU
    board.cfg_write(0x04, 0)  # memory decoding off
    assert board.r(E.STATUS) == 0
    board.cfg_write(0x04, 0x6)
    board.cfg_write(0x10, WINDOW + 0x10_0000)
    assert board.r(E.STATUS) == 0 and board.host.window.read(0x10_0000 + E.STATUS, 4) & E.STATUS_LU


def test_device_tree_pci_node():
    assert libfdt.Fdt(build_fdt(BoardSpec())).path_offset("/soc/pci@30000000", libfdt.QUIET_NOTFOUND) < 0
    fdt = libfdt.Fdt(build_fdt(BoardSpec(pci=True)))
    node = fdt.path_offset("/soc/pci@30000000")
    assert fdt.getprop(node, "compatible").as_str() == "pci-host-ecam-generic"
    assert fdt.getprop(node, "device_type").as_str() == "pci"
    cells = lambda name: struct.unpack(f">{len(fdt.getprop(node, name)) // 4}I", fdt.getprop(node, name))  # noqa: E731
    assert cells("reg") == (0, 0x3000_0000, 0, 0x1000_0000)
    assert cells("ranges") == (0x0200_0000, 0, WINDOW, 0, WINDOW, 0, 0x4000_0000)
    assert cells("bus-range") == (0, 255)
    imap = cells("interrupt-map")
    plic = fdt.get_phandle(fdt.path_offset("/soc/plic@c000000"))
    rows = [imap[i:i + 6] for i in range(0, len(imap), 6)]
    assert len(rows) == 16 and all(r[4] == plic for r in rows)
    assert {(r[0] >> 11, r[3]): r[5] for r in rows}[(1, 1)] == 33
    assert sorted({r[5] for r in rows}) == [32, 33, 34, 35]


# -- the NIC -------------------------------------------------------------------------------------
@pytest.mark.parametrize("model", ["e1000", "e1000e"])
def test_mac_in_eeprom_and_receive_address(model):
    b = Board(model)
    b.cfg_write(0x10, WINDOW)
    b.cfg_write(0x04, 0x6)
    m = E.MODELS[model]
    words = []
    for addr in range(3):
        b.w(E.EERD, addr << m.eerd_addr_shift | 1)
        value = b.r(E.EERD)
        assert value & m.eerd_done
        words.append(value >> 16)
    assert b"".join(w.to_bytes(2, "little") for w in words) == GUEST_MAC
    assert sum(eeprom_image(GUEST_MAC)) & 0xFFFF == 0xBABA
    assert b.r(E.RA) == int.from_bytes(GUEST_MAC[:4], "little")
    assert b.r(E.RA + 4) == int.from_bytes(GUEST_MAC[4:], "little") | 1 << 31
    b.w(E.MDIC, 2 << 26 | 1 << 21 | 1 << 16)  # read PHY status
    assert b.r(E.MDIC) & (1 << 28) and b.r(E.MDIC) & (1 << 2)  # ready, link up
    b.w(E.MDIC, 2 << 26 | 2 << 21 | 1 << 16)  # a PHY address with nothing there
    assert b.r(E.MDIC) & (1 << 30)


def test_transmit_and_receive_like_zcore(board):
    frame = BCAST + ZCORE_MAC + b"\x08\x06" + bytes(28)
    i = board.send(frame)
    assert board.backend.sent == [frame]
    assert board.ram.get(TX_RING + 16 * i + 12, 1)[0] & E.DD  # RS: written back
    assert board.r(E.TDH) == board.r(E.TDT) == 1
    assert board.r(E.ICR) & E.ICR_TXDW and board.r(E.ICR) == 0  # read clears
    board.backend.inbox += [ZCORE_MAC + b"\x02" * 6 + b"\x08\x00" + b"hi", b"\x02" + bytes(5) + bytes(60), frame]
    board.nic.poll()
    got = board.received()
    assert got == [(ZCORE_MAC + b"\x02" * 6 + b"\x08\x00" + b"hi").ljust(60, b"\0"), frame.ljust(60, b"\0")]
    assert board.nic.stats.rx_filtered == 1  # the unicast frame for another MAC
    assert board.irq.level  # RXT0 is in IMS, INTx with MSI off
    assert board.r(E.ICR) & E.ICR_RXT0 and not board.irq.level
    board.w(E.IMC, 0xFFFF_FFFF)
    board.w(E.ICS, E.ICR_RXT0)
    assert not board.irq.level  # masked
    board.w(E.IMS, E.ICR_RXT0)
    assert board.irq.level
    board.cfg_write(0x04, 0x6 | 1 << 10)  # INTx disable
    assert not board.irq.level


def test_receive_waits_for_buffers_and_keeps_frame_order(board):
    board.w(E.RDT, 2)  # the device owns descriptors 0 and 1 only
    frames = [ZCORE_MAC + GUEST_MAC + b"\x08\x00" + bytes([n]) * 50 for n in range(4)]
    board.backend.inbox += frames
    board.nic.poll()
    assert board.r(E.RDH) == 2 and len(board.nic.pending) == 2
    board.w(E.RDT, 10)
    assert board.r(E.RDH) == 4 and not board.nic.pending
    firsts = [board.ram.get(RX_BUFS + BUF * i + 14, 1)[0] for i in range(4)]
    assert firsts == [0, 1, 2, 3]


def test_frame_larger_than_a_buffer_spans_descriptors(board):
    board.w(E.RCTL, (1 << 1) | (1 << 15) | (3 << 16) | (1 << 26))  # BSIZE=3 without BSEX: 256 bytes
    board.backend.inbox.append(ZCORE_MAC + GUEST_MAC + b"\x08\x00" + bytes(range(256)) * 2)
    board.nic.poll()
    assert board.r(E.RDH) == 3
    statuses = [board.ram.get(RX_RING + 16 * i + 12, 1)[0] for i in range(3)]
    assert statuses == [E.DD, E.DD, E.DD | E.RX_EOP]


def test_ctrl_reset_and_link_down():
    b = Board()
    b.enable()
    b.init()
    b.w(E.CTRL, 1 << 26)
    assert b.r(E.RCTL) == 0 and b.r(E.TDLEN) == 0 and b.r(E.CTRL) & (1 << 26) == 0
    assert b.r(E.RA) == int.from_bytes(GUEST_MAC[:4], "little")  # reloaded from the EEPROM
    down = E1000("e1000", Recorder(), GUEST_MAC, b.ram.mem, b.irq.line, link=False)
    assert not down.bar_read(0, E.STATUS, 4) & E.STATUS_LU


# -- bad guest input -------------------------------------------------------------------------------
@pytest.mark.parametrize("what", ["ring outside RAM", "buffer outside RAM", "ring length", "head beyond ring"])
def test_bad_rings_stop_dma_without_raising(board, what):
    if what == "ring outside RAM":
        board.w(E.TDBAL, 0x1000)
    elif what == "buffer outside RAM":
        board.ram.put(TX_RING, struct.pack("<QHBBBBH", 0xFFFF_FFFF_FFFF_F000, 1500, 0, 0x0B, 0, 0, 0))
    elif what == "ring length":
        board.w(E.TDLEN, 100)
    else:
        board.w(E.TDH, 4000)
    board.w(E.TDT, 1)
    assert board.nic.error is not None and board.backend.sent == []
    assert board.ram.outside == []
    board.backend.inbox.append(BCAST + GUEST_MAC + b"\x08\x06" + bytes(28))
    board.nic.poll()
    assert board.r(E.RDH) == 0  # no DMA in the error state
    board.w(E.CTRL, 1 << 26)  # the driver's way out
    assert board.nic.error is None


def random_step(b: Board, rng: random.Random, regs: list[int], near: list[int]) -> None:
    """One guest action: mostly plausible ring traffic with hostile fields, some raw register writes."""
    op = rng.random()
    addr = (rng.choice(near) + rng.randrange(0, 64)) % (1 << 64)
    if op < 0.35:
        i = rng.randrange(RING)
        lower = rng.choice([rng.randrange(0, 2000), rng.getrandbits(20)]) | rng.getrandbits(8) << 24
        if rng.random() < 0.5:
            lower = lower & ~(E.TX_DEXT << 24 | 0xF << 20) | rng.choice([0, 1 << 20]) | (E.TX_EOP | E.TX_RS) << 24
        b.ram.put(TX_RING + 16 * i, struct.pack("<QII", addr, lower, rng.getrandbits(32)))
        b.w(E.TDT, rng.choice([i + 1] * 8 + [rng.randrange(RING), rng.randrange(1 << 16)]) % (1 << 16))
    elif op < 0.6:
        if rng.random() < 0.3:
            b.ram.put(RX_RING + 16 * rng.randrange(RING), struct.pack("<QII", addr, 0, 0))
        dst = rng.choice([ZCORE_MAC, BCAST, rng.randbytes(6)])
        b.backend.inbox.append(dst + rng.randbytes(rng.randrange(0, 20000)))
        b.nic.poll()
        b.received()
    elif op < 0.75:
        b.w(E.RDT, rng.choice([rng.randrange(RING)] * 8 + [rng.randrange(1 << 16)]))
    elif op < 0.8:
        b.w(rng.choice(regs), rng.choice([rng.getrandbits(32), rng.randrange(0, 300), 0xFFFF_FFFF]))
    else:
        b.host.window.read(rng.randrange(0, 0x20000), rng.choice([1, 2, 4, 8]))
        b.host.window.write(rng.randrange(0, 0x20000), rng.choice([1, 2, 4, 8]), rng.getrandbits(64))


def test_random_registers_and_descriptors_never_raise():
    rng = random.Random(1)
    regs = [E.CTRL, E.ICR, E.ICS, E.IMS, E.IMC, E.RCTL, E.TCTL, E.RDBAL, E.RDBAH, E.RDLEN, E.RDH, E.RDT,
            E.TDBAL, E.TDBAH, E.TDLEN, E.TDH, E.TDT, E.EERD, E.MDIC, E.RA, E.RA + 4, E.MTA, 0x1FFFC]
    near = [TX_BUFS, RX_BUFS, 0, RAM_BASE + (2 << 20) - 8, 0xFFFF_FFF0, (1 << 64) - 16]
    moved = errors = 0
    for _ in range(200):
        b = Board(rng.choice(["e1000", "e1000e"]))
        b.enable()
        b.init()
        for _ in range(40):
            random_step(b, rng, regs, near)
        assert b.ram.outside == []
        assert all(len(f) <= E.MAX_FRAME for f in b.backend.sent)
        moved += b.nic.stats.tx + b.nic.stats.rx
        errors += b.nic.error is not None
    print(f"frames moved {moved}, boards in the error state {errors}")
    assert moved > 100 and errors > 20  # the walk reached both the data paths and the error state


# -- libslirp --------------------------------------------------------------------------------------
def wait_received(board: Board, want, timeout: float = 2.0) -> list[bytes]:
    got: list[bytes] = []
    end = time.monotonic() + timeout
    while time.monotonic() < end and not any(want(f) for f in got):
        board.nic.poll()
        got += board.received()
        time.sleep(0.002)
    return got


@needs_slirp
@pytest.mark.parametrize("model", ["e1000", "e1000e"])
def test_arp_and_ping_to_slirp_through_the_nic(model):
    from emu.devices.virtio import make_net_backend

    b = Board(model, make_net_backend({"backend": "user"}))
    try:
        b.enable()
        b.init()
        b.w(E.RA, int.from_bytes(GUEST_MAC[:4], "little"))  # the helpers' frames come from GUEST_MAC
        b.w(E.RA + 4, int.from_bytes(GUEST_MAC[4:], "little") | 1 << 31)
        b.send(arp_request("10.0.2.15", "10.0.2.2"))
        reply = next(f for f in wait_received(b, is_arp_reply) if is_arp_reply(f))
        assert socket.inet_ntoa(reply[28:32]) == "10.0.2.2"
        b.send(icmp_echo(reply[22:28], "10.0.2.15", "10.0.2.2"))
        assert any(is_echo_reply(f) for f in wait_received(b, is_echo_reply))
        assert b.irq.level
    finally:
        b.nic.close()


def test_make_e1000_options():
    ram, irq = Ram(), Irq()
    nic = make_e1000("e1000e", "none,mac=52:54:00:00:00:09", ram.mem, irq.line)
    assert nic.mac == bytes.fromhex("525400000009") and not nic.link
    from emu.errors import EmuError

    with pytest.raises(EmuError, match="--nic"):
        make_e1000("rtl8139", "none", ram.mem, irq.line)
    with pytest.raises(EmuError, match="MAC"):
        make_e1000("e1000", "none,mac=01:00:00:00:00:00", ram.mem, irq.line)



# -- a bare-metal guest on the whole machine ------------------------------------------------------
GUEST = """
.macro NIC_W off, reg
    li t6, \\off
    add t6, t6, s1
    sw \\reg, 0(t6)
.endm
main:
    li s0, 0x30000000       # ECAM, bus 0
    li s1, 0x40000000       # where BAR0 goes (zCore's E1000_BASE)
    la s2, out
    lwu t0, 0(s0)            # 00:00.0
    sd t0, 0(s2)
    li t1, 0x8000           # 00:01.0
    add s3, s0, t1
    lwu t0, 0(s3)
    sd t0, 8(s2)
    li t1, 0x10000          # 00:02.0: nothing
    add t1, s0, t1
    lwu t0, 0(t1)
    sd t0, 16(s2)
    li t0, -1               # BAR0 sizing
    sw t0, 0x10(s3)
    lwu t0, 0x10(s3)
    sd t0, 24(s2)
    sw s1, 0x10(s3)
    li t0, 6                # MEM | MASTER
    sw t0, 4(s3)
    la t0, txring
    NIC_W 0x3800, t0
    NIC_W 0x3804, zero
    li t0, 128
    NIC_W 0x3808, t0
    NIC_W 0x3810, zero
    NIC_W 0x3818, zero
    li t0, 0x0A             # TCTL: EN | PSP
    NIC_W 0x0400, t0
    la t0, rxring
    NIC_W 0x2800, t0
    NIC_W 0x2804, zero
    li t0, 128
    NIC_W 0x2808, t0
    NIC_W 0x2810, zero
    li t0, 7
    NIC_W 0x2818, t0
    li t0, 0x04008002       # RCTL: EN | BAM | SECRC, 2 KiB buffers
    NIC_W 0x0100, t0
    li t0, 0x80             # IMS: RXT0
    NIC_W 0x00D0, t0
    li t0, 1                # TDT: the ARP request in descriptor 0 goes out
    NIC_W 0x3818, t0
    la s4, rxring
    li s5, 20000000
1:  lbu t0, 12(s4)          # descriptor 0 done?
    andi t0, t0, 1
    bnez t0, 2f
    addi s5, s5, -1
    bnez s5, 1b
2:  lhu t0, 8(s4)
    sd t0, 32(s2)           # length
    la t1, rxbufs
    lhu t0, 12(t1)          # ethertype
    sd t0, 40(s2)
    lhu t0, 20(t1)          # ARP opcode
    sd t0, 48(s2)
    li t1, 0x0C001000       # PLIC pending, sources 32..63
    lwu t0, 4(t1)
    sd t0, 56(s2)
    lwu t0, 8(s4)
    EXIT_PASS

    .data
    .align 7
txring:
    .dword arp
    .word 42 | (0x0B << 24)
    .word 0
    .space 16 * 7
rxring:
    .dword rxbufs + 0 * 2048, 0
    .dword rxbufs + 1 * 2048, 0
    .dword rxbufs + 2 * 2048, 0
    .dword rxbufs + 3 * 2048, 0
    .dword rxbufs + 4 * 2048, 0
    .dword rxbufs + 5 * 2048, 0
    .dword rxbufs + 6 * 2048, 0
    .dword rxbufs + 7 * 2048, 0
arp:
    .byte 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 0x08, 0x06
    .byte 0, 1, 8, 0, 6, 4, 0, 1, 0x52, 0x54, 0x00, 0x12, 0x34, 0x56, 10, 0, 2, 15
    .byte 0, 0, 0, 0, 0, 0, 10, 0, 2, 2
    .align 12
rxbufs:
    .space 8 * 2048
"""


@needs_binutils
@needs_slirp
def test_bare_metal_guest_probes_pci_and_gets_an_arp_reply(tmp_path):
    """The whole machine: ECAM and BAR0 through the CPU's MMIO path, DMA from guest RAM,
    libslirp's answer in an RX buffer, INTx pending at the PLIC (source 33 = slot 1, INTA)."""
    import sys

    from emu.machine import Machine, MachineOptions
    from loader.image import load_kernel

    elf = build(GUEST, tmp_path)
    spec = BoardSpec(harts=1, ram_size=64 << 20)
    opts = MachineOptions(timeout=30, stdout=None, capture=True, report=sys.stderr, net="user", nic="e1000")
    kernel = load_kernel(elf, spec.ram.base, spec.ram.size)
    m = Machine(spec, kernel, None, opts)
    result = m.run()
    assert result.exit_code == 0, result.reason
    out = [struct.unpack("<Q", m.cpu.read_phys(kernel.symbols.by_name["out"] + 8 * i, 8))[0] for i in range(8)]
    assert out[:4] == [0x0008_1B36, 0x100E_8086, 0xFFFF_FFFF, 0xFFFE_0000]
    assert out[4] >= 60 and out[5:7] == [0x0608, 0x0200]  # an ARP reply (padded), big-endian fields
    assert out[7] & 1 << 1  # PLIC source 33 pending
    assert result.stats["mmio"]["pcie-mmio"] > 10 and libfdt.Fdt(build_fdt(spec)).path_offset("/soc/pci@30000000") > 0
