"""rboot's handover as loader/zcore_x86.py builds it, checked field by field from data (no
zCore build needed): BootInfo's offsets (rboot src/lib.rs under rustc 1.63, read from the
built kernel's `_start`), the UEFI memory descriptors, and the page tables walked like the
MMU would walk them."""
from __future__ import annotations

import struct

import pytest

from emu.errors import EmuError
from loader import zcore_x86 as z

ROOT, PDPT = 0x1_1000, 0x1_2000
KERNEL = 0xFFFF_FF00_0000_0000
SEGMENTS = [z.Segment(KERNEL, 0x10_0000, 0x3000, z.PF_X | 4),  # text: R X
            z.Segment(KERNEL + 0x3000, 0x10_3000, 0x1000, 4),  # rodata: R
            z.Segment(KERNEL + 0x4000, 0x10_4000, 0x5_0800, z.PF_W | 4)]  # data + bss: R W
KERNEL_END = 0x10_4000 + 0x5_0800


def _memory(h: z.Handover) -> dict[int, bytes]:
    return dict(h.blobs)


def _read(blobs: dict[int, bytes], addr: int, size: int) -> bytes:
    for start, data in blobs.items():
        if start <= addr and addr + size <= start + len(data):
            return data[addr - start:addr - start + size]
    raise AssertionError(f"nothing written at {addr:#x}")


def _walk(blobs: dict[int, bytes], vaddr: int) -> tuple[int, int] | None:
    """(physical address, leaf entry) through 4-level tables; PDPT at PDPT is the board's
    identity table of 2 MiB pages (not in the blobs): answered as 2 MiB identity pages."""
    table = ROOT
    for level, shift in enumerate((39, 30, 21, 12)):
        if table == PDPT:  # the board's identity tables: 2 MiB pages of physical memory
            return vaddr & ((1 << 39) - 1), z.PTE_P | z.PTE_W | z.PTE_PS
        entry = struct.unpack("<Q", _read(blobs, table + ((vaddr >> shift) & 511) * 8, 8))[0]
        if not entry & z.PTE_P:
            return None
        table = entry & z.ADDR_MASK
    return table | (vaddr & 0xFFF), entry


@pytest.fixture
def handover() -> z.Handover:
    return z.handover(SEGMENTS, KERNEL_END, 1 << 30, ROOT, PDPT, (0xE_0000, 0x10_0000), 0xE_0000,
                      "LOG=warn", b"SFS image" * 100)


def test_boot_info_fields(handover):
    blobs = _memory(handover)
    assert handover.rdi == z.BOOT_INFO
    info = _read(blobs, z.BOOT_INFO, z.BOOT_INFO_SIZE)
    ptr, cap, length = struct.unpack_from("<QQQ", info, 0)
    assert (ptr, cap, length) == (z.DESC_POINTERS, 4, 4)
    assert struct.unpack_from("<Q", info, 24)[0] == 0xFFFF_8000_0000_0000
    assert info[32:88] == bytes(56)  # graphic info: no framebuffer
    rsdp, smbios, initrd, initrd_size = struct.unpack_from("<QQQQ", info, 88)
    assert (rsdp, smbios, initrd_size) == (0xE_0000, 0, 900)
    assert _read(blobs, initrd, 900) == b"SFS image" * 100
    cmd_ptr, cmd_len = struct.unpack_from("<QQ", info, 120)
    assert _read(blobs, cmd_ptr, cmd_len) == b"LOG=warn"


def test_memory_map_descriptors(handover):
    blobs = _memory(handover)
    regions = []
    for i in range(4):
        desc = struct.unpack("<Q", _read(blobs, z.DESC_POINTERS + 8 * i, 8))[0]
        ty, _pad, start, virt, pages, att = struct.unpack("<IIQQQQ", _read(blobs, desc, z.DESC_SIZE))
        assert virt == 0 and att == 0
        regions.append((ty, start, start + pages * 0x1000))
    assert regions[0] == (z.EFI_LOADER_DATA, 0, 0xE_0000)
    assert regions[1] == (z.EFI_ACPI_RECLAIM, 0xE_0000, 0x10_0000)
    ty, start, end = regions[2]
    assert ty == z.EFI_LOADER_DATA and start == 0x10_0000 and end % 0x20_0000 == 0
    assert regions[3] == (z.EFI_CONVENTIONAL, end, 1 << 30)
    _, initrd, _ = struct.unpack_from("<QQQ", _read(blobs, z.BOOT_INFO + 104, 24))
    assert initrd + 900 <= end  # the initramfs is never handed out as free memory


def test_kernel_mapping_and_permissions(handover):
    blobs = _memory(handover)
    phys, pte = _walk(blobs, KERNEL + 0x1234)
    assert phys == 0x10_1234 and pte & z.PTE_NX == 0 and pte & z.PTE_W == 0
    phys, pte = _walk(blobs, KERNEL + 0x3000)
    assert phys == 0x10_3000 and pte & z.PTE_NX and not pte & z.PTE_W
    phys, pte = _walk(blobs, KERNEL + 0x5_4000)  # the last bss page
    assert phys == 0x15_4000 and pte & z.PTE_NX and pte & z.PTE_W
    assert _walk(blobs, KERNEL + 0x5_5000) is None


def test_stack_physmap_and_identity(handover):
    blobs = _memory(handover)
    assert handover.rsp == 0xFFFF_FF01_0020_0000 - 8
    top = _walk(blobs, handover.rsp)
    bottom = _walk(blobs, z.STACK_VADDR)
    assert top and bottom and top[0] - bottom[0] == 0x20_0000 - 8  # physically contiguous
    assert top[1] & z.PTE_W and top[1] & z.PTE_NX
    assert _walk(blobs, z.STACK_VADDR - 0x1000) is None  # guard below the stack
    assert _walk(blobs, 0xFFFF_8000_FEE0_0000)[0] == 0xFEE0_0000  # the physmap reaches the APIC
    assert _walk(blobs, 0x6000)[0] == 0x6000  # identity: the AP trampoline


def test_shared_page_gets_both_rights():
    pages = z.segment_pages([z.Segment(KERNEL, 0x10_0000, 0x800, z.PF_X | 4),
                             z.Segment(KERNEL + 0x800, 0x10_0800, 0x800, z.PF_W | 4)])
    assert pages == {KERNEL: (0x10_0000, z.PTE_P | z.PTE_W)}


def test_bad_input_is_one_line():
    with pytest.raises(EmuError, match="more RAM"):
        z.handover(SEGMENTS, KERNEL_END, 2 << 20, ROOT, PDPT, (0xE_0000, 0x10_0000), 0, "", None)
    with pytest.raises(EmuError, match="at most 4 GiB"):
        z.handover(SEGMENTS, KERNEL_END, 8 << 30, ROOT, PDPT, (0xE_0000, 0x10_0000), 0, "", None)
    with pytest.raises(EmuError, match="--append"):
        z.handover(SEGMENTS, KERNEL_END, 1 << 30, ROOT, PDPT, (0xE_0000, 0x10_0000), 0, "x" * 0x8000, None)


def test_rboot_kernels_are_upper_half_x86_elves():
    assert z.is_rboot_kernel(KERNEL, True)
    assert not z.is_rboot_kernel(0x10_0000, True)
    assert not z.is_rboot_kernel(KERNEL, False)
