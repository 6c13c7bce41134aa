"""Fork snapshots of a machine: guest RAM must be copy-on-write across `os.fork()`.

`emu.cpu.riscv.cpu.RiscvCpu` allocates guest RAM with `mmap.mmap(-1, size)`, which on
Linux is a MAP_SHARED anonymous mapping: after a fork, parent and children would all
write the same guest RAM, so a case would see (and leave behind) the state of every
other case.  `make_ram_private` replaces that mapping, at the same address (Unicorn
keeps its host pointer), with a MAP_PRIVATE anonymous one holding the same bytes.  Only
the pages that were touched (mincore) are copied: right after the Machine is built
that is the kernel, the initrd and the DTB.  When RAM is already private this does
nothing, so it keeps working once the CPU model allocates RAM privately itself.
"""
from __future__ import annotations

import ctypes
import mmap
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emu.machine import Machine

MAP_FIXED = 0x10  # Linux (every architecture emu runs on)
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.mincore.restype = ctypes.c_int
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def _ram(machine: "Machine") -> tuple[int, int, mmap.mmap]:
    ram = machine.cpu.ram
    addr = ctypes.addressof(ctypes.c_char.from_buffer(ram))
    return addr, len(ram), ram


def mapping_is_shared(addr: int) -> bool:
    """Whether the mapping that holds `addr` is MAP_SHARED (from /proc/self/maps)."""
    with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms[3] == "s"
    raise RuntimeError(f"no mapping holds {addr:#x}")


def make_ram_private(machine: "Machine") -> bool:
    """Make guest RAM copy-on-write across fork; True if it had to be remapped."""
    addr, size, ram = _ram(machine)
    if not mapping_is_shared(addr):
        return False
    page = mmap.PAGESIZE
    npages = (size + page - 1) // page
    vec = (ctypes.c_ubyte * npages)()
    if _libc.mincore(addr, size, vec) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mincore: {os.strerror(err)}")
    runs: list[tuple[int, bytes]] = []
    i = 0
    while i < npages:
        if vec[i] & 1:
            j = i
            while j < npages and vec[j] & 1:
                j += 1
            runs.append((i * page, ram[i * page:min(j * page, size)]))
            i = j
        else:
            i += 1
    got = _libc.mmap(addr, size, mmap.PROT_READ | mmap.PROT_WRITE,
                     mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | MAP_FIXED, -1, 0)
    if got != addr:
        err = ctypes.get_errno()
        raise OSError(err, f"mmap(MAP_FIXED) of guest RAM: {os.strerror(err)}")
    for off, data in runs:
        ctypes.memmove(addr + off, data, len(data))
    return True
