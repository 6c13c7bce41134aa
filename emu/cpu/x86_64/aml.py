"""A few ACPI Machine Language (AML) encoders, for the DSDT of the PC board.

Why by hand: the DSDT holds a handful of constant objects (`\\_S5`, the PCI root bridge
with its resources and interrupt routing), which take a page of code to encode, where
compiling ASL would add ACPICA's `iasl` to the build.  QEMU builds its tables the same way
(hw/acpi/aml-build.c).  Encodings: ACPI 6.5, section 20 (AML) and 6.4 (resource descriptors).
"""
from __future__ import annotations

import struct

ZERO_OP, ONE_OP = 0x00, 0x01
BYTE_PREFIX, WORD_PREFIX, DWORD_PREFIX, STRING_PREFIX, QWORD_PREFIX = 0x0A, 0x0B, 0x0C, 0x0D, 0x0E
NAME_OP, SCOPE_OP, BUFFER_OP, PACKAGE_OP = 0x08, 0x10, 0x11, 0x12
EXT_OP_PREFIX, DEVICE_OP = 0x5B, 0x82
ROOT_CHAR, DUAL_NAME_PREFIX, MULTI_NAME_PREFIX = 0x5C, 0x2E, 0x2F

# Address space resource types and flags (6.4.3.5)
RES_MEMORY, RES_IO, RES_BUS = 0, 1, 2
PRODUCER_FIXED = 0x0C  # general flags: a window the bridge produces, min and max fixed
MEM_READ_WRITE = 0x01
IO_ENTIRE_RANGE = 0x03


def pkg_length(body_len: int) -> bytes:
    """PkgLength (20.2.4): the length of itself plus `body_len`, in 1 to 4 bytes."""
    for extra in range(4):
        total = body_len + 1 + extra
        if extra == 0 and total < 0x40:
            return bytes([total])
        if extra and total < 1 << (4 + 8 * extra):
            return bytes([extra << 6 | total & 0xF]) + (total >> 4).to_bytes(extra, "little")
    raise ValueError(f"AML package of {body_len} bytes is too long")


def name_string(path: str) -> bytes:
    """`\\_SB_.PCI0`, `_HID`: segments of four characters (short ones padded with `_`)."""
    out = b""
    if path.startswith("\\"):
        out, path = bytes([ROOT_CHAR]), path[1:]
    segs = [s.ljust(4, "_").encode() for s in path.split(".")] if path else []
    if any(len(s) != 4 for s in segs):
        raise ValueError(f"AML name {path!r}: segments are at most 4 characters")
    if len(segs) == 1:
        return out + segs[0]
    if len(segs) == 2:
        return out + bytes([DUAL_NAME_PREFIX]) + b"".join(segs)
    return out + bytes([MULTI_NAME_PREFIX, len(segs)]) + b"".join(segs)


def integer(value: int) -> bytes:
    """The shortest integer encoding (Zero, One, Byte/Word/DWord/QWord constants)."""
    if value in (0, 1):
        return bytes([value])
    for prefix, fmt, limit in ((BYTE_PREFIX, "<B", 0xFF), (WORD_PREFIX, "<H", 0xFFFF),
                               (DWORD_PREFIX, "<I", 0xFFFF_FFFF), (QWORD_PREFIX, "<Q", (1 << 64) - 1)):
        if 0 <= value <= limit:
            return bytes([prefix]) + struct.pack(fmt, value)
    raise ValueError(f"AML integer {value} out of range")


def eisa_id(text: str) -> bytes:
    """EisaId("PNP0A03"): three letters (5 bits each) and four hex digits, as a DWord."""
    c = [ord(ch) - 0x40 for ch in text[:3]]
    raw = (c[0] << 26 | c[1] << 21 | c[2] << 16 | int(text[3:], 16)).to_bytes(4, "big")
    return integer(int.from_bytes(raw, "little"))


def name(path: str, obj: bytes) -> bytes:
    return bytes([NAME_OP]) + name_string(path) + obj


def package(*items: bytes) -> bytes:
    body = bytes([len(items)]) + b"".join(items)
    return bytes([PACKAGE_OP]) + pkg_length(len(body)) + body


def buffer(data: bytes) -> bytes:
    body = integer(len(data)) + data
    return bytes([BUFFER_OP]) + pkg_length(len(body)) + body


def scope(path: str, *objs: bytes) -> bytes:
    body = name_string(path) + b"".join(objs)
    return bytes([SCOPE_OP]) + pkg_length(len(body)) + body


def device(path: str, *objs: bytes) -> bytes:
    body = name_string(path) + b"".join(objs)
    return bytes([EXT_OP_PREFIX, DEVICE_OP]) + pkg_length(len(body)) + body


# -- resource descriptors (the bytes of a ResourceTemplate buffer) ------------------------------
def word_space(kind: int, lo: int, hi: int, type_flags: int = 0) -> bytes:
    """Word Address Space Descriptor (6.4.3.5.3): a bus-number or I/O window the bridge produces."""
    return struct.pack("<BHBBBHHHHH", 0x88, 13, kind, PRODUCER_FIXED, type_flags, 0, lo, hi, 0, hi - lo + 1)


def dword_memory(lo: int, hi: int) -> bytes:
    """DWord Address Space Descriptor (6.4.3.5.2): a read/write, non-cacheable memory window."""
    return struct.pack("<BHBBBIIIII", 0x87, 23, RES_MEMORY, PRODUCER_FIXED, MEM_READ_WRITE, 0, lo, hi, 0, hi - lo + 1)


def io_port(base: int, length: int) -> bytes:
    """I/O Port Descriptor (6.4.2.5): fixed ports the device itself decodes (16-bit decode)."""
    return struct.pack("<BBHHBB", 0x47, 1, base, base, 1, length)


def resource_template(*descriptors: bytes) -> bytes:
    """A ResourceTemplate: the descriptors and the End Tag (checksum 0: not checked)."""
    return buffer(b"".join(descriptors) + bytes([0x79, 0]))
