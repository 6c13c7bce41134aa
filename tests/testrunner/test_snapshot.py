"""Fork snapshots: a child's guest RAM is its own (copy-on-write), the parent's stays clean."""
from __future__ import annotations

import ctypes
import os

from emu.board import BoardSpec
from emu.machine import Machine, MachineOptions
from loader.image import load_kernel


def _machine(elf) -> Machine:
    spec = BoardSpec(harts=2, ram_size=64 << 20, bootargs="offload=ipi")
    kernel = load_kernel(elf, spec.ram.base, spec.ram.size)
    return Machine(spec, kernel, None, MachineOptions(capture=True, timeout=60))


def _mapping_is_shared(addr: int) -> bool:
    with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
        for line in f:
            span, perms = line.split()[:2]
            lo, hi = (int(x, 16) for x in span.split("-"))
            if lo <= addr < hi:
                return perms[3] == "s"
    raise AssertionError(f"no mapping holds {addr:#x}")


def test_guest_ram_is_copy_on_write_across_fork(refguest_elf):
    m = _machine(refguest_elf)
    addr = m.cpu.ram_base
    assert not _mapping_is_shared(ctypes.addressof(ctypes.c_char.from_buffer(m.cpu.ram)))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            m.cpu.uc.mem_write(addr + 0x100000, b"child was here")
            os.write(w, bytes(m.cpu.uc.mem_read(addr + 0x100000, 14)))
        finally:
            os._exit(0)
    os.close(w)
    seen = os.read(r, 64)
    os.close(r)
    os.waitpid(pid, 0)
    assert seen == b"child was here"
    assert bytes(m.cpu.uc.mem_read(addr + 0x100000, 14)) == bytes(14)
