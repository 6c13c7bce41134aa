"""A minimal virtio-mmio driver over a bytearray "RAM", for tests and the fuzzer.

The RAM is reached only through the real GuestMemory class; its read/write lambdas
record any access that the bounds check should have stopped (there must be none).
"""
from __future__ import annotations

import struct

from emu.devices.dma import GuestMemory
from emu.devices.irq import IrqLine
from emu.devices.virtio import mmio as M
from emu.devices.virtio.queue import (
    VRING_DESC_F_INDIRECT,
    VRING_DESC_F_NEXT,
    VRING_DESC_F_WRITE,
)

RAM_BASE = 0x8000_0000
PAGE = 4096


class Ram:
    def __init__(self, size: int = 256 * 1024, base: int = RAM_BASE) -> None:
        self.base, self.size = base, size
        self.buf = bytearray(size)
        self.outside: list[tuple[int, int]] = []  # accesses that got past the check (a bug)
        self.reads = self.writes = 0

        def read(addr: int, n: int) -> bytes:
            self._seen(addr, n)
            self.reads += 1
            return bytes(self.buf[addr - base:addr - base + n])

        def write(addr: int, data: bytes) -> None:
            self._seen(addr, len(data))
            self.writes += 1
            self.buf[addr - base:addr - base + len(data)] = data

        self.mem = GuestMemory(base, size, read, write)

    def _seen(self, addr: int, n: int) -> None:
        if addr < self.base or addr + n > self.base + self.size or n < 0:
            self.outside.append((addr, n))
            raise AssertionError(f"access outside RAM: {addr:#x}+{n:#x}")

    def put(self, addr: int, data: bytes) -> None:
        self.buf[addr - self.base:addr - self.base + len(data)] = data

    def get(self, addr: int, n: int) -> bytes:
        return bytes(self.buf[addr - self.base:addr - self.base + n])


class Irq:
    def __init__(self) -> None:
        self.level = False
        self.changes = 0
        self.line = IrqLine(1, self._sink)

    def _sink(self, irq: int, level: bool) -> None:
        self.level = level
        self.changes += 1


class Queue:
    def __init__(self, index: int, num: int, desc: int, avail: int, used: int) -> None:
        self.index, self.num, self.desc, self.avail, self.used = index, num, desc, avail, used
        self.free = 0  # next descriptor to hand out (tests reuse the table from 0 each time)
        self.avail_idx = 0
        self.seen_used = 0


class Driver:
    def __init__(self, dev: M.VirtioMmio, ram: Ram) -> None:
        self.dev, self.ram = dev, ram
        self.legacy = dev.read(M.VERSION, 4) == 1
        self.features = 0

    def r(self, off: int) -> int:
        return self.dev.read(off, 4)

    def w(self, off: int, value: int) -> None:
        self.dev.write(off, 4, value)

    def offered(self) -> int:
        self.w(M.DEVICE_FEATURES_SEL, 0)
        lo = self.r(M.DEVICE_FEATURES)
        self.w(M.DEVICE_FEATURES_SEL, 1)
        return lo | self.r(M.DEVICE_FEATURES) << 32

    def init(self, want: int = ~M.F_RING_EVENT_IDX) -> int:
        """Reset, ACKNOWLEDGE, DRIVER, features (and FEATURES_OK when modern).

        EVENT_IDX only when asked for: this driver does not maintain used_event.
        """
        assert self.r(M.MAGIC_VALUE) == M.MAGIC
        self.w(M.STATUS, 0)
        self.w(M.STATUS, M.S_ACKNOWLEDGE)
        self.w(M.STATUS, M.S_ACKNOWLEDGE | M.S_DRIVER)
        feats = self.offered() & want
        for sel in (0, 1):
            self.w(M.DRIVER_FEATURES_SEL, sel)
            self.w(M.DRIVER_FEATURES, feats >> (32 * sel) & 0xFFFF_FFFF)
        if not self.legacy:
            self.w(M.STATUS, M.S_ACKNOWLEDGE | M.S_DRIVER | M.S_FEATURES_OK)
            assert self.r(M.STATUS) & M.S_FEATURES_OK, "device refused the features"
        self.features = feats
        return feats

    def setup_queue(self, index: int, num: int, base: int) -> Queue:
        """Lay out queue `index` at `base` (page aligned) the way each transport wants it."""
        self.w(M.QUEUE_SEL, index)
        assert num <= self.r(M.QUEUE_NUM_MAX)
        desc = base
        avail = desc + 16 * num
        used = (avail + 6 + 2 * num + PAGE - 1) & ~(PAGE - 1) if self.legacy else (avail + 6 + 2 * num + 3) & ~3
        self.ram.put(base, bytes(used + 4 + 8 * num + 2 - base))  # a fresh ring is zeroed
        if self.legacy:
            assert self.r(M.QUEUE_PFN) == 0
            self.w(M.GUEST_PAGE_SIZE, PAGE)
            self.w(M.QUEUE_NUM, num)
            self.w(M.QUEUE_ALIGN, PAGE)
            self.w(M.QUEUE_PFN, base // PAGE)
        else:
            assert self.r(M.QUEUE_READY) == 0
            self.w(M.QUEUE_NUM, num)
            for reg, addr in ((M.QUEUE_DESC_LOW, desc), (M.QUEUE_DRIVER_LOW, avail), (M.QUEUE_DEVICE_LOW, used)):
                self.w(reg, addr & 0xFFFF_FFFF)
                self.w(reg + 4, addr >> 32)
            self.w(M.QUEUE_READY, 1)
        return Queue(index, num, desc, avail, used)

    def driver_ok(self) -> None:
        self.w(M.STATUS, self.r(M.STATUS) | M.S_DRIVER_OK)

    # -- descriptors -------------------------------------------------------------------------
    def put_desc(self, table: int, i: int, addr: int, length: int, flags: int, nxt: int) -> None:
        self.ram.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def add_chain(self, q: Queue, bufs: list[tuple[int, int, bool]], notify: bool = True) -> int:
        """Descriptors for bufs (addr, len, device-writable), chained; made available."""
        head = q.free
        for k, (addr, length, writable) in enumerate(bufs):
            i = (q.free + k) % q.num
            last = k == len(bufs) - 1
            flags = (VRING_DESC_F_WRITE if writable else 0) | (0 if last else VRING_DESC_F_NEXT)
            self.put_desc(q.desc, i, addr, length, flags, (i + 1) % q.num)
        q.free = (q.free + len(bufs)) % q.num
        self.make_available(q, head, notify)
        return head

    def add_indirect(self, q: Queue, table: int, bufs: list[tuple[int, int, bool]], notify: bool = True) -> int:
        for k, (addr, length, writable) in enumerate(bufs):
            last = k == len(bufs) - 1
            flags = (VRING_DESC_F_WRITE if writable else 0) | (0 if last else VRING_DESC_F_NEXT)
            self.put_desc(table, k, addr, length, flags, k + 1)
        head = q.free
        self.put_desc(q.desc, head, table, 16 * len(bufs), VRING_DESC_F_INDIRECT, 0)
        q.free = (q.free + 1) % q.num
        self.make_available(q, head, notify)
        return head

    def make_available(self, q: Queue, head: int, notify: bool = True) -> None:
        self.ram.put(q.avail + 4 + 2 * (q.avail_idx % q.num), struct.pack("<H", head))
        q.avail_idx = (q.avail_idx + 1) & 0xFFFF
        self.ram.put(q.avail + 2, struct.pack("<H", q.avail_idx))
        if notify:
            self.w(M.QUEUE_NOTIFY, q.index)

    def take_used(self, q: Queue) -> list[tuple[int, int]]:
        idx = struct.unpack("<H", self.ram.get(q.used + 2, 2))[0]
        out = []
        while q.seen_used != idx:
            out.append(struct.unpack("<II", self.ram.get(q.used + 4 + 8 * (q.seen_used % q.num), 8)))
            q.seen_used = (q.seen_used + 1) & 0xFFFF
        return out

    def ack(self) -> int:
        isr = self.r(M.INTERRUPT_STATUS)
        self.w(M.INTERRUPT_ACK, isr)
        return isr
