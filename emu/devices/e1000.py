"""Intel gigabit NICs on PCI: 82540EM (`e1000`, 8086:100e) and 82574L (`e1000e`, 8086:10d3).

Why: zCore's riscv64 network driver is an e1000 one (isomorphic_drivers' E1000 on PCI), and
zcore-tests' QEMU command line adds `-device e1000e`.  What is modelled is what such drivers
use, from Intel's 8254x/82574 manuals: BAR0 registers (128 KiB), legacy and extended
transmit descriptors (no checksum or segmentation offload), legacy receive descriptors, the
receive address / multicast filters, interrupt cause and mask registers, the EEPROM through
EERD (the MAC in words 0..2), a PHY through MDIC whose link is up, and read-to-clear packet
counters.  Not modelled: EEPROM bit-banging through EECD, flow control, VLAN filters, MSI-X.

The e1000e model has an MSI capability, as QEMU's: zCore then takes its MSI path, which
never sets COMMAND.MEM|MASTER, so on QEMU and here its e1000e never sees a register write.
MSI messages go nowhere (the virt board has no MSI controller); with MSI off, interrupts
are INTx through the PLIC.

Frames move through the same backends as virtio-net (emu.devices.virtio: user = libslirp,
tap, none).  Guest memory is reached only through GuestMemory; a descriptor ring or buffer
outside RAM, or ring registers that make no sense, put the device in an error state (no
more DMA until the driver resets it with CTRL.RST) and never raise into the CPU loop.
"""
from __future__ import annotations

import struct
import zlib
from array import array
from collections import deque
from dataclasses import dataclass, field

from emu.devices.dma import DmaError, GuestMemory
from emu.devices.e1000_mgmt import MODELS, Management
from emu.devices.irq import IrqLine
from emu.devices.pci_host import Bar, CMD_INTX_DISABLE, PciConfig
from emu.devices.virtio.net import PENDING_MAX, NetBackend
from emu.errors import EmuError

INTEL = 0x8086
CLASS_ETHERNET = 0x020000
BAR_SIZE = 0x20000

# Registers (byte offsets in BAR0)
CTRL, STATUS, EECD, EERD, CTRL_EXT, MDIC = 0x0000, 0x0008, 0x0010, 0x0014, 0x0018, 0x0020
ICR, ICS, IMS, IMC = 0x00C0, 0x00C8, 0x00D0, 0x00D8
RCTL, TCTL = 0x0100, 0x0400
RDBAL, RDBAH, RDLEN, RDH, RDT = 0x2800, 0x2804, 0x2808, 0x2810, 0x2818
TDBAL, TDBAH, TDLEN, TDH, TDT = 0x3800, 0x3804, 0x3808, 0x3810, 0x3818
STATS_START, STATS_END = 0x4000, 0x4100  # read-to-clear counters
GPRC, GPTC, TPR, TPT = 0x4074, 0x4080, 0x40D0, 0x40D4
MTA, RA = 0x5200, 0x5400
RA_ENTRIES = 16

CTRL_SLU, CTRL_RST, CTRL_PHY_RST = 1 << 6, 1 << 26, 1 << 31
STATUS_FD, STATUS_LU, STATUS_SPEED_1000, STATUS_GIO_MASTER = 1 << 0, 1 << 1, 1 << 7, 1 << 19
EECD_GNT, EECD_PRES, EECD_AUTO_RD = 1 << 7, 1 << 8, 1 << 9
RAH_AV = 1 << 31
RCTL_EN, RCTL_UPE, RCTL_MPE, RCTL_BAM, RCTL_BSEX, RCTL_SECRC = 1 << 1, 1 << 3, 1 << 4, 1 << 15, 1 << 25, 1 << 26
TCTL_EN = 1 << 1

# Interrupt causes
ICR_TXDW, ICR_TXQE, ICR_LSC, ICR_RXDMT0, ICR_RXT0, ICR_ASSERTED = 1 << 0, 1 << 1, 1 << 2, 1 << 4, 1 << 7, 1 << 31

# Descriptors
TX_EOP, TX_RS, TX_DEXT = 1 << 0, 1 << 3, 1 << 5
DTYP_CONTEXT, DTYP_DATA = 0, 1
DD, RX_EOP = 1 << 0, 1 << 1
DESC = 16
RING_ALIGN = 128  # TDLEN/RDLEN are multiples of 128 bytes
MAX_FRAME = 16384  # the largest frame taken from the guest (no segmentation offload)
MIN_FRAME = 60  # received frames are padded to this (without FCS), as on a wire


@dataclass
class NicStats:
    """Frames moved and lost, for tests and reports (a NIC's own counters clear on read)."""

    tx: int = 0
    rx: int = 0
    tx_dropped: int = 0
    rx_dropped: int = 0
    rx_filtered: int = 0
    msi_dropped: int = 0


@dataclass
class TxState:
    """A frame being gathered from data descriptors until EOP."""

    data: bytearray = field(default_factory=bytearray)
    oversize: bool = False


def make_e1000(model: str, net: str, dma: GuestMemory, irq: IrqLine, backend: object = None) -> "E1000":
    """The NIC `model` ("e1000" / "e1000e") on the `--net` backend spec (EmuError on bad input);
    `backend`, when given, is the host side to use instead of the spec's (record / replay)."""
    from emu.devices.virtio import make_net_backend, parse_net
    from emu.devices.virtio.net import DEFAULT_MAC, parse_mac

    if model not in MODELS:
        raise EmuError(f"--nic {model}: use {', '.join(['virtio', *MODELS])}")
    options = parse_net(net)
    mac = parse_mac(options.get("mac") or DEFAULT_MAC)  # before the backend: no fd to leak
    link = options["backend"] != "none"
    if backend is not None:
        options["backend"] = backend
    return E1000(model, make_net_backend(options), mac, dma, irq, link=link)


class E1000:
    """One NIC function: PCI config space, BAR0 registers, DMA engines, a host backend."""

    def __init__(self, model: str, backend: NetBackend, mac: bytes, dma: GuestMemory, irq: IrqLine,
                 link: bool = True) -> None:
        self.model = MODELS[model]
        self.backend = backend
        self.mac = bytes(mac)
        self.mem = dma
        self.irq = irq
        self.link = link
        self.config = PciConfig(INTEL, self.model.device_id, CLASS_ETHERNET, subsystem=(INTEL, 0), pin=1,
                                bars=(Bar(BAR_SIZE),))
        if self.model.msi:
            self.config.add_msi()
        self.mgmt = Management(self.model, self.mac, link)
        self.stats = NicStats()
        self.pending: deque[bytes] = deque()
        self.error: str | None = None  # why DMA stopped (a bad ring or address), until CTRL.RST
        self.regs = array("I", bytes(BAR_SIZE))
        self.tx = TxState()
        self.reset()

    # -- state --------------------------------------------------------------------------------
    def reset(self) -> None:
        """Power-on / CTRL.RST: registers cleared, the MAC loaded from the EEPROM into RA[0]."""
        self.regs = array("I", bytes(BAR_SIZE))
        self.regs[RA // 4] = int.from_bytes(self.mac[:4], "little")
        self.regs[RA // 4 + 1] = int.from_bytes(self.mac[4:], "little") | RAH_AV
        self.regs[CTRL // 4] = CTRL_SLU
        self.mgmt.reset()
        self.tx = TxState()
        self.error = None
        self._update_irq()

    def _reg(self, offset: int) -> int:
        return self.regs[offset // 4]

    def _set(self, offset: int, value: int) -> None:
        self.regs[offset // 4] = value & 0xFFFF_FFFF

    def _fail(self, why: str) -> None:
        if self.error is None:
            self.error = why

    # -- PCI function ---------------------------------------------------------------------------
    def bar_read(self, bar: int, offset: int, size: int) -> int:
        if size == 4 and not offset & 3:  # what drivers do (polled registers: keep it short)
            return self._read(offset)
        value = 0
        for i in range(0, size, 4):  # 8-byte accesses are two registers
            word = self._read(offset + i & ~3)
            value |= word << 8 * i
        shift = 8 * (offset & 3)
        return (value >> shift) & ((1 << 8 * size) - 1)

    def bar_write(self, bar: int, offset: int, size: int, value: int) -> None:
        if size < 4:  # a partial write keeps the other bytes (read without side effects)
            at = offset & ~3
            shift = 8 * (offset & 3)
            mask = ((1 << 8 * size) - 1) << shift
            self._write(at, (self._reg(at) & ~mask) | ((value << shift) & mask))
            return
        for i in range(0, size, 4):
            self._write(offset + i & ~3, (value >> 8 * i) & 0xFFFF_FFFF)

    def config_written(self) -> None:
        """COMMAND or MSI control may have changed: interrupt routing, DMA allowed."""
        self._update_irq()
        self._transmit()
        self._receive()

    # -- registers ------------------------------------------------------------------------------
    def _read(self, offset: int) -> int:
        if offset == STATUS:
            speed = STATUS_FD | STATUS_SPEED_1000 | (STATUS_LU if self.link else 0)
            return speed | (STATUS_GIO_MASTER if self.model.msi else 0)
        if offset == EECD:
            return self._reg(EECD) | EECD_GNT | EECD_PRES | EECD_AUTO_RD
        if offset == ICR:
            value = self._reg(ICR)
            self._set(ICR, 0)
            self._update_irq()
            return value
        if offset in (ICS, IMC):
            return 0
        if STATS_START <= offset < STATS_END:
            value = self._reg(offset)
            self._set(offset, 0)
            return value
        return self._reg(offset)

    def _write(self, offset: int, value: int) -> None:
        if offset == CTRL:
            if value & CTRL_RST:
                self.reset()
                return
            self._set(CTRL, value & ~CTRL_PHY_RST)
        elif offset == STATUS:
            return  # read-only
        elif offset == EERD:
            self._set(EERD, self.mgmt.eerd(value))
        elif offset == MDIC:
            self._set(MDIC, self.mgmt.mdic(value))
        elif offset == ICR:
            self._set(ICR, self._reg(ICR) & ~value)
            self._update_irq()
        elif offset == ICS:
            self._cause(value)
        elif offset == IMS:
            self._set(IMS, self._reg(IMS) | value)
            self._update_irq()
        elif offset == IMC:
            self._set(IMC, 0)
            self._set(IMS, self._reg(IMS) & ~value)
            self._update_irq()
        elif offset in (TDH, RDH, TDT, RDT):
            self._set(offset, value & 0xFFFF)
            if offset == TDT:
                self._transmit()
            elif offset == RDT:
                self._receive()
        else:
            self._set(offset, value)
            if offset == TCTL:
                self._transmit()
            elif offset == RCTL:
                self._receive()

    # -- interrupts -----------------------------------------------------------------------------
    def _cause(self, bits: int) -> None:
        self._set(ICR, self._reg(ICR) | bits)
        self._update_irq()

    def _update_irq(self) -> None:
        icr = self._reg(ICR) & ~ICR_ASSERTED
        level = bool(icr & self._reg(IMS))
        if self.model.msi:
            self._set(ICR, icr | (ICR_ASSERTED if level else 0))
        if self.config.msi_enabled:
            if level:
                self.stats.msi_dropped += 1  # no MSI controller on this board
            level = False
        self.config.set_intx_status(level)
        self.irq.set(level and not self.config.command & CMD_INTX_DISABLE)

    # -- DMA ------------------------------------------------------------------------------------
    def _ring(self, base_lo: int, length_reg: int, head_reg: int, tail_reg: int) -> tuple[int, int] | None:
        """(ring address, descriptor count) when DMA may use the ring now."""
        if self.error is not None or not self.config.bus_master:
            return None
        length = self._reg(length_reg)
        count = length // DESC
        base = self._reg(base_lo) | self._reg(base_lo + 4) << 32
        if length == 0 or length % RING_ALIGN or base % DESC:
            self._fail(f"ring at {base:#x} of {length} bytes")
            return None
        if self._reg(head_reg) >= count or self._reg(tail_reg) >= count:
            self._fail(f"head {self._reg(head_reg)} / tail {self._reg(tail_reg)} beyond a ring of {count}")
            return None
        return base, count

    def _transmit(self) -> None:
        if not self._reg(TCTL) & TCTL_EN:
            return
        ring = self._ring(TDBAL, TDLEN, TDH, TDT)
        if ring is None:
            return
        base, count = ring
        done = 0
        try:
            while self._reg(TDH) != self._reg(TDT) and done < count:
                head = self._reg(TDH)
                desc = base + head * DESC
                addr, lower, upper = struct.unpack("<QII", self.mem.read(desc, DESC))
                cmd = lower >> 24
                if cmd & TX_DEXT:
                    kind = (lower >> 20) & 0xF
                    length = lower & 0xF_FFFF if kind == DTYP_DATA else 0
                else:
                    kind, length = DTYP_DATA, lower & 0xFFFF
                if kind == DTYP_DATA:
                    self._gather(addr, length)
                if cmd & TX_RS:
                    self.mem.write(desc + 12, bytes([(upper & 0xFF) | DD]))
                if kind == DTYP_DATA and cmd & TX_EOP:
                    self._send()
                self._set(TDH, (head + 1) % count)
                done += 1
        except DmaError as err:
            self._fail(f"transmit: {err}")
        if done:
            self._cause(ICR_TXDW | ICR_TXQE)
            self.pending.extend(self.backend.poll())  # what the backend answered at once (ARP, ping)
            self._trim()
            self._receive()

    def _gather(self, addr: int, length: int) -> None:
        if self.tx.oversize or len(self.tx.data) + length > MAX_FRAME:
            self.tx.oversize = True
            self.mem.check(addr, length)
            return
        self.tx.data += self.mem.read(addr, length)

    def _send(self) -> None:
        frame, oversize = bytes(self.tx.data), self.tx.oversize
        self.tx = TxState()
        if oversize or not frame:
            self.stats.tx_dropped += 1
            return
        self.stats.tx += 1
        for reg in (GPTC, TPT):
            self._set(reg, self._reg(reg) + 1)
        self.backend.send(frame)

    def _buffer_size(self) -> int:
        rctl = self._reg(RCTL)
        size = 2048 >> ((rctl >> 16) & 3)
        return size * 16 if rctl & RCTL_BSEX and size != 2048 else size

    def _accepts(self, frame: bytes) -> bool:
        rctl = self._reg(RCTL)
        dst = frame[:6]
        if len(frame) < 14:
            return False
        if dst[0] & 1:
            if dst == b"\xff" * 6:
                return bool(rctl & RCTL_BAM)
            if rctl & RCTL_MPE:
                return True
            bit = ((dst[4] >> 4) | (dst[5] << 4)) & 0xFFF
            return bool(self._reg(MTA + 4 * (bit >> 5)) >> (bit & 31) & 1)
        if rctl & RCTL_UPE:
            return True
        for i in range(RA_ENTRIES):
            low, high = self._reg(RA + 8 * i), self._reg(RA + 8 * i + 4)
            if high & RAH_AV and dst == (low | (high & 0xFFFF) << 32).to_bytes(6, "little"):
                return True
        return False

    def _receive(self) -> None:
        if not self.pending or not self._reg(RCTL) & RCTL_EN or not self.link:
            return
        ring = self._ring(RDBAL, RDLEN, RDH, RDT)
        if ring is None:
            return
        base, count = ring
        size = self._buffer_size()
        delivered = False
        try:
            while self.pending:
                frame = self.pending[0]
                if not self._accepts(frame):
                    self.pending.popleft()
                    self.stats.rx_filtered += 1
                    continue
                data = frame.ljust(MIN_FRAME, b"\0")
                if not self._reg(RCTL) & RCTL_SECRC:
                    data += zlib.crc32(data).to_bytes(4, "little")
                chunks = [data[i:i + size] for i in range(0, len(data), size)]
                if (self._reg(RDT) - self._reg(RDH)) % count < len(chunks):
                    break  # the driver has not given enough buffers yet: the frame waits
                for i, chunk in enumerate(chunks):
                    head = self._reg(RDH)
                    desc = base + head * DESC
                    addr = int.from_bytes(self.mem.read(desc, 8), "little")
                    self.mem.write(addr, chunk)
                    status = DD | (RX_EOP if i == len(chunks) - 1 else 0)
                    self.mem.write(desc + 8, struct.pack("<HHBBH", len(chunk), 0, status, 0, 0))
                    self._set(RDH, (head + 1) % count)
                self.pending.popleft()
                self.stats.rx += 1
                for reg in (GPRC, TPR):
                    self._set(reg, self._reg(reg) + 1)
                delivered = True
        except DmaError as err:
            self._fail(f"receive: {err}")
        if delivered:
            self._cause(ICR_RXT0)

    def _trim(self) -> None:
        while len(self.pending) > PENDING_MAX:
            self.pending.popleft()
            self.stats.rx_dropped += 1

    # -- the machine's side ---------------------------------------------------------------------
    def poll(self) -> None:
        """Between rounds: frames the backend has for the guest."""
        frames = self.backend.poll()
        if frames:
            self.pending.extend(frames)
            self._trim()
        if self.pending:
            self._receive()

    def close(self) -> None:
        self.backend.close()
