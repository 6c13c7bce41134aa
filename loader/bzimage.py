"""Linux x86 `bzImage` through the 64-bit boot protocol (Documentation/x86/boot.rst).

The protected-mode kernel (everything after the setup sectors) goes to its preferred
address; the kernel is entered at that address + 0x200 in long mode (emu/cpu/x86_64/
boot.py) with rsi = the zero page, `boot_params`: the setup header copied from the image,
the loader type, the command line, the initrd, the e820 memory map and the RSDP address.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu.errors import EmuError

HDRS = b"HdrS"
MIN_VERSION = 0x020C  # xloadflags (2.12): XLF_KERNEL_64 says the 64-bit entry exists
XLF_KERNEL_64 = 1
ENTRY_64 = 0x200  # startup_64: 0x200 past the start of the protected-mode kernel
BOOT_PARAMS = 0x7000  # the zero page (4 KiB) in low memory
CMDLINE = 0x2_0000  # after emu's boot tables (0x1_0000 - 0x1_6FFF)
CMDLINE_MAX = 0x1_0000
E820_RAM, E820_RESERVED = 1, 2
E820_MAX = 128

# boot_params offsets
BP_ACPI_RSDP = 0x070
BP_EXT_RAMDISK_IMAGE, BP_EXT_RAMDISK_SIZE, BP_EXT_CMD_LINE_PTR = 0x0C0, 0x0C4, 0x0C8
BP_E820_ENTRIES = 0x1E8
BP_SETUP_HEADER = 0x1F1
BP_TYPE_OF_LOADER = 0x210
BP_RAMDISK_IMAGE, BP_RAMDISK_SIZE, BP_CMD_LINE_PTR = 0x218, 0x21C, 0x228
BP_E820_TABLE = 0x2D0


@dataclass(frozen=True)
class BzImage:
    """What the loader needs from a bzImage's setup header."""

    version: int
    setup: bytes  # boot sector and setup sectors (the header lives in them)
    kernel: bytes  # the protected-mode kernel
    pref_address: int
    init_size: int
    alignment: int
    initrd_addr_max: int
    cmdline_size: int


def is_bzimage(data: bytes) -> bool:
    return data[0x202:0x206] == HDRS and data[0x1FE:0x200] == b"\x55\xaa"


def parse(name: str, data: bytes) -> BzImage:
    """The bzImage's header, or a one-line EmuError naming what is wrong."""
    if not is_bzimage(data):
        raise EmuError(f"{name}: not a bzImage (no HdrS header)")
    version = struct.unpack_from("<H", data, 0x206)[0]
    if version < MIN_VERSION:
        raise EmuError(f"{name}: boot protocol {version >> 8}.{version & 0xFF}, the 64-bit entry needs 2.12 or later")
    if not struct.unpack_from("<H", data, 0x236)[0] & XLF_KERNEL_64:
        raise EmuError(f"{name}: a 32-bit kernel (no XLF_KERNEL_64)")
    setup_sects = data[0x1F1] or 4
    split = (setup_sects + 1) * 512
    if split >= len(data):
        raise EmuError(f"{name}: truncated bzImage")
    return BzImage(
        version=version,
        setup=data[:split],
        kernel=data[split:],
        pref_address=struct.unpack_from("<Q", data, 0x258)[0],
        init_size=struct.unpack_from("<I", data, 0x260)[0],
        alignment=struct.unpack_from("<I", data, 0x230)[0] or 0x20_0000,
        initrd_addr_max=struct.unpack_from("<I", data, 0x22C)[0],
        cmdline_size=struct.unpack_from("<I", data, 0x238)[0],
    )


def load_address(image: BzImage, ram_end: int) -> int:
    """Where the protected-mode kernel goes: its preferred address (aligned), with room
    for init_size bytes (the decompressor works in place)."""
    addr = max(image.pref_address, 0x10_0000)
    addr = (addr + image.alignment - 1) // image.alignment * image.alignment
    if addr + max(image.init_size, len(image.kernel)) > ram_end:
        raise EmuError(f"the kernel needs {max(image.init_size, len(image.kernel)) >> 20} MiB at {addr:#x}: "
                       f"more RAM (-m) than {ram_end >> 20} MiB")
    return addr


def e820_map(ram_end: int, reserved: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(address, size, type): conventional memory below the EBDA, the BIOS area (ACPI
    tables) reserved, RAM from 1 MiB."""
    table = [(0, 0x9_FC00, E820_RAM), (0x9_FC00, 0x400, E820_RESERVED)]
    table += [(start, end - start, E820_RESERVED) for start, end in reserved]
    table.append((0x10_0000, ram_end - 0x10_0000, E820_RAM))
    return table


def boot_params(image: BzImage, cmdline: str, initrd: tuple[int, int] | None, e820: list[tuple[int, int, int]],
                rsdp: int) -> bytes:
    """The zero page for the 64-bit entry."""
    bp = bytearray(4096)
    end = 0x202 + image.setup[0x201]  # the header's length is in its jump instruction
    bp[BP_SETUP_HEADER:end] = image.setup[BP_SETUP_HEADER:end]
    bp[BP_TYPE_OF_LOADER] = 0xFF  # an unregistered loader
    struct.pack_into("<I", bp, BP_CMD_LINE_PTR, CMDLINE & 0xFFFF_FFFF)
    struct.pack_into("<I", bp, BP_EXT_CMD_LINE_PTR, CMDLINE >> 32)
    if initrd is not None:
        start, size = initrd
        struct.pack_into("<II", bp, BP_RAMDISK_IMAGE, start & 0xFFFF_FFFF, size & 0xFFFF_FFFF)
        struct.pack_into("<I", bp, BP_EXT_RAMDISK_IMAGE, start >> 32)
        struct.pack_into("<I", bp, BP_EXT_RAMDISK_SIZE, size >> 32)
    bp[BP_E820_ENTRIES] = len(e820)
    for i, (addr, size, kind) in enumerate(e820[:E820_MAX]):
        struct.pack_into("<QQI", bp, BP_E820_TABLE + 20 * i, addr, size, kind)
    struct.pack_into("<Q", bp, BP_ACPI_RSDP, rsdp)
    return bytes(bp)


def command_line(image: BzImage, cmdline: str) -> bytes:
    data = cmdline.encode() + b"\0"
    limit = min(image.cmdline_size + 1 if image.cmdline_size else 256, CMDLINE_MAX)
    if len(data) > limit:
        raise EmuError(f"--append: {len(data) - 1} bytes, the kernel takes at most {limit - 1}")
    return data


def initrd_place(image: BzImage, size: int, ram_end: int, kernel_end: int) -> int:
    """The initrd's address: as high as the kernel allows, page-aligned, above the kernel."""
    top = min(ram_end, (image.initrd_addr_max or 0x37FF_FFFF) + 1)
    start = (top - size) & ~0xFFF
    if start < kernel_end:
        raise EmuError(f"the initrd ({size >> 20} MiB) does not fit above the kernel below {top:#x}: more RAM (-m)")
    return start
