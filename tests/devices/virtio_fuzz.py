"""Property checks for the virtio devices: hostile register writes and descriptor tables.

Shared by tests/devices/test_virtio_fuzz.py (CI: >= 2000 examples per device) and
scripts/fuzz_virtio.py (10k per device).  Each example builds a fresh transport over a
64 KiB "RAM" reached only through the real GuestMemory; the properties are:

  * no host exception escapes the device (a broken driver gives NEEDS_RESET or an
    error status, never a Python exception),
  * no access outside guest RAM reaches the RAM accessors,
  * the block image is never extended.

The PCI transport (emu/devices/virtio/pci.py) gets the register property too: random BAR0
accesses of every width (the common configuration, ISR, device configuration, notify areas
and beyond) and config-space writes, over a PCI host as the PC board builds it; there INTx
must follow the ISR and COMMAND.INTX_DISABLE.
"""
from __future__ import annotations

import os
import random
import struct
import tempfile

from hypothesis import strategies as st

from emu.devices.virtio import mmio as M
from emu.devices.virtio.blk import VirtioBlk
from emu.devices.virtio.mmio import VirtioMmio
from emu.devices.virtio.net import VirtioNet
from emu.devices.virtio.queue import (
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
)
from tests.devices.virtio_driver import RAM_BASE, Driver, Irq, Ram

PCI_WINDOW, PCI_SLOT = 0xC000_0000, 3

RAM_SIZE = 64 * 1024
IMAGE_SECTORS = 64
KINDS = ("blk", "net")

REGISTERS = [M.MAGIC_VALUE, M.VERSION, M.DEVICE_ID, M.VENDOR_ID, M.DEVICE_FEATURES, M.DEVICE_FEATURES_SEL,
             M.DRIVER_FEATURES, M.DRIVER_FEATURES_SEL, M.GUEST_PAGE_SIZE, M.QUEUE_SEL, M.QUEUE_NUM_MAX,
             M.QUEUE_NUM, M.QUEUE_ALIGN, M.QUEUE_PFN, M.QUEUE_READY, M.QUEUE_NOTIFY, M.INTERRUPT_STATUS,
             M.INTERRUPT_ACK, M.STATUS, M.QUEUE_DESC_LOW, M.QUEUE_DESC_HIGH, M.QUEUE_DRIVER_LOW,
             M.QUEUE_DRIVER_HIGH, M.QUEUE_DEVICE_LOW, M.QUEUE_DEVICE_HIGH, M.SHM_SEL, M.SHM_LEN_LOW,
             M.CONFIG_GENERATION, M.CONFIG, M.CONFIG + 4, M.CONFIG + 6, M.CONFIG + 0x14]

u32 = st.integers(0, 0xFFFF_FFFF)

_VALUES = [0, 1, 2, 3, 4, 7, 8, 15, 16, 0x7F, 0xFF, 256, 257, 4096, 0xFFFF, 0xFFFF_FFFF,
           M.S_ACKNOWLEDGE, M.S_ACKNOWLEDGE | M.S_DRIVER, 0x0B, 0x0F, 0x07, 0x4F, 0x8F]
_SIZES = (4, 4, 4, 4, 1, 2, 8, 4)


def decode_op(sel: int, raw: int) -> tuple[str, int, int, int]:
    """Two drawn integers -> (op, offset, size, value): few draws per op keeps examples cheap.

    sel bits 0-2: what (write x4, read x2, notify, poll); bits 3-8: register (or, past the
    list, any offset up to 0x1ff from raw); bits 9-11: size; bits 12-14: value kind.
    """
    what = sel & 7
    reg = sel >> 3 & 63
    offset = REGISTERS[reg] if reg < len(REGISTERS) else raw >> 8 & 0x1FF
    size = _SIZES[sel >> 9 & 7]
    kind = sel >> 12 & 7
    if kind == 0:
        value = _VALUES[raw % len(_VALUES)]
    elif kind == 1:
        value = (RAM_BASE >> 12) + raw % 17  # a legacy PFN inside RAM
    elif kind == 2:
        value = (RAM_BASE + raw % RAM_SIZE) & ~0xF  # the low half of a RAM address
    else:
        value = raw
    if what < 4:
        return "w", offset, size, value
    if what < 6:
        return "r", offset, size if size != 8 or reg < len(REGISTERS) else 4, 0
    if what == 6:
        return "w", M.QUEUE_NOTIFY, 4, raw % 3
    return "poll", 0, 0, 0


_PCI_SIZES = (4, 2, 1, 8, 4, 2, 3, 4)


def decode_pci_op(sel: int, raw: int) -> tuple[str, int, int, int]:
    """Like decode_op for the PCI function: (op, offset, size, value) with op "w"/"r" (BAR0),
    "cfg" (a config-space write) or "poll"; offsets mostly near the four structures' fields."""
    from emu.devices.virtio import pci as P

    what = sel & 7
    area = sel >> 3 & 7
    offset = ((P.COMMON, P.ISR, P.DEVICE, P.NOTIFY, P.COMMON, P.COMMON)[area] + (raw >> 8 & 0x3F)
              if area < 6 else raw >> 8 & 0x7FFF)
    size = _PCI_SIZES[sel >> 6 & 7]
    kind = sel >> 9 & 7
    value = _VALUES[raw % len(_VALUES)] if kind < 3 else (RAM_BASE + raw % RAM_SIZE) & ~0xF if kind < 5 else raw
    if what < 4:
        return "w", offset, size, value
    if what < 6:
        return "r", offset, min(size, 4) if area >= 6 else size, 0
    if what == 6:
        return "cfg", raw >> 8 & 0xFF, (1, 2, 4)[sel >> 6 & 1], value
    return "poll", 0, 0, 0


def pci_op_strategy():
    return st.lists(st.builds(decode_pci_op, st.integers(0, (1 << 12) - 1), u32), min_size=1, max_size=40)


def _op_strategy(max_ops: int = 40):
    op = st.builds(decode_op, st.integers(0, (1 << 15) - 1), u32)
    return st.lists(op, min_size=1, max_size=max_ops)


_OPS = None


def op_strategy():
    global _OPS
    if _OPS is None:
        _OPS = _op_strategy()
    return _OPS


NUMS = (8, 16, 8, 16, 4, 8, 16, 1, 2, 3)  # mostly room for the chains; tiny queues wrap them
_after = _op_strategy(max_ops=8)
_frames = st.lists(st.binary(min_size=0, max_size=80), max_size=2)

# Hostile values the seeded mutations pick from.
_ADDRS = [0, RAM_BASE - 16, RAM_BASE + RAM_SIZE, (1 << 64) - 16, 1 << 63]
_LENS = [0, 1, 10, 12, 16, 17, 20, 21, 512, 513, 1024, 4096, RAM_SIZE, 0xFFFF_FFFF, 0x8000_0000]

HDR_AREA = RAM_BASE + 0x9000  # request headers / packet headers, 64 bytes per chain
DATA_AREA = RAM_BASE + 0xA000  # data buffers, 0x800 per segment (up to 0xE800)
INDIRECT_AREA = RAM_BASE + 0x8000  # indirect tables, 0x100 per chain


def hostile_addr(rng: random.Random) -> int:
    k = rng.random()
    if k < 0.4:
        return RAM_BASE + rng.randrange(RAM_SIZE)
    if k < 0.65:
        return RAM_BASE + RAM_SIZE - rng.randrange(65)
    if k < 0.9:
        return rng.choice(_ADDRS)
    return rng.getrandbits(64)


def hostile_len(rng: random.Random) -> int:
    k = rng.random()
    return rng.choice(_LENS) if k < 0.5 else rng.randrange(2049) if k < 0.9 else rng.getrandbits(32)


chain_spec = st.tuples(
    st.sampled_from([0, 1, 4, 8, 0, 1, 5, 0xFFFF_FFFF]),  # blk request type
    st.sampled_from([0, 1, IMAGE_SECTORS - 2, IMAGE_SECTORS - 1, IMAGE_SECTORS, (1 << 64) - 1]),  # sector
    st.sampled_from([512, 1024, 512, 20, 100, 0, 1536]),  # data bytes / frame or buffer size hint
    st.integers(1, 3),  # data segments
    st.booleans(),  # through an indirect table (when negotiated)
)
_rare = st.integers(0, 4).map(lambda k: k == 0)  # True one time in five
mutation = st.tuples(st.integers(0, 47), st.integers(0, 3))  # (descriptor slot, field)


@st.composite
def scenario(draw):
    """A driver that sets up its queues properly and posts well-formed chains, which are then
    mutated: a few descriptor fields (address, length, flags, next) replaced by hostile
    values, plus hostile ring indexes now and then.  The hostile values come from a drawn
    seed, which keeps an example to a few dozen draws."""
    num = draw(st.sampled_from(NUMS))
    return {
        "legacy": draw(st.booleans()),
        "features": draw(st.integers(0, (1 << 64) - 1)),  # masked with what is offered
        "num": num,
        "chains": draw(st.lists(chain_spec, min_size=1, max_size=3)),
        "mutations": draw(st.lists(mutation, max_size=3)),
        "avail_idx": draw(st.one_of(st.none(), st.integers(0, 0xFFFF))) if draw(_rare) else None,  # None: as posted
        "bad_head": draw(st.integers(0, 0xFFFF)) if draw(_rare) else None,
        "avail_flags": draw(st.integers(0, 3)),
        "used_event": draw(st.integers(0, 0xFFFF)),
        "seed": draw(st.integers(0, 1 << 32)),
        "rx_frames": draw(_frames),
        "after": draw(_after),
    }


def chain_segments(kind: str, queue: int, spec, i: int, hdr_len: int, ram: Ram) -> list[tuple[int, int, bool]]:
    """The (addr, len, device-writable) buffers of one well-formed chain."""
    rtype, sector, size, nseg, _ = spec
    hdr = HDR_AREA + 64 * i
    pieces = [max(1, size // nseg)] * nseg if size else []
    data = [DATA_AREA + 0x800 * (3 * i + k) for k in range(len(pieces))]
    if kind == "blk":
        ram.put(hdr, struct.pack("<IIQ", rtype, 0, sector))
        writable = rtype != 1
        segs = [(hdr, 16, False)] + [(a, n, writable) for a, n in zip(data, pieces)]
        return segs + [(hdr + 32, 1, True)]
    if queue == 1:  # TX: header + frame, readable
        return [(hdr, hdr_len, False)] + [(a, n, False) for a, n in zip(data, pieces)]
    return [(a, n + 64, True) for a, n in zip(data, pieces)] or [(hdr, 40, True)]  # RX buffers


class Inbox:
    """A net backend fed by the test: frames to deliver on each poll."""

    def __init__(self, frames: list[bytes] | None = None) -> None:
        self.frames = list(frames or [])
        self.sent = 0

    def send(self, frame: bytes) -> None:
        self.sent += 1

    def poll(self) -> list[bytes]:
        out, self.frames = self.frames, self.frames[1:]  # keep one coming back
        return out[:1] if out else []

    def wait_fds(self) -> list[int]:
        return []

    def close(self) -> None:
        pass


class Harness:
    """Per-run fixtures: one disk image (its backend reused: it keeps no request state)."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="emu-virtio-fuzz-")
        self.image = os.path.join(self.dir, "disk.img")
        with open(self.image, "wb") as f:
            f.write(bytes(range(256)) * (IMAGE_SECTORS * 2))
        self.blk = VirtioBlk(self.image)

    def close(self) -> None:
        self.blk.close()
        os.unlink(self.image)
        os.rmdir(self.dir)

    def device(self, kind: str, legacy: bool, seed: int, frames=None):
        ram = Ram(RAM_SIZE)
        ram.buf[:] = random.Random(seed).randbytes(RAM_SIZE)
        irq = Irq()
        backend = self.blk if kind == "blk" else VirtioNet(Inbox(frames))
        return VirtioMmio(backend, ram.mem, irq.line, legacy=legacy), ram, irq

    def check_invariants(self, dev: VirtioMmio, ram: Ram, irq: Irq, masked: bool = False) -> None:
        """`masked`: the line is held low (PCI COMMAND.INTX_DISABLE)."""
        assert not ram.outside, ram.outside
        assert os.path.getsize(self.image) == IMAGE_SECTORS * 512
        assert irq.level == (dev.isr != 0 and not masked)

    # -- property 1: random register traffic over random RAM -------------------------------------
    def registers(self, kind: str, legacy: bool, seed: int, ops, setup: bool = False) -> None:
        dev, ram, irq = self.device(kind, legacy, seed, [b"\x01" * 60] * 3)
        if setup:  # start from a live device with its queues in place (rings over random RAM)
            drv = Driver(dev, ram)
            drv.init(want=seed << 3 | (0 if legacy else M.F_VERSION_1))
            hdr_len = 12 if dev.features & M.F_VERSION_1 else 10
            spec = (seed >> 8 & 1, seed >> 9 & 63, 512, 1, False)  # a read or a write of one sector
            for i in range(len(dev.queues)):
                q = drv.setup_queue(i, 8, RAM_BASE + 0x1000 + 0x2000 * i)
                for _ in range(seed & 3):  # 0-3 well-formed chains waiting for a notify
                    drv.add_chain(q, chain_segments(kind, i, spec, 0, hdr_len, ram), notify=False)
            drv.driver_ok()
        for op, off, size, value in ops:
            if op == "w":
                dev.write(off, size, value)
            elif op == "r":
                v = dev.read(off, size)
                assert 0 <= v < 1 << (8 * size)
            else:
                dev.poll()
        self.check_invariants(dev, ram, irq)

    # -- property 1 on PCI: random BAR and config traffic ----------------------------------------
    def pci_registers(self, kind: str, seed: int, ops, setup: bool = False) -> None:
        from emu.devices.pci_host import CMD_INTX_DISABLE, PciHost
        from emu.devices.virtio.pci import VirtioPci
        from tests.devices.virtio_pci_driver import PciDriver

        ram = Ram(RAM_SIZE)
        ram.buf[:] = random.Random(seed).randbytes(RAM_SIZE)
        irq = Irq()
        backend = self.blk if kind == "blk" else VirtioNet(Inbox([b"\x01" * 60] * 3))
        dev = VirtioPci(backend, ram.mem, irq.line)
        host = PciHost(PCI_WINDOW)
        host.attach(dev, PCI_SLOT)
        host.assign_bars(0x1000_0000, 16)
        drv = PciDriver(host, PCI_SLOT, ram)
        if setup:  # a live device, 0-3 well-formed chains per queue waiting for a notify
            drv.init(want=seed << 3 | M.F_VERSION_1)
            spec = (seed >> 8 & 1, seed >> 9 & 63, 512, 1, False)
            for i in range(len(dev.core.queues)):
                q = drv.setup_queue(i, 8, RAM_BASE + 0x1000 + 0x2000 * i)
                for _ in range(seed & 3):
                    drv.add_chain(q, chain_segments(kind, i, spec, 0, 12, ram), notify=False)
            drv.driver_ok()
        for op, off, size, value in ops:
            if op == "w":
                host.window.write(drv.bar - PCI_WINDOW + off, size, value & ((1 << 8 * size) - 1))
            elif op == "r":
                v = host.window.read(drv.bar - PCI_WINDOW + off, size)
                assert 0 <= v < 1 << (8 * size)
            elif op == "cfg":
                drv.cfg_write(off & ~(size - 1), value & ((1 << 8 * size) - 1), size)
                drv.bar = drv.cfg(0x10) & ~0xF  # the guest may have moved BAR0
            else:
                host.poll()
        self.check_invariants(dev.core, ram, irq, masked=bool(dev.config.command & CMD_INTX_DISABLE))

    # -- property 2: well-formed chains, mutated -------------------------------------------------
    def descriptors(self, kind: str, sc: dict) -> None:
        dev, ram, irq = self.device(kind, sc["legacy"], sc["seed"], sc["rx_frames"])
        rng = random.Random(sc["seed"])
        drv = Driver(dev, ram)
        drv.init(want=sc["features"] | (0 if sc["legacy"] else M.F_VERSION_1))
        num = sc["num"]
        indirect_ok = bool(dev.features & M.F_RING_INDIRECT_DESC)
        hdr_len = 12 if dev.features & M.F_VERSION_1 else 10
        qs = [drv.setup_queue(i, num, RAM_BASE + 0x1000 + 0x2000 * i) for i in range(len(dev.queues))]
        for q in qs:
            slots: list[tuple[int, int]] = []  # (table address, index) of every descriptor written
            for i, spec in enumerate(sc["chains"]):
                segs = chain_segments(kind, q.index, spec, i, hdr_len, ram)
                if spec[4] and indirect_ok:
                    table = INDIRECT_AREA + 0x100 * i + 0x80 * q.index
                    for k, (addr, n, w) in enumerate(segs):
                        flags = (VRING_DESC_F_WRITE if w else 0) | (VRING_DESC_F_NEXT if k < len(segs) - 1 else 0)
                        drv.put_desc(table, k, addr, n, flags, k + 1)
                        slots.append((table, k))
                    head = q.free
                    drv.put_desc(q.desc, head, table, 16 * len(segs), VRING_DESC_F_INDIRECT, 0)
                    slots.append((q.desc, head))
                    q.free = (q.free + 1) % num
                    drv.make_available(q, head, notify=False)
                else:
                    first = q.free
                    drv.add_chain(q, segs, notify=False)  # wraps round the table when num is small
                    slots += [(q.desc, (first + k) % num) for k in range(len(segs))]
            for target, field in sc["mutations"]:
                table, k = slots[target % len(slots)]
                addr, n, flags, nxt = struct.unpack("<QIHH", ram.get(table + 16 * k, 16))
                if field == 0:
                    addr = hostile_addr(rng)
                elif field == 1:
                    n = hostile_len(rng)
                elif field == 2:
                    flags = rng.randrange(8)
                else:
                    nxt = rng.randrange(num + 2) if rng.random() < 0.8 else rng.getrandbits(16)
                drv.put_desc(table, k, addr, n, flags, nxt)
            if sc["bad_head"] is not None:
                ram.put(q.avail + 4, struct.pack("<H", sc["bad_head"]))
            if sc["avail_idx"] is not None:
                ram.put(q.avail + 2, struct.pack("<H", sc["avail_idx"]))
            ram.put(q.avail, struct.pack("<H", sc["avail_flags"]))
            ram.put(q.avail + 4 + 2 * num, struct.pack("<H", sc["used_event"]))
        drv.driver_ok()
        for q in qs:
            drv.w(M.QUEUE_NOTIFY, q.index)
        dev.poll()
        for op, off, size, value in sc["after"]:
            if op == "w":
                dev.write(off, size, value)
            elif op == "r":
                dev.read(off, size)
            else:
                dev.poll()
        self.check_invariants(dev, ram, irq)
        drv.w(M.STATUS, 0)
        assert dev.status == 0 and dev.isr == 0 and not irq.level
