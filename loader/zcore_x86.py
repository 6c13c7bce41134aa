"""zCore's x86_64 ELF entered the way rboot hands it over (rcore-os/rboot @ ad21575, the UEFI
loader zCore's Makefile boots under OVMF), without the firmware.

zCore has no other x86 entry: `_start(boot_info: &'static BootInfo)` (zCore/src/platform/x86/
entry.rs) expects what rboot's main.rs leaves behind: UEFI's identity map, all of physical
memory at `physical_memory_offset` with 2 MiB pages (up to at least 4 GiB), the ELF's
segments mapped page by page with their own permissions, a 512-page stack at
0xffffff01_00000000, CR0.WP and EFER.NXE set, and `call entry` with rsp = the stack top and
rdi = &BootInfo.  zCore keeps that CR3 as its kernel page table (processes clone its upper
half), reads the memory map for CONVENTIONAL frames, finds the IOAPIC through the RSDP, and
copies x86-smpboot's trampoline to 0x6000 (its CR3 read back as 32 bits), so every table
here lies below 4 GiB and low memory stays out of the free list.

`BootInfo` is `#[repr(C)]` (rboot src/lib.rs) but holds a `Vec` and a `&str`, whose field
order is rustc's: the offsets below were read from the real build's `_start` (see
tests/zcore/test_zcore_x86_layout.py and the lab notes).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

from emu.errors import EmuError

PHYS_OFFSET = 0xFFFF_8000_0000_0000  # zCore/rboot.conf physical_memory_offset
STACK_VADDR = 0xFFFF_FF01_0000_0000  # rboot config.rs default kernel_stack_address
STACK_PAGES = 512  # rboot config.rs default kernel_stack_size
HIGH_HALF = 0xFFFF_8000_0000_0000  # an x86_64 ELF linked here can only be entered this way
PAGE = 0x1000
PHYSMAP_LIMIT = 4 << 30  # what the identity/physmap tables (2 MiB pages) cover

# Low memory that the loader owns (never CONVENTIONAL): x86-smpboot's trampoline page
# (0x6000), BootInfo and its memory map, the command line, the boot GDT and tables.
TRAMPOLINE = 0x6000
BOOT_INFO = 0x8000
DESCRIPTORS = 0x8100  # MemoryDescriptor array
DESC_POINTERS = 0x8C00  # the Vec<&MemoryDescriptor> buffer
CMDLINE = 0x9000
CMDLINE_MAX = 0x7000  # up to the boot tables at 0x1_0000
LOW_RESERVED_END = 0x10_0000

# uefi 0.16 table::boot::MemoryType
EFI_RESERVED, EFI_LOADER_DATA, EFI_CONVENTIONAL, EFI_ACPI_RECLAIM = 0, 2, 7, 9
DESC_SIZE = 40  # MemoryDescriptor: ty u32, pad u32, phys_start, virt_start, page_count, att u64
DESC_MAX = (DESC_POINTERS - DESCRIPTORS) // DESC_SIZE

# BootInfo (136 bytes).  Vec<T> under rustc 1.63: RawVec { ptr, cap } then len.
BI_VEC_PTR, BI_VEC_CAP, BI_VEC_LEN = 0, 8, 16
BI_PHYS_OFFSET = 24
BI_GRAPHIC = 32  # GraphicInfo { ModeInfo (36 bytes, padded to 40), fb_addr, fb_size }: zeroed
BI_GRAPHIC_SIZE = 56
BI_RSDP, BI_SMBIOS, BI_INITRAMFS_ADDR, BI_INITRAMFS_SIZE = 88, 96, 104, 112
BI_CMDLINE_PTR, BI_CMDLINE_LEN = 120, 128
BOOT_INFO_SIZE = 136

UEFI_FPCW, UEFI_MXCSR = 0x037F, 0x1F80  # what UEFI firmware hands an x64 OS loader

PTE_P, PTE_W, PTE_PS, PTE_NX = 1, 2, 0x80, 1 << 63
PF_X, PF_W = 1, 2
ADDR_MASK = 0x000F_FFFF_FFFF_F000


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment as placed in RAM."""

    vaddr: int
    paddr: int
    memsz: int
    flags: int  # ELF p_flags


@dataclass(frozen=True)
class MemoryRegion:
    start: int
    end: int
    kind: int  # UEFI memory type


@dataclass
class PageTables:
    """4-level tables built in a bump-allocated physical range; `pages` maps each table's
    physical address to its 512 entries."""

    root: int
    next_free: int
    limit: int
    pages: dict[int, list[int]] = field(default_factory=dict)

    def table(self, addr: int) -> list[int]:
        return self.pages.setdefault(addr, [0] * 512)

    def _alloc(self) -> int:
        if self.next_free + PAGE > self.limit:
            raise EmuError("zCore loader: out of room for page tables")
        addr, self.next_free = self.next_free, self.next_free + PAGE
        self.table(addr)
        return addr

    def map_4k(self, vaddr: int, paddr: int, flags: int) -> None:
        """Map one 4 KiB page; intermediate entries are P|W (the leaf decides)."""
        table = self.root
        for shift in (39, 30, 21):
            entries = self.table(table)
            index = (vaddr >> shift) & 511
            if not entries[index]:
                entries[index] = self._alloc() | PTE_P | PTE_W
            table = entries[index] & ADDR_MASK
        self.table(table)[(vaddr >> 12) & 511] = (paddr & ADDR_MASK) | flags

    def blobs(self) -> list[tuple[int, bytes]]:
        return [(addr, struct.pack("<512Q", *entries)) for addr, entries in sorted(self.pages.items())]


def is_rboot_kernel(entry_vaddr: int, machine_x86: bool) -> bool:
    """An x86_64 ELF linked in the upper half: rboot's handover is the only way in."""
    return machine_x86 and entry_vaddr >= HIGH_HALF


def segment_pages(segments: list[Segment]) -> dict[int, tuple[int, int]]:
    """virtual page -> (physical page, leaf flags); a page two segments share gets the
    union of their rights, as rboot's per-segment map_to would leave the later one."""
    pages: dict[int, tuple[int, int]] = {}
    for seg in segments:
        if seg.vaddr % PAGE != seg.paddr % PAGE:
            raise EmuError(f"zCore loader: segment at {seg.vaddr:#x} is not placed page-congruent")
        flags = PTE_P | (PTE_W if seg.flags & PF_W else 0) | (0 if seg.flags & PF_X else PTE_NX)
        first = seg.vaddr & ~(PAGE - 1)
        for vpage in range(first, seg.vaddr + seg.memsz, PAGE):
            ppage = vpage - seg.vaddr + seg.paddr
            if vpage in pages:
                old = pages[vpage][1]
                flags_merged = PTE_P | ((old | flags) & PTE_W) | (old & flags & PTE_NX)
                pages[vpage] = (pages[vpage][0], flags_merged)
            else:
                pages[vpage] = (ppage, flags)
    return pages


def build_page_tables(root: int, identity_pdpt: int, segments: list[Segment], stack_paddr: int,
                      alloc_start: int, alloc_limit: int) -> PageTables:
    """rboot's address space: PML4[0] (identity, UEFI's) and PML4[256] (the physmap) share
    the board's identity PDPT of 2 MiB pages; the kernel and its stack get 4 KiB pages."""
    tables = PageTables(root, alloc_start, alloc_limit)
    pml4 = tables.table(root)
    pml4[0] = identity_pdpt | PTE_P | PTE_W
    pml4[(PHYS_OFFSET >> 39) & 511] = identity_pdpt | PTE_P | PTE_W
    for vpage, (ppage, flags) in sorted(segment_pages(segments).items()):
        tables.map_4k(vpage, ppage, flags)
    for i in range(STACK_PAGES):
        tables.map_4k(STACK_VADDR + i * PAGE, stack_paddr + i * PAGE, PTE_P | PTE_W | PTE_NX)
    return tables


def memory_map(ram_end: int, acpi: tuple[int, int], loader_end: int) -> list[MemoryRegion]:
    """The UEFI map zCore reads: low memory and everything the loader placed (kernel, page
    tables, stack, initrd) is LOADER_DATA, the ACPI tables ACPI_RECLAIM, the rest free."""
    regions = [MemoryRegion(0, acpi[0], EFI_LOADER_DATA), MemoryRegion(acpi[0], acpi[1], EFI_ACPI_RECLAIM),
               MemoryRegion(acpi[1], loader_end, EFI_LOADER_DATA)]
    if loader_end < ram_end:
        regions.append(MemoryRegion(loader_end, ram_end, EFI_CONVENTIONAL))
    return regions


def descriptors(regions: list[MemoryRegion]) -> bytes:
    if len(regions) > DESC_MAX:
        raise EmuError(f"zCore loader: {len(regions)} memory regions, room for {DESC_MAX}")
    return b"".join(struct.pack("<IIQQQQ", r.kind, 0, r.start, 0, (r.end - r.start) // PAGE, 0) for r in regions)


def boot_info(count: int, rsdp: int, initrd: tuple[int, int], cmdline_len: int) -> bytes:
    """rboot's BootInfo at BOOT_INFO; its Vec points at DESC_POINTERS (one pointer per
    descriptor), its &str at CMDLINE."""
    info = bytearray(BOOT_INFO_SIZE)
    struct.pack_into("<Q", info, BI_VEC_PTR, DESC_POINTERS)
    struct.pack_into("<Q", info, BI_VEC_CAP, count)
    struct.pack_into("<Q", info, BI_VEC_LEN, count)
    struct.pack_into("<Q", info, BI_PHYS_OFFSET, PHYS_OFFSET)
    struct.pack_into("<QQQQ", info, BI_RSDP, rsdp, 0, initrd[0], initrd[1])
    struct.pack_into("<QQ", info, BI_CMDLINE_PTR, CMDLINE, cmdline_len)
    return bytes(info)


@dataclass(frozen=True)
class Handover:
    """What the platform writes and how the BSP is entered."""

    blobs: list[tuple[int, bytes]]  # (physical address, bytes)
    rdi: int
    rsp: int


def handover(segments: list[Segment], kernel_end: int, ram_end: int, root: int, identity_pdpt: int,
             acpi: tuple[int, int], rsdp: int, cmdline: str, initrd: bytes | None) -> Handover:
    """Everything rboot would leave in memory for `_start`, placed after the kernel:
    page tables, the stack, the initramfs; BootInfo, its map and the command line low."""
    if ram_end > PHYSMAP_LIMIT:
        raise EmuError(f"zCore loader: at most {PHYSMAP_LIMIT >> 30} GiB of RAM (-m)")
    cmd = cmdline.encode()
    if len(cmd) > CMDLINE_MAX:
        raise EmuError(f"--append: {len(cmd)} bytes, the zCore loader takes at most {CMDLINE_MAX}")
    span = sum(s.memsz for s in segments)
    tables_start = _align(kernel_end, PAGE)
    tables_limit = tables_start + (span // (512 * PAGE) + 16) * PAGE
    stack = _align(tables_limit, PAGE)
    initrd_at = stack + STACK_PAGES * PAGE
    initrd_len = len(initrd) if initrd else 0
    loader_end = _align(initrd_at + initrd_len, 0x20_0000)
    if loader_end > ram_end:
        raise EmuError(f"zCore loader: kernel, stack and initrd need {loader_end >> 20} MiB, more RAM (-m)")
    tables = build_page_tables(root, identity_pdpt, segments, stack, tables_start, tables_limit)
    regions = memory_map(ram_end, acpi, loader_end)
    pointers = b"".join(struct.pack("<Q", DESCRIPTORS + i * DESC_SIZE) for i in range(len(regions)))
    blobs = tables.blobs() + [
        (DESCRIPTORS, descriptors(regions)), (DESC_POINTERS, pointers), (CMDLINE, cmd),
        (BOOT_INFO, boot_info(len(regions), rsdp, (initrd_at if initrd else 0, initrd_len), len(cmd)))]
    if initrd:
        blobs.append((initrd_at, initrd))
    # rboot: `mov rsp, stacktop; call entry` -- the entry sees its return address pushed.
    return Handover(blobs, BOOT_INFO, STACK_VADDR + STACK_PAGES * PAGE - 8)


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to
