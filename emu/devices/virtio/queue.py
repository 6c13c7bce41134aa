"""Split virtqueues (virtio 1.x section 2.7), as the device side sees them.

Everything the guest hands us is untrusted: ring indexes, descriptor indexes, addresses
and lengths.  Every guest address goes through GuestMemory (the one checked DMA path), a
chain is fully walked and every buffer range checked *before* the device acts on it, and
chains are bounded (no more descriptors than the queue has, no loops, no nested indirect
tables, at most 4 GiB - 1 bytes each way).  A violation raises VirtqError, which the
transport turns into DEVICE_NEEDS_RESET (spec 2.1.2) rather than a host exception.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emu.devices.dma import DmaError, GuestMemory

VRING_DESC_F_NEXT = 1
VRING_DESC_F_WRITE = 2
VRING_DESC_F_INDIRECT = 4
VRING_AVAIL_F_NO_INTERRUPT = 1

DESC_SIZE = 16
MAX_INDIRECT = 1024  # entries in one indirect table (QEMU's VIRTQUEUE_MAX_SIZE)
MAX_CHAIN_BYTES = 0xFFFF_FFFF  # the used ring's length field is 32 bits
IO_CHUNK = 1 << 20  # host bytes moved per step when copying a chain


class VirtqError(Exception):
    """The driver broke the virtqueue rules: the device must enter NEEDS_RESET."""


@dataclass
class Chain:
    """One available descriptor chain, walked and range-checked."""

    head: int
    readable: list[tuple[int, int]] = field(default_factory=list)  # (guest addr, length)
    writable: list[tuple[int, int]] = field(default_factory=list)
    read_len: int = 0
    write_len: int = 0

    def read(self, mem: GuestMemory, offset: int, length: int) -> bytes:
        """Up to `length` bytes of the driver-readable part, from `offset`."""
        out = bytearray()
        for addr, n in self.readable:
            if length <= 0:
                break
            if offset >= n:
                offset -= n
                continue
            take = min(n - offset, length)
            out += mem.read(addr + offset, take)
            length -= take
            offset = 0
        return bytes(out)

    def read_all(self, mem: GuestMemory, offset: int = 0) -> bytes:
        return self.read(mem, offset, self.read_len - offset)

    def write(self, mem: GuestMemory, offset: int, data: bytes | memoryview) -> int:
        """Write into the device-writable part from `offset`; returns the bytes written."""
        view = memoryview(data)
        done = 0
        for addr, n in self.writable:
            if done >= len(view):
                break
            if offset >= n:
                offset -= n
                continue
            take = min(n - offset, len(view) - done)
            mem.write(addr + offset, bytes(view[done:done + take]))
            done += take
            offset = 0
        return done

    def segments(self, part: list[tuple[int, int]], offset: int, length: int):
        """(guest addr, length) pieces of `part` covering [offset, offset+length), ≤ IO_CHUNK each."""
        for addr, n in part:
            if length <= 0:
                return
            if offset >= n:
                offset -= n
                continue
            take = min(n - offset, length)
            a = addr + offset
            while take > 0:
                step = min(take, IO_CHUNK)
                yield a, step
                a += step
                take -= step
                length -= step
            offset = 0


class Virtqueue:
    """Device-side state of one split virtqueue."""

    def __init__(self, index: int, num_max: int) -> None:
        self.index = index
        self.num_max = num_max
        self.reset()

    def reset(self) -> None:
        self.num = self.num_max  # modern: QueueNum reads num_max until written (QEMU does so)
        self.ready = False
        self.desc = 0
        self.avail = 0
        self.used = 0
        self.pfn = 0  # legacy QueuePFN as written
        self.align = 4096  # legacy QueueAlign
        self.last_avail = 0
        self.used_idx = 0
        self.signalled_used = 0  # used idx at the last interrupt (event idx)
        self.event_idx = False

    # -- legacy layout (virtio 1.x section 2.7.2 / 4.2.4): one contiguous area ------------
    def set_legacy(self, pfn: int, page_size: int) -> None:
        self.pfn = pfn
        if pfn == 0 or self.num == 0:
            self.ready = False
            self.desc = self.avail = self.used = 0
            return
        num = self.num
        self.desc = pfn * page_size
        self.avail = self.desc + DESC_SIZE * num
        align = self.align if self.align > 0 and self.align & (self.align - 1) == 0 else 4096
        end_avail = self.avail + 4 + 2 * num + 2  # flags, idx, ring[num], used_event
        self.used = (end_avail + align - 1) & ~(align - 1)
        self.ready = True

    # -- driver -> device ----------------------------------------------------------------
    def pending(self, mem: GuestMemory) -> int:
        """Number of chains the driver made available that we have not taken."""
        avail_idx = mem.read_u16(self.avail + 2)
        n = (avail_idx - self.last_avail) & 0xFFFF
        if n > self.num:
            raise VirtqError(f"queue {self.index}: avail idx {avail_idx} is {n} ahead (size {self.num})")
        return n

    def pop(self, mem: GuestMemory) -> Chain | None:
        """Take the next available chain (walked and checked), or None if there is none."""
        if not self.ready or self.num == 0:
            return None
        if self.pending(mem) == 0:
            return None
        slot = self.avail + 4 + 2 * (self.last_avail % self.num)
        head = mem.read_u16(slot)
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        if self.event_idx:  # avail_event: notify us when the driver passes this index
            mem.write_u16(self.used + 4 + 8 * self.num, self.last_avail)
        return self._walk(mem, head)

    def _walk(self, mem: GuestMemory, head: int) -> Chain:
        if head >= self.num:
            raise VirtqError(f"queue {self.index}: head {head} out of range (size {self.num})")
        chain = Chain(head)
        table, size, idx = self.desc, self.num, head
        budget = self.num  # descriptors visited in this table: more means a loop
        indirect = False
        total = 0
        while True:
            if budget <= 0:
                raise VirtqError(f"queue {self.index}: descriptor chain loops or is too long")
            budget -= 1
            raw = mem.read(table + DESC_SIZE * idx, DESC_SIZE)
            addr = int.from_bytes(raw[0:8], "little")
            length = int.from_bytes(raw[8:12], "little")
            flags = int.from_bytes(raw[12:14], "little")
            nxt = int.from_bytes(raw[14:16], "little")
            if flags & VRING_DESC_F_INDIRECT:
                if indirect:
                    raise VirtqError(f"queue {self.index}: nested indirect table")
                if flags & VRING_DESC_F_NEXT:
                    raise VirtqError(f"queue {self.index}: indirect descriptor with NEXT")
                if length == 0 or length % DESC_SIZE or length // DESC_SIZE > MAX_INDIRECT:
                    raise VirtqError(f"queue {self.index}: bad indirect table length {length}")
                mem.check(addr, length)
                indirect = True
                table, size, idx = addr, length // DESC_SIZE, 0
                budget = size
                continue
            mem.check(addr, length)
            if length:
                total += length
                if total > MAX_CHAIN_BYTES:
                    raise VirtqError(f"queue {self.index}: chain longer than 4 GiB")
                if flags & VRING_DESC_F_WRITE:
                    chain.writable.append((addr, length))
                    chain.write_len += length
                else:
                    if chain.writable:
                        raise VirtqError(f"queue {self.index}: readable descriptor after a writable one")
                    chain.readable.append((addr, length))
                    chain.read_len += length
            if not flags & VRING_DESC_F_NEXT:
                return chain
            if nxt >= size:
                raise VirtqError(f"queue {self.index}: next {nxt} out of range ({size})")
            idx = nxt

    # -- device -> driver ----------------------------------------------------------------
    def push(self, mem: GuestMemory, head: int, written: int) -> None:
        """Return a chain to the driver with the number of bytes the device wrote."""
        elem = self.used + 4 + 8 * (self.used_idx % self.num)
        mem.write(elem, head.to_bytes(4, "little") + (written & 0xFFFF_FFFF).to_bytes(4, "little"))
        self.used_idx = (self.used_idx + 1) & 0xFFFF
        mem.write_u16(self.used + 2, self.used_idx)

    def needs_interrupt(self, mem: GuestMemory) -> bool:
        """After pushing: does the driver want a used-buffer notification (spec 2.7.7.2)?"""
        old, new = self.signalled_used, self.used_idx
        if old == new:
            return False
        if self.event_idx:
            used_event = mem.read_u16(self.avail + 4 + 2 * self.num)
            self.signalled_used = new
            return (new - used_event - 1) & 0xFFFF < (new - old) & 0xFFFF
        self.signalled_used = new
        return not mem.read_u16(self.avail) & VRING_AVAIL_F_NO_INTERRUPT


__all__ = ["IO_CHUNK", "MAX_INDIRECT", "Chain", "DmaError", "VirtqError", "Virtqueue"]
