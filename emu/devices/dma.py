"""The one checked path by which device models touch guest RAM (virtio DMA).

Every access is bounds-checked against RAM (a guest can hand a device any address:
descriptors must never reach host memory outside guest RAM).  Writes go through
Unicorn's mem_write so translated code covering the written range is invalidated
(a block device filling a page the guest will execute).
"""
from __future__ import annotations

from typing import Callable


class DmaError(Exception):
    """A guest-supplied address range lies outside guest RAM."""


class GuestMemory:
    def __init__(self, base: int, size: int, read: Callable[[int, int], bytes],
                 write: Callable[[int, bytes], None]) -> None:
        self.base = base
        self.size = size
        self._read = read
        self._write = write

    def check(self, addr: int, length: int) -> None:
        if length < 0 or addr < self.base or addr + length > self.base + self.size:
            raise DmaError(f"guest range {addr:#x}+{length:#x} is outside RAM")

    def read(self, addr: int, length: int) -> bytes:
        self.check(addr, length)
        return self._read(addr, length) if length else b""

    def write(self, addr: int, data: bytes) -> None:
        self.check(addr, len(data))
        if data:
            self._write(addr, data)

    def read_u16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "little")

    def read_u32(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 4), "little")

    def read_u64(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 8), "little")

    def write_u16(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFF).to_bytes(2, "little"))

    def write_u32(self, addr: int, value: int) -> None:
        self.write(addr, (value & 0xFFFFFFFF).to_bytes(4, "little"))
