"""ACPI tables for the PC board: RSDP (revision 2), XSDT and RSDT, FADT with a DSDT, MADT.

What Linux and zCore (rust-osdev/acpi) read to find the CPUs, the I/O APIC and how to
power off: the MADT lists one local APIC per CPU, the I/O APIC (its ID equal to its ID
register, GSI base 0) and the ISA overrides (IRQ 0 -> GSI 2, the SCI on GSI 9, level);
the FADT points at the PM1a event/control ports (0x600/0x604) and the DSDT, whose
`\\_S5` (sleep type 0) makes a sleep-enable write of 0x2000 to 0x604 power off.  With PCI
devices the DSDT also has the PCI root bridge `\\_SB.PCI0` (PNP0A03: conventional PCI,
configuration mechanism #1, no MCFG), whose _CRS gives bus 0-255, the config ports, the I/O
ports and the BAR window, and whose _PRT routes every slot's INTA-D to the I/O APIC
inputs of the swizzle (level, active low, as ACPI's GSI entries mean).  Linux enumerates
PCI only below such a root bridge; zCore scans the ports itself.
The tables sit at ACPI_BASE (in the BIOS area Linux scans for the RSDP) and are
announced as reserved memory.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from emu.cpu.x86_64 import aml

ACPI_BASE = 0xE_0000  # RSDP first: the BIOS read-only area Linux and firmware scan
ACPI_END = 0x10_0000
OEM_ID = b"EMU   "
OEM_TABLE_ID = b"EMUPC   "
PM_BASE = 0x600
SCI_IRQ = 9
S5_AML = aml.name("_S5_", aml.package(*[aml.integer(0)] * 4))  # Name(_S5, {0, 0, 0, 0})
PCI_SLOTS, PCI_PINS = 32, 4
PCI_CONFIG_PORTS = (0xCF8, 8)


@dataclass(frozen=True)
class PciRoot:
    """What the DSDT says of the PCI host: the BAR window and the GSI of INTA in slot 0."""

    window: tuple[int, int]  # [start, end) physical
    gsi_base: int


@dataclass(frozen=True)
class AcpiLayout:
    """Where the tables went (physical addresses)."""

    rsdp: int
    rsdt: int
    xsdt: int
    fadt: int
    dsdt: int
    madt: int
    end: int


def _checksum(data: bytes) -> int:
    return (-sum(data)) & 0xFF


def _table(signature: bytes, revision: int, body: bytes) -> bytes:
    """An SDT: the 36-byte header (checksummed) and `body`."""
    length = 36 + len(body)
    header = struct.pack("<4sIBB6s8sI4sI", signature, length, revision, 0, OEM_ID, OEM_TABLE_ID, 1, b"EMU ", 1)
    table = bytearray(header + body)
    table[9] = _checksum(bytes(table))
    return bytes(table)


def _madt(cpus: int, ioapic_id: int, lapic_base: int, ioapic_base: int) -> bytes:
    body = struct.pack("<II", lapic_base, 1)  # PCAT_COMPAT: dual 8259s present (masked)
    for cpu in range(cpus):
        body += struct.pack("<BBBBI", 0, 8, cpu, cpu, 1)  # processor local APIC, enabled
    body += struct.pack("<BBBBII", 1, 12, ioapic_id, 0, ioapic_base, 0)  # I/O APIC, GSI base 0
    body += struct.pack("<BBBBIH", 2, 10, 0, 0, 2, 0)  # ISA IRQ 0 -> GSI 2
    body += struct.pack("<BBBBIH", 2, 10, 0, SCI_IRQ, SCI_IRQ, 0xD)  # SCI: level, active high
    return _table(b"APIC", 3, body)


def _fadt(dsdt: int) -> bytes:
    """FADT revision 5 (268 bytes): hardware-reduced off, PM1a ports, the DSDT."""
    fadt = bytearray(268 - 36)

    def put(offset: int, fmt: str, *values: int) -> None:
        struct.pack_into(fmt, fadt, offset - 36, *values)

    put(36, "<I", 0)  # FIRMWARE_CTRL: no FACS
    put(40, "<I", dsdt)
    put(45, "<B", 0)  # preferred PM profile: unspecified
    put(46, "<H", SCI_IRQ)
    put(56, "<I", PM_BASE)  # PM1a_EVT_BLK
    put(64, "<I", PM_BASE + 4)  # PM1a_CNT_BLK
    put(76, "<I", PM_BASE + 8)  # PM_TMR_BLK
    put(88, "<BBBB", 4, 2, 0, 4)  # PM1_EVT_LEN, PM1_CNT_LEN, PM2_CNT_LEN, PM_TMR_LEN
    put(109, "<H", 1 << 1)  # IAPC_BOOT_ARCH: 8042 present
    put(112, "<I", 1 | (1 << 2) | (1 << 4) | (1 << 5) | (1 << 8))  # WBINVD, PROC_C1, no power/sleep buttons, 32-bit PM timer
    put(140, "<Q", dsdt)  # X_DSDT
    put(148, "<BBBBQ", 1, 32, 0, 2, PM_BASE)  # X_PM1a_EVT_BLK (system I/O)
    put(172, "<BBBBQ", 1, 16, 0, 2, PM_BASE + 4)  # X_PM1a_CNT_BLK
    put(208, "<BBBBQ", 1, 32, 0, 3, PM_BASE + 8)  # X_PM_TMR_BLK
    return _table(b"FACP", 5, bytes(fadt))


def _pci_root(pci: PciRoot) -> bytes:
    """Device(\\_SB.PCI0): _HID, _UID, _CRS (bus, config ports, I/O, BAR window), _PRT."""
    port, count = PCI_CONFIG_PORTS
    crs = aml.resource_template(
        aml.word_space(aml.RES_BUS, 0, 0xFF),
        aml.io_port(port, count),
        aml.word_space(aml.RES_IO, 0, port - 1, aml.IO_ENTIRE_RANGE),
        aml.word_space(aml.RES_IO, 0xD00, 0xFFFF, aml.IO_ENTIRE_RANGE),
        aml.dword_memory(pci.window[0], pci.window[1] - 1))
    # (address: slot << 16 | 0xFFFF = any function, pin 0-3 = INTA-D, source 0 = a GSI, GSI)
    prt = aml.package(*[aml.package(aml.integer(slot << 16 | 0xFFFF), aml.integer(pin), aml.integer(0),
                                    aml.integer(pci.gsi_base + (slot + pin) % PCI_PINS))
                        for slot in range(PCI_SLOTS) for pin in range(PCI_PINS)])
    return aml.scope("\\_SB_", aml.device("PCI0", aml.name("_HID", aml.eisa_id("PNP0A03")),
                                         aml.name("_UID", aml.integer(0)), aml.name("_CRS", crs),
                                         aml.name("_PRT", prt)))


def build(cpus: int, ioapic_id: int, lapic_base: int, ioapic_base: int, base: int = ACPI_BASE,
          pci: PciRoot | None = None) -> tuple[AcpiLayout, bytes]:
    """The tables laid out from `base`, and their bytes (with `pci`: the PCI root bridge)."""
    rsdp_at = base
    dsdt_at = base + 0x40
    dsdt = _table(b"DSDT", 2, S5_AML + (_pci_root(pci) if pci is not None else b""))
    fadt_at = (dsdt_at + len(dsdt) + 15) & ~15
    fadt = _fadt(dsdt_at)
    madt_at = (fadt_at + len(fadt) + 15) & ~15
    madt = _madt(cpus, ioapic_id, lapic_base, ioapic_base)
    xsdt_at = (madt_at + len(madt) + 15) & ~15
    xsdt = _table(b"XSDT", 1, struct.pack("<QQ", fadt_at, madt_at))
    rsdt_at = (xsdt_at + len(xsdt) + 15) & ~15
    rsdt = _table(b"RSDT", 1, struct.pack("<II", fadt_at, madt_at))
    end = rsdt_at + len(rsdt)
    rsdp = bytearray(struct.pack("<8sB6sBIIQB3s", b"RSD PTR ", 0, OEM_ID, 2, rsdt_at, 36, xsdt_at, 0, b"\0\0\0"))
    rsdp[8] = _checksum(bytes(rsdp[:20]))
    rsdp[32] = _checksum(bytes(rsdp))
    blob = bytearray(end - base)
    for at, data in ((rsdp_at, bytes(rsdp)), (dsdt_at, dsdt), (fadt_at, fadt), (madt_at, madt), (xsdt_at, xsdt),
                     (rsdt_at, rsdt)):
        blob[at - base:at - base + len(data)] = data
    return AcpiLayout(rsdp_at, rsdt_at, xsdt_at, fadt_at, dsdt_at, madt_at, end), bytes(blob)
