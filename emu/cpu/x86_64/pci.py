"""The PC board's PCI bus: the devices of `--drive` and `--net` in the slots the board table
gives them (emu/board.py PC_PCI_SLOTS), their BARs placed as firmware would, INTx to the
I/O APIC.

Without such options there is no host: the configuration ports read all ones, the DSDT has
no PCI root bridge and nothing is mapped in the PCI window, as before PCI devices existed.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from emu.board import PC_PCI_SLOTS
from emu.cpu.x86_64.acpi import PciRoot
from emu.devices.irq import IrqLine
from emu.devices.pci_host import PciHost, intx_irq
from emu.errors import EmuError

if TYPE_CHECKING:
    from emu.machine import Machine


class SharedIntx:
    """PCI interrupt lines are shared (open drain): an I/O APIC input is asserted while any
    function on it asserts, so one device lowering its INTx cannot hide another's (with five
    drives, slots 3 and 7 share an input)."""

    def __init__(self, gsi: Callable[[int, bool], None]) -> None:
        self.gsi = gsi
        self.asserted: dict[int, set[int]] = {}  # input -> slots asserting it

    def line(self, irq: int, slot: int) -> IrqLine:
        """The INTx line of the function in `slot`, wired to input `irq`."""
        return IrqLine(irq, lambda pin, level: self._set(pin, slot, level))

    def _set(self, pin: int, slot: int, level: bool) -> None:
        holders = self.asserted.setdefault(pin, set())
        before = bool(holders)
        if level:
            holders.add(slot)
        else:
            holders.discard(slot)
        if bool(holders) != before:
            self.gsi(pin, bool(holders))


def build_pci(m: "Machine", gsi: Callable[[int, bool], None]) -> tuple[PciHost, PciRoot] | None:
    """The host with the command line's devices (None without any), and what the DSDT says
    of it.  `gsi(input, level)` drives an I/O APIC input.  EmuError (one line) on bad
    options; devices opened before the error are closed."""
    opts = m.opts
    nic = opts.net is not None
    if not opts.drives and not nic:
        return None
    from emu.devices.virtio import make_virtio_pci, parse_drive, parse_net

    window = m.board.region("pci-mmio")
    gsi_base = window.irq or 0
    wanted: list[tuple[str, int, object]] = []  # (kind, slot, options)
    if len(opts.drives) > len(PC_PCI_SLOTS["blk"]):
        raise EmuError(f"{len(opts.drives)} drives asked for, the board has {len(PC_PCI_SLOTS['blk'])} PCI slots for them")
    if nic:
        wanted.append(("net", PC_PCI_SLOTS["net"][0], opts.net))
    wanted += [("blk", slot, drive) for slot, drive in zip(PC_PCI_SLOTS["blk"], opts.drives)]
    host = PciHost(window.base)
    wires = SharedIntx(gsi)
    try:
        for kind, slot, spec in sorted(wanted, key=lambda w: w[1]):
            irq = wires.line(intx_irq(slot, 1, gsi_base), slot)
            if kind == "net" and opts.nic != "virtio":
                from emu.devices.e1000 import make_e1000

                backend = m.net_backend(parse_net(str(spec)), opts.nic)  # the recorded host side, if any
                host.attach(make_e1000(opts.nic, str(spec), m.dma, irq, backend), slot)
                continue
            options = parse_net(str(spec)) if kind == "net" else parse_drive(str(spec))
            if kind == "net":
                options["backend"] = m.net_backend(options, "virtio-net-pci")
            host.attach(make_virtio_pci(kind, options, m.dma, irq), slot)
        host.assign_bars(window.size, gsi_base)
    except EmuError:
        host.close()
        raise
    return host, PciRoot((window.base, window.end), gsi_base)
