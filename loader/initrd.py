"""Where the initrd and the device tree go in RAM: QEMU virt's placement.

QEMU 7.2 (hw/riscv/boot.c) puts the initrd at kernel + min(RAM/2, 128 MiB) and the DTB
2 MiB-aligned below min(RAM end, physical 3 GiB).  emu does the same so that kernels built and
tested on QEMU (zCore's offload fork maps memory in ways that depend on it) see the same
layout; an initrd that does not fit there goes just below the DTB.
"""
from __future__ import annotations

from dataclasses import dataclass

from emu.board import GiB, MiB
from emu.errors import EmuError


@dataclass
class Layout:
    initrd: tuple[int, int] | None
    dtb: int


def _mib(n: int) -> str:
    return f"{n / MiB:.1f} MiB"


def plan_layout(ram_base: int, ram_size: int, kernel_start: int, kernel_end: int,
                initrd_size: int | None, dtb_size: int) -> Layout:
    ram_end = ram_base + ram_size
    if kernel_end > ram_end:
        raise EmuError(f"kernel ({_mib(kernel_end - kernel_start)}) does not fit in {_mib(ram_size)} of RAM")
    top = min(ram_end, 3 * GiB)  # an absolute address, as in QEMU
    dtb = (top - dtb_size) & ~(2 * MiB - 1)
    if dtb < kernel_end:
        dtb = (top - dtb_size) & ~0xFFF
    if dtb < kernel_end:
        raise EmuError(f"RAM ({_mib(ram_size)}) too small for the kernel and device tree")
    if initrd_size is None:
        return Layout(None, dtb)
    start = kernel_start + min(ram_size // 2, 128 * MiB)
    if start < kernel_end or start + initrd_size > dtb:
        start = (dtb - initrd_size) & ~0xFFF
    if start < kernel_end:
        total = kernel_end - kernel_start + initrd_size
        raise EmuError(f"kernel + initrd ({_mib(total)}) do not fit in {_mib(ram_size)} of RAM (-m)")
    return Layout((start, start + initrd_size), dtb)
