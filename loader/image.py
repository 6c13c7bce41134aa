"""Kernel images: riscv64 or x86_64 ELF (PT_LOAD at physical addresses), an x86 bzImage, or
a riscv64 raw binary.

A raw image is entered at the kernel address (0x8020_0000, where OpenSBI jumps).  Files
that are neither a riscv64 ELF nor plausibly RISC-V code (Linux Image header, or first
instructions that decode) are refused with a one-line error.
"""
from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, BinaryIO, Callable

from emu.board import KERNEL_ADDR
from emu.errors import EmuError
from loader.symbols import Symbols

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

EM_RISCV = 243
EM_X86_64 = 62
ARCH_MACHINES = {"riscv64": EM_RISCV, "x86_64": EM_X86_64}
X86_KERNEL_ADDR = 0x10_0000  # where a PC boot loader puts a protected-mode kernel (1 MiB)
LINUX_IMAGE_MAGIC = b"RISCV\0\0\0"
LINUX_IMAGE_MAGIC2 = b"RSC\x05"


@dataclass
class KernelImage:
    path: Path
    kind: str  # "elf" or "raw"
    segments: list[tuple[int, bytes]]  # (physical address, the file's bytes)
    entry: int  # physical
    symbol_source: Callable[[], Symbols] | None = None  # parses the symbol table when first asked
    exec_segments: list[tuple[int, bytes]] = field(default_factory=list)  # (virtual address, code)
    # (physical address, length) zero-filled after a segment's file bytes (.bss).  Not made
    # into bytes: guest RAM starts zeroed, and zCore's 85 MB .bss (its heap) cost ~120 ms
    # of allocating and copying zeros at every start.
    zero_fill: list[tuple[int, int]] = field(default_factory=list)
    boot: object | None = None  # what the board's boot protocol needs (x86 bzImage: its header)
    # ELF: (virtual address, physical address, memory size, p_flags) of each PT_LOAD as
    # placed, for loaders that build the kernel's own mapping (zCore x86_64 through rboot's handover)
    placed: list[tuple[int, int, int, int]] = field(default_factory=list)
    entry_vaddr: int = 0
    _symbols: Symbols | None = field(default=None, repr=False)

    @property
    def symbols(self) -> Symbols:
        """The kernel's symbols, parsed on first use: a plain run never asks (a zCore ELF's
        tables take ~80 ms to read), reports, traces and the debugger do."""
        if self._symbols is None:
            self._symbols = self.symbol_source() if self.symbol_source is not None else Symbols()
        return self._symbols

    @property
    def start(self) -> int:
        return min(a for a, _ in self.segments)

    @property
    def end(self) -> int:
        return max([a + len(d) for a, d in self.segments] + [a + n for a, n in self.zero_fill])


def load_kernel(path: str | Path, ram_base: int, ram_size: int, arch: str = "riscv64") -> KernelImage:
    """Read a kernel for `arch` ("riscv64" or "x86_64"); one-line EmuError when it is not one."""
    path = Path(path)
    try:
        f = path.open("rb")
    except FileNotFoundError:
        raise EmuError(f"kernel not found: {path}") from None
    except IsADirectoryError:
        raise EmuError(f"kernel is a directory: {path}") from None
    except OSError as err:
        raise EmuError(f"cannot read kernel {path}: {err.strerror}") from None
    try:
        head = f.read(4)
        if not head:
            raise EmuError(f"kernel is empty: {path}")
        if head == b"\x7fELF":
            # Read through the open file: a zCore ELF is ~30 MB of debug information around
            # ~1 MB that is loaded; reading it all cost ~20 ms at every start.
            f.seek(0)
            return _load_elf(path, f, ram_base, ram_base + ram_size, arch)
        f.seek(0)
        data = f.read()
    except OSError as err:
        raise EmuError(f"cannot read kernel {path}: {err.strerror}") from None
    finally:
        f.close()
    if arch == "x86_64" and data[0x202:0x206] == b"HdrS":
        from loader import bzimage

        image = bzimage.parse(str(path), data)
        addr = bzimage.load_address(image, ram_base + ram_size)
        return KernelImage(path, "bzimage", [(addr, image.kernel)], addr + bzimage.ENTRY_64, boot=image)
    if arch == "x86_64":
        try:
            _check_raw(path, data)
        except EmuError:
            raise EmuError(f"{path}: not an x86_64 kernel (ELF or bzImage)") from None
        raise EmuError(f"{path}: a riscv64 kernel image, expected x86_64 (run it with --arch riscv64)")
    _check_raw(path, data)
    return KernelImage(path, "raw", [(KERNEL_ADDR, data)], KERNEL_ADDR, exec_segments=[(KERNEL_ADDR, data)])


def _check_raw(path: Path, data: bytes) -> None:
    if data[48:56] == LINUX_IMAGE_MAGIC or data[56:60] == LINUX_IMAGE_MAGIC2:
        return
    head = data[:256]
    printable = sum(1 for b in head if 32 <= b < 127 or b in (9, 10, 13))
    known = {b"\x1f\x8b": "gzip data", b"PK": "a zip archive", b"#!": "a script", b"MZ": "a PE/EFI executable"}
    for magic, what in known.items():
        if data.startswith(magic):
            raise EmuError(f"{path}: not a riscv64 kernel ({what})")
    if printable > 0.9 * len(head):
        raise EmuError(f"{path}: not a riscv64 kernel (looks like text)")
    import capstone  # only raw images need it

    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV64 | capstone.CS_MODE_RISCVC)
    decoded = 0
    for insn in md.disasm(data[:64], KERNEL_ADDR):
        decoded += insn.size
        if decoded >= 16:
            return
    raise EmuError(f"{path}: not a riscv64 ELF or raw image (its first bytes are not RISC-V code)")


ELF_MACHINES = {3: "i386", 8: "MIPS", 40: "ARM", 62: "X86_64", 183: "AARCH64", 243: "RISCV", 258: "LOONGARCH"}
PT_LOAD = 1
PF_X = 1


def _load_elf(path: Path, f: BinaryIO, ram_start: int, ram_end: int, arch: str = "riscv64") -> KernelImage:
    """The loadable segments of a 64-bit ELF for `arch`, read with `struct` from its program headers.

    pyelftools (used for the symbol table, on first use) costs ~25 ms to import at every
    start, a tenth of a zCore boot; the ELF64 header and program headers are two fixed
    layouts, read here in a few lines."""
    def malformed(why: str) -> EmuError:
        return EmuError(f"{path}: malformed ELF ({why})")

    try:
        size = os.fstat(f.fileno()).st_size
        hdr = f.read(64)
        if len(hdr) < 20:
            raise malformed("truncated header")
        machine = struct.unpack_from("<H", hdr, 18)[0]
        if machine != ARCH_MACHINES[arch]:
            other = next((a for a, m in ARCH_MACHINES.items() if m == machine), None)
            hint = f" (run it with --arch {other})" if other else ""
            raise EmuError(f"{path}: ELF for {ELF_MACHINES.get(machine, f'machine {machine}')}, expected {arch}{hint}")
        if hdr[4] != 2:
            raise EmuError(f"{path}: 32-bit ELF, expected {arch}")
        if hdr[5] != 1:
            raise malformed("big-endian")
        if len(hdr) < 64:
            raise malformed("truncated header")
        entry_v, phoff = struct.unpack_from("<QQ", hdr, 24)
        phentsize, phnum = struct.unpack_from("<HH", hdr, 54)
        if phnum and (phentsize < 56 or phoff + phnum * phentsize > size):
            raise malformed("program headers outside the file")
        f.seek(phoff)
        table = f.read(phnum * phentsize)
        raw, code, flags = [], [], []
        for i in range(phnum):
            p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz = struct.unpack_from(
                "<IIQQQQQ", table, i * phentsize)
            if p_type != PT_LOAD or p_memsz == 0:
                continue
            if p_offset + p_filesz > size or p_filesz > p_memsz:
                raise malformed(f"segment {i} outside the file")
            f.seek(p_offset)
            data = f.read(p_filesz)
            raw.append((p_paddr, p_vaddr, data, p_memsz))
            flags.append(p_flags)
            if p_flags & PF_X:
                code.append((p_vaddr, data))
        if not raw:
            raise EmuError(f"{path}: ELF has no loadable segments")
    except struct.error:
        raise malformed("truncated") from None

    def inside(addr: int, size: int) -> bool:
        return ram_start <= addr and addr + size <= ram_end

    if all(inside(p, n) for p, _, _, n in raw):
        place = {v: p for p, v, _, _ in raw}
    elif all(inside(v, n) for _, v, _, n in raw):
        place = {v: v for _, v, _, _ in raw}
    else:  # linked high: keep the layout, put the lowest segment at the kernel address
        low = min(v for _, v, _, _ in raw)
        base = X86_KERNEL_ADDR if arch == "x86_64" else KERNEL_ADDR
        place = {v: v - low + base for _, v, _, _ in raw}
    segments = [(place[v], d) for _, v, d, _ in raw]
    zero_fill = [(place[v] + len(d), n - len(d)) for _, v, d, n in raw if n > len(d)]
    entry = None
    for _, v, _, n in raw:
        if v <= entry_v < v + n:
            entry = entry_v - v + place[v]
        elif place[v] <= entry_v < place[v] + n:
            entry = entry_v
    if entry is None:
        raise EmuError(f"{path}: ELF entry point {entry_v:#x} is outside its loadable segments")
    stamp = _stamp(path)
    placed = [(v, place[v], n, fl) for (_, v, _, n), fl in zip(raw, flags)]
    return KernelImage(path, "elf", segments, entry, lambda: _symbols_of(path, stamp), code, zero_fill=zero_fill,
                       placed=placed, entry_vaddr=entry_v)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _symbols_of(path: Path, stamp: tuple[int, int, int] | None) -> Symbols:
    """The symbols of the ELF at `path`, read when first asked; none if the file is no
    longer the one that was loaded (rebuilt meanwhile): wrong names are worse than none."""
    from elftools.elf.elffile import ELFFile

    if stamp is None or _stamp(path) != stamp:
        return Symbols()
    try:
        with path.open("rb") as f:
            return _symbols(ELFFile(f))
    except Exception:  # noqa: BLE001 - a kernel that ran has symbols we can do without
        return Symbols()


def _symbols(elf: "ELFFile") -> Symbols:
    """Function, object and untyped symbols with a name.

    pyelftools finds the tables; the entries themselves are unpacked with `struct`,
    because pyelftools' per-symbol parsing takes ~20 us each (6 s for the 358k symbols
    of a zCore debug build, against 0.2 s here).
    """
    from elftools.elf.sections import SymbolTableSection

    entries = []
    wanted_types = {0, 1, 2}  # STT_NOTYPE, STT_OBJECT, STT_FUNC
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection) or elf.elfclass != 64:
            continue
        strtab = elf.get_section(section["sh_link"]).data()
        data = section.data()
        for st_name, st_info, _other, st_shndx, st_value, st_size in struct.iter_unpack("<IBBHQQ", data[:len(data) // 24 * 24]):
            if st_shndx == 0 or (st_info & 0xF) not in wanted_types or st_name == 0:
                continue
            end = strtab.find(b"\0", st_name)
            name = strtab[st_name:end if end >= 0 else None].decode("utf-8", "replace")
            if name and not name.startswith("$"):
                entries.append((st_value, st_size, name))
    return Symbols.from_entries(entries)
