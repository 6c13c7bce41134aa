"""Device tree generated from the BoardSpec with libfdt's sequential writer.

Only what kernels built for QEMU `virt` read is emitted: cpus (with cpu-intc), memory,
chosen (bootargs, stdout-path, initrd as 32-bit cells like QEMU 7.2 — zCore reads them
so), the CLINT, the PLIC with M and S contexts per hart (M ones masked as OpenSBI does), the UART, the virtio-mmio
slots, the PCI host when devices sit on it, and the sifive test finisher with syscon
reboot/poweroff nodes.
"""
from __future__ import annotations

import struct

import libfdt

from emu.board import RISCV_ISA, TIMEBASE_HZ, BoardSpec
from emu.devices.pci_host import PCI_INTX_LINES, intx_irq
from emu.devices.plic import PLIC_NDEV


def _cells(*values: int) -> bytes:
    return b"".join(struct.pack(">I", v) for v in values)


def _reg(base: int, size: int) -> bytes:
    return _cells(base >> 32, base & 0xFFFFFFFF, size >> 32, size & 0xFFFFFFFF)


def _pci_node(sw: libfdt.FdtSw, board: BoardSpec, plic_ph: int) -> None:
    """QEMU virt's `pci-host-ecam-generic` node (create_fdt_pcie): ECAM, the 32-bit MMIO
    window mapped 1:1, and INTx of slots 0..3 swizzled onto PLIC sources 32..35."""
    ecam, window = board.region("pcie-ecam"), board.region("pcie-mmio")
    sw.begin_node(f"pci@{ecam.base:x}")
    sw.property_u32("#address-cells", 3)
    sw.property_u32("#size-cells", 2)
    sw.property_u32("#interrupt-cells", 1)
    sw.property_string("compatible", "pci-host-ecam-generic")
    sw.property_string("device_type", "pci")
    sw.property_u32("linux,pci-domain", 0)
    sw.property("bus-range", _cells(0, ecam.size // (1 << 20) - 1))
    sw.property("dma-coherent", b"")
    sw.property("reg", _reg(ecam.base, ecam.size))
    sw.property("ranges", _cells(0x0200_0000, window.base >> 32, window.base & 0xFFFFFFFF)
                + _reg(window.base, window.size))
    sw.property("interrupt-map-mask", _cells(0x1800, 0, 0, 7))
    sw.property("interrupt-map", _cells(*[c for slot in range(PCI_INTX_LINES) for pin in range(1, 5)
                                          for c in (slot << 11, 0, 0, pin, plic_ph, intx_irq(slot, pin))]))
    sw.end_node()


def build_fdt(board: BoardSpec) -> bytes:
    """Return the flattened device tree blob for `board`."""
    sw = libfdt.FdtSw()
    sw.finish_reservemap()
    phandle = iter(range(1, 1000))
    intc = [next(phandle) for _ in range(board.harts)]
    plic_ph = next(phandle)
    test_ph = next(phandle)

    sw.begin_node("")
    sw.property_u32("#address-cells", 2)
    sw.property_u32("#size-cells", 2)
    sw.property_string("compatible", "riscv-virtio")
    sw.property_string("model", "riscv-virtio,qemu")

    uart = board.region("uart0")
    sw.begin_node("chosen")
    sw.property_string("bootargs", board.bootargs)
    sw.property_string("stdout-path", f"/soc/serial@{uart.base:x}")
    if board.initrd:
        start, end = board.initrd
        if end <= 0xFFFFFFFF:
            sw.property_u32("linux,initrd-start", start)
            sw.property_u32("linux,initrd-end", end)
        else:
            sw.property_u64("linux,initrd-start", start)
            sw.property_u64("linux,initrd-end", end)
    sw.end_node()

    ram = board.ram
    sw.begin_node(f"memory@{ram.base:x}")
    sw.property_string("device_type", "memory")
    sw.property("reg", _reg(ram.base, ram.size))
    sw.end_node()

    sw.begin_node("cpus")
    sw.property_u32("#address-cells", 1)
    sw.property_u32("#size-cells", 0)
    sw.property_u32("timebase-frequency", TIMEBASE_HZ)
    for h in range(board.harts):
        sw.begin_node(f"cpu@{h}")
        sw.property_string("device_type", "cpu")
        sw.property_u32("reg", h)
        sw.property_string("status", "okay")
        sw.property_string("compatible", "riscv")
        sw.property_string("riscv,isa", RISCV_ISA)
        sw.property_string("mmu-type", "riscv,sv39")
        sw.begin_node("interrupt-controller")
        sw.property_u32("#interrupt-cells", 1)
        sw.property("interrupt-controller", b"")
        sw.property_string("compatible", "riscv,cpu-intc")
        sw.property_u32("phandle", intc[h])
        sw.end_node()
        sw.end_node()
    sw.end_node()  # cpus

    sw.begin_node("soc")
    sw.property_u32("#address-cells", 2)
    sw.property_u32("#size-cells", 2)
    sw.property_string("compatible", "simple-bus")
    sw.property("ranges", b"")

    test = board.region("test")
    sw.begin_node(f"test@{test.base:x}")
    sw.property("compatible", b"sifive,test1\0sifive,test0\0syscon\0")
    sw.property("reg", _reg(test.base, test.size))
    sw.property_u32("phandle", test_ph)
    sw.end_node()
    for name, value in (("poweroff", 0x5555), ("reboot", 0x7777)):
        sw.begin_node(name)
        sw.property_string("compatible", f"syscon-{name}")
        sw.property_u32("regmap", test_ph)
        sw.property_u32("offset", 0)
        sw.property_u32("value", value)
        sw.end_node()

    clint = board.region("clint")
    sw.begin_node(f"clint@{clint.base:x}")
    sw.property("compatible", b"sifive,clint0\0riscv,clint0\0")
    sw.property("reg", _reg(clint.base, clint.size))
    sw.property("interrupts-extended", _cells(*[c for h in range(board.harts) for c in (intc[h], 3, intc[h], 7)]))
    sw.end_node()

    plic = board.region("plic")
    sw.begin_node(f"plic@{plic.base:x}")
    sw.property_u32("phandle", plic_ph)
    sw.property_u32("riscv,ndev", PLIC_NDEV)
    sw.property("reg", _reg(plic.base, plic.size))
    # M-mode contexts are listed with IRQ 0xffffffff, as OpenSBI's fdt_plic_fixup hands the tree
    # to S-mode kernels (zCore registers a handler for every listed cause and logs cause 11 as invalid).
    sw.property("interrupts-extended",
                _cells(*[c for h in range(board.harts) for c in (intc[h], 0xFFFFFFFF, intc[h], 9)]))
    sw.property("interrupt-controller", b"")
    sw.property("compatible", b"sifive,plic-1.0.0\0riscv,plic0\0")
    sw.property_u32("#address-cells", 0)
    sw.property_u32("#interrupt-cells", 1)
    sw.end_node()

    for r in board.regions:
        if r.kind == "virtio_mmio":
            sw.begin_node(f"virtio_mmio@{r.base:x}")
            sw.property_u32("interrupts", r.irq)
            sw.property_u32("interrupt-parent", plic_ph)
            sw.property("reg", _reg(r.base, r.size))
            sw.property_string("compatible", "virtio,mmio")
            sw.end_node()

    if board.pci:
        _pci_node(sw, board, plic_ph)

    sw.begin_node(f"serial@{uart.base:x}")
    sw.property_u32("interrupts", uart.irq)
    sw.property_u32("interrupt-parent", plic_ph)
    sw.property_u32("clock-frequency", 0x384000)
    sw.property("reg", _reg(uart.base, 0x100))
    sw.property_string("compatible", "ns16550a")
    sw.end_node()

    sw.end_node()  # soc
    sw.end_node()  # root
    return bytes(sw.as_fdt().as_bytearray())
