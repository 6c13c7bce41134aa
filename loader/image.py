"""Kernel images: riscv64 or x86_64 ELF (PT_LOAD at physical addresses) or a raw binary.

A raw image is entered at the kernel address (0x8020_0000, where OpenSBI jumps).  Files
that are neither a riscv64 ELF nor plausibly RISC-V code (Linux Image header, or first
instructions that decode) are refused with a one-line error.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

from typing import TYPE_CHECKING, Callable

from emu.board import KERNEL_ADDR
from emu.errors import EmuError
from loader.symbols import Symbols

if TYPE_CHECKING:
    from elftools.elf.elffile import ELFFile

EM_RISCV = 243
EM_X86_64 = 62
ELF_MACHINES = {"riscv64": ("EM_RISCV", EM_RISCV), "x86_64": ("EM_X86_64", EM_X86_64)}
X86_KERNEL_ADDR = 0x10_0000  # where a PC boot loader puts a protected-mode kernel (1 MiB)
LINUX_IMAGE_MAGIC = b"RISCV\0\0\0"
LINUX_IMAGE_MAGIC2 = b"RSC\x05"


@dataclass
class KernelImage:
    path: Path
    kind: str  # "elf" or "raw"
    segments: list[tuple[int, bytes]]  # (physical address, bytes incl. zero fill)
    entry: int  # physical
    symbol_source: Callable[[], Symbols] | None = None  # parses the symbol table when first asked
    exec_segments: list[tuple[int, bytes]] = field(default_factory=list)  # (virtual address, code)
    boot: object | None = None  # what the board's boot protocol needs (x86 bzImage: its header)
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
        return max(a + len(d) for a, d in self.segments)


def load_kernel(path: str | Path, ram_base: int, ram_size: int, arch: str = "riscv64") -> KernelImage:
    """Read a kernel for `arch` ("riscv64" or "x86_64"); one-line EmuError when it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EmuError(f"kernel not found: {path}") from None
    except IsADirectoryError:
        raise EmuError(f"kernel is a directory: {path}") from None
    except OSError as err:
        raise EmuError(f"cannot read kernel {path}: {err.strerror}") from None
    if not data:
        raise EmuError(f"kernel is empty: {path}")
    if data[:4] == b"\x7fELF":
        return _load_elf(path, data, ram_base, ram_base + ram_size, arch)
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


def _load_elf(path: Path, data: bytes, ram_start: int, ram_end: int, arch: str = "riscv64") -> KernelImage:
    import io

    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if machine not in ELF_MACHINES[arch]:
            other = next((a for a, names in ELF_MACHINES.items() if machine in names), None)
            hint = f" (run it with --arch {other})" if other else ""
            raise EmuError(f"{path}: ELF for {str(machine).removeprefix('EM_')}, expected {arch}{hint}")
        if elf.elfclass != 64:
            raise EmuError(f"{path}: 32-bit ELF, expected {arch}")
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD" and seg["p_memsz"] > 0]
        if not loads:
            raise EmuError(f"{path}: ELF has no loadable segments")
        raw = [(seg["p_paddr"], seg["p_vaddr"], seg.data() + bytes(seg["p_memsz"] - seg["p_filesz"])) for seg in loads]
        code = [(seg["p_vaddr"], seg.data()) for seg in loads if seg["p_flags"] & 1]  # PF_X
        entry_v = elf["e_entry"]
        elf.get_section_by_name(".symtab")  # section headers read now: a malformed table fails here
    except ELFError as err:
        raise EmuError(f"{path}: malformed ELF ({err})") from None
    except EmuError:
        raise
    except Exception as err:  # pyelftools raises assorted errors on truncated files
        raise EmuError(f"{path}: malformed ELF ({type(err).__name__})") from None

    def inside(addr: int, size: int) -> bool:
        return ram_start <= addr and addr + size <= ram_end

    if all(inside(p, len(d)) for p, _, d in raw):
        place = {v: p for p, v, _ in raw}
    elif all(inside(v, len(d)) for _, v, d in raw):
        place = {v: v for _, v, _ in raw}
    else:  # linked high: keep the layout, put the lowest segment at the kernel address
        low = min(v for _, v, _ in raw)
        base = X86_KERNEL_ADDR if arch == "x86_64" else KERNEL_ADDR
        place = {v: v - low + base for _, v, _ in raw}
    segments = [(place[v], d) for _, v, d in raw]
    entry = None
    for _, v, d in raw:
        if v <= entry_v < v + len(d):
            entry = entry_v - v + place[v]
        elif place[v] <= entry_v < place[v] + len(d):
            entry = entry_v
    if entry is None:
        raise EmuError(f"{path}: ELF entry point {entry_v:#x} is outside its loadable segments")
    return KernelImage(path, "elf", segments, entry, lambda: _symbols_of(path, data), code)


def _symbols_of(path: Path, data: bytes) -> Symbols:
    import io

    from elftools.elf.elffile import ELFFile

    try:
        return _symbols(ELFFile(io.BytesIO(data)))
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
