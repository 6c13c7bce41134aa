"""The boards described once, as data: riscv64 `virt` and the x86_64 `pc`.

Like QEMU's hw/riscv/virt.c, one table of regions drives both the Unicorn memory map
(RAM, MMIO devices, the PMP ranges that turn every other physical access into a guest
access fault) and the device tree the guest reads.  Addresses are QEMU `virt`'s, so a
kernel built for QEMU runs unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MiB = 1 << 20
GiB = 1 << 30

RAM_BASE = 0x8000_0000
KERNEL_ADDR = 0x8020_0000  # where OpenSBI's fw_jump/fw_dynamic enters S-mode
TIMEBASE_HZ = 10_000_000
MROM_BASE = 0x1000  # QEMU virt's reset ROM; emu's M-mode set-up stub lives here
MAX_HARTS = 8
RISCV_ISA = "rv64imafdc_zicsr_zifencei"  # what Unicorn 2.1.4's "any" CPU implements (no sstc)


@dataclass(frozen=True)
class Region:
    """One physical region of the board."""

    name: str
    base: int
    size: int
    kind: str  # "ram", "rom" or the device model's name
    irq: int | None = None  # PLIC source number (riscv), ISA IRQ / IOAPIC input (x86)
    space: str = "mem"  # "mem" or "io" (x86 port I/O)

    @property
    def end(self) -> int:
        return self.base + self.size


@dataclass
class BoardSpec:
    """Everything about the machine that does not change while it runs."""

    harts: int = 2
    arch: str = "riscv64"  # "riscv64" (virt) or "x86_64" (pc)
    ram_size: int = 512 * MiB
    bootargs: str = ""
    initrd: tuple[int, int] | None = None  # [start, end) physical
    virtio_slots: int = 8
    pci: bool = False  # devices on the PCI host: the device tree gets its node
    regions: list[Region] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.regions:
            if self.arch == "x86_64":
                self.regions = pc_regions(self.ram_size)
            else:
                self.regions = virt_regions(self.ram_size, self.virtio_slots)

    def region(self, name: str) -> Region:
        for r in self.regions:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def ram(self) -> Region:
        return self.region("ram")


def virt_regions(ram_size: int, virtio_slots: int = 8) -> list[Region]:
    """QEMU virt's memory map (hw/riscv/virt.c `virt_memmap`), page-granular."""
    regions = [
        Region("mrom", MROM_BASE, 0xF000, "rom"),
        Region("test", 0x10_0000, 0x1000, "test_finisher"),
        Region("clint", 0x200_0000, 0x1_0000, "aclint"),
        Region("plic", 0x0C00_0000, 0x400_0000, "plic"),  # QEMU maps 0x60_0000; a power of two fits one PMP entry
        Region("uart0", 0x1000_0000, 0x1000, "uart16550", irq=10),
    ]
    regions += [
        Region(f"virtio{i}", 0x1000_1000 + 0x1000 * i, 0x1000, "virtio_mmio", irq=1 + i)
        for i in range(virtio_slots)
    ]
    used = 0x1000 * (1 + virtio_slots)
    if used < 0x1_0000:  # pad the UART + virtio block to 64 KiB: one PMP entry
        regions.append(Region("mmio-pad", 0x1000_0000 + used, 0x1_0000 - used, "empty"))
    # zCore scans PCI ECAM at this address without asking the device tree.
    regions.append(Region("pcie-ecam", 0x3000_0000, 0x1000_0000, "pci_ecam"))
    regions.append(Region("pcie-mmio", 0x4000_0000, 0x4000_0000, "pci_mmio"))  # BARs; mapped only with PCI devices
    regions.append(Region("ram", RAM_BASE, ram_size, "ram"))
    return regions


PC_RAM_MAX = 0xC000_0000  # RAM below the 32-bit PCI/APIC hole (no RAM above 4 GiB yet)
PC_PCI_GSI_BASE = 16  # I/O APIC input of INTA in slot 0; the swizzle spreads slots over 16..19
# PCI slots (bus 0) of the PC board's devices, in command-line order: the NIC (`--net`) as
# q35 places its first NIC, the disks (`--drive`) after it.  00:00.0 is the host bridge.
PC_PCI_SLOTS = {"net": (2,), "blk": tuple(range(3, 11))}


def pc_regions(ram_size: int) -> list[Region]:
    """The x86_64 PC board (as QEMU q35 places them): RAM from 0, the local APIC and the
    IOAPIC at their architectural addresses, the i8254 PIT on IRQ 0 (port 0x61: its channel 2
    gate), the CMOS clock at 0x70, COM1 at port 0x3F8 on ISA IRQ 4, the ACPI PM
    block at 0x600 (PM1a control at 0x604: a sleep-enable write powers off, zCore's
    shutdown), PCI configuration mechanism #1 at 0xCF8/0xCFC and the PCI memory window for
    BARs at the bottom of the 32-bit hole (mapped only with PCI devices; its `irq` is the
    first PCI interrupt input, PC_PCI_GSI_BASE)."""
    return [
        Region("ram", 0, min(ram_size, PC_RAM_MAX), "ram"),
        Region("ioapic", 0xFEC0_0000, 0x1000, "ioapic"),
        Region("lapic", 0xFEE0_0000, 0x1000, "lapic"),
        Region("pit", 0x40, 4, "i8254", irq=0, space="io"),
        Region("port61", 0x61, 1, "port61", space="io"),
        Region("rtc", 0x70, 2, "mc146818", irq=8, space="io"),
        Region("com1", 0x3F8, 8, "uart16550", irq=4, space="io"),
        Region("acpi-pm", 0x600, 0x80, "acpi_pm", space="io"),
        Region("pci-config", 0xCF8, 8, "pci_ports", space="io"),
        Region("pci-mmio", PC_RAM_MAX, 0x1000_0000, "pci_mmio", irq=PC_PCI_GSI_BASE),
    ]


def merged_ranges(regions: list[Region]) -> list[tuple[int, int]]:
    """Contiguous [start, end) spans covering the regions: the PMP allow-list."""
    spans: list[tuple[int, int]] = []
    for r in sorted(regions, key=lambda r: r.base):
        if spans and spans[-1][1] == r.base:
            spans[-1] = (spans[-1][0], r.end)
        else:
            spans.append((r.base, r.end))
    return spans
