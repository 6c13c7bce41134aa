"""A PCI host bridge (1b36:0008, QEMU's `gpex`): bus 0, its config space and its MMIO window.

Why: zCore riscv64 scans ECAM at 0x3000_0000 itself and drives the NICs it finds there;
Linux finds the same bridge through the device tree's `pci-host-ecam-generic` node.  The
x86_64 PC reaches the same bus through configuration mechanism #1 (emu/devices/pci_ports.py)
and, as PC firmware does, has the BARs placed before the kernel runs (`assign_bars`).

- ECAM: bus 0 only (no bridges, so buses 1..255 are empty: all ones, like an absent
  function).  Offset = bus << 20 | device << 15 | function << 12 | register.
- The MMIO window (QEMU virt: 0x4000_0000..0x8000_0000, PCI addresses = CPU addresses)
  routes an access to the BAR that decodes it.  A BAR decodes only while the function's
  COMMAND.MEM bit is set, as on QEMU (zCore's driver never sets it for a function with an
  MSI capability: its e1000e stays silent on QEMU and here).  Anything else in the window
  reads 0 and ignores writes, as QEMU's unassigned PCI memory does.
- INTx: the usual swizzle, input base + (slot + pin - 1) % 4: PLIC 32..35 on QEMU virt
  (PCIE_IRQ), I/O APIC 16..19 on the PC (what its DSDT's _PRT says).
- Config space is bytes plus a write mask per byte (what software may change), so BAR
  sizing with the all-ones write protocol works by itself: the mask keeps the size bits 0.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

ECAM_FUNCTION = 0x1000  # config space bytes per function (PCIe)
CONFIG_SIZE = 0x100  # the conventional part modelled; the extended part reads 0
PCI_IRQ_BASE = 32  # QEMU virt PCIE_IRQ
PCI_INTX_LINES = 4
SLOTS = 32

# Config space registers (PCI Local Bus 3.0, 6.1)
VENDOR_ID, DEVICE_ID, COMMAND, STATUS = 0x00, 0x02, 0x04, 0x06
REVISION, CLASS_PROG = 0x08, 0x09
HEADER_TYPE, BAR0, SUBSYS_VENDOR, SUBSYS_ID = 0x0E, 0x10, 0x2C, 0x2E
CAP_PTR, INTERRUPT_LINE, INTERRUPT_PIN = 0x34, 0x3C, 0x3D

CMD_IO, CMD_MEM, CMD_MASTER, CMD_INTX_DISABLE = 1 << 0, 1 << 1, 1 << 2, 1 << 10
STATUS_INTX, STATUS_CAP_LIST = 1 << 3, 1 << 4
CAP_ID_MSI = 0x05
CAP_ID_VENDOR = 0x09
MSI_64BIT, MSI_ENABLE = 1 << 7, 1 << 0

HOST_VENDOR, HOST_DEVICE = 0x1B36, 0x0008  # Red Hat, QEMU PCIe host bridge
CLASS_HOST_BRIDGE = 0x060000


@dataclass(frozen=True)
class Bar:
    """A 32-bit memory BAR of `size` bytes (a power of two, at least 16)."""

    size: int


class PciConfig:
    """One function's configuration space: values and what software may write."""

    def __init__(self, vendor: int, device: int, class_code: int, *, revision: int = 0,
                 subsystem: tuple[int, int] = (0, 0), pin: int = 0, bars: tuple[Bar, ...] = ()) -> None:
        self.data = bytearray(CONFIG_SIZE)
        self.wmask = bytearray(CONFIG_SIZE)
        self.bars = bars
        self._put(VENDOR_ID, 2, vendor)
        self._put(DEVICE_ID, 2, device)
        self._put(REVISION, 1, revision)
        self._put(CLASS_PROG, 3, class_code)
        self._put(SUBSYS_VENDOR, 2, subsystem[0])
        self._put(SUBSYS_ID, 2, subsystem[1])
        self._put(INTERRUPT_PIN, 1, pin)
        self._mask(COMMAND, 2, CMD_IO | CMD_MEM | CMD_MASTER | CMD_INTX_DISABLE)
        self._mask(0x0C, 1, 0xFF)  # cache line size
        self._mask(0x0D, 1, 0xFF)  # latency timer
        self._mask(INTERRUPT_LINE, 1, 0xFF)
        for i, bar in enumerate(bars):
            self._mask(BAR0 + 4 * i, 4, ~(bar.size - 1) & 0xFFFF_FFF0)
        self._cap_end = 0x40  # capabilities go after the header
        self._cap_last: int | None = None  # the list's tail (add_capability appends)
        self.msi_at: int | None = None

    def _put(self, offset: int, size: int, value: int) -> None:
        self.data[offset:offset + size] = (value & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def _mask(self, offset: int, size: int, mask: int) -> None:
        self.wmask[offset:offset + size] = (mask & ((1 << 8 * size) - 1)).to_bytes(size, "little")

    def get(self, offset: int, size: int) -> int:
        return int.from_bytes(self.data[offset:offset + size], "little")

    def add_capability(self, cap_id: int, body: bytes) -> int:
        """Append a read-only capability (`body`: the bytes after ID and next pointer) to the
        list; returns its offset in config space."""
        at = self._cap_end
        if at + 2 + len(body) > CONFIG_SIZE:
            raise ValueError("PCI capabilities do not fit in config space")
        self.data[at] = cap_id
        self.data[at + 2:at + 2 + len(body)] = body
        if self._cap_last is None:
            self._put(CAP_PTR, 1, at)
        else:
            self.data[self._cap_last + 1] = at
        self._cap_last = at
        self._cap_end = (at + 2 + len(body) + 3) & ~3
        self._put(STATUS, 2, self.get(STATUS, 2) | STATUS_CAP_LIST)
        return at

    def add_msi(self) -> None:
        """A 64-bit MSI capability (one vector), as QEMU's e1000e has at 0xD0."""
        at = 0xD0
        self._put(at, 2, CAP_ID_MSI | (self.get(CAP_PTR, 1) << 8))
        self._put(at + 2, 2, MSI_64BIT)
        self._mask(at + 2, 2, MSI_ENABLE)
        self._mask(at + 4, 4, 0xFFFF_FFFC)  # address
        self._mask(at + 8, 4, 0xFFFF_FFFF)  # upper address
        self._mask(at + 12, 2, 0xFFFF)  # data
        self._put(CAP_PTR, 1, at)
        self._put(STATUS, 2, self.get(STATUS, 2) | STATUS_CAP_LIST)
        self.msi_at = at

    # -- guest access ----------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset + size > CONFIG_SIZE:
            return 0  # extended config space: no extended capabilities
        return self.get(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        for i in range(size):
            at = offset + i
            if at >= CONFIG_SIZE:
                return
            mask = self.wmask[at]
            self.data[at] = (self.data[at] & ~mask) | ((value >> 8 * i) & mask)

    # -- what the device and the host ask ---------------------------------------------------
    @property
    def command(self) -> int:
        return self.get(COMMAND, 2)

    @property
    def bus_master(self) -> bool:
        return bool(self.command & CMD_MASTER)

    @property
    def msi_enabled(self) -> bool:
        return self.msi_at is not None and bool(self.get(self.msi_at + 2, 2) & MSI_ENABLE)

    def bar_base(self, index: int) -> int | None:
        """Where BAR `index` decodes now, or None (memory decoding off, or not placed)."""
        if not self.command & CMD_MEM:
            return None
        base = self.get(BAR0 + 4 * index, 4) & 0xFFFF_FFF0
        return base or None

    def set_intx_status(self, level: bool) -> None:
        status = self.get(STATUS, 2)
        self._put(STATUS, 2, status | STATUS_INTX if level else status & ~STATUS_INTX)


class PciFunction(Protocol):
    """What the host needs from a device on the bus."""

    config: PciConfig

    def bar_read(self, bar: int, offset: int, size: int) -> int: ...

    def bar_write(self, bar: int, offset: int, size: int, value: int) -> None: ...

    def config_written(self) -> None: ...

    def poll(self) -> None: ...

    def close(self) -> None: ...


class HostBridge:
    """00:00.0, which zCore lists and skips, and Linux binds nothing to."""

    def __init__(self) -> None:
        self.config = PciConfig(HOST_VENDOR, HOST_DEVICE, CLASS_HOST_BRIDGE)

    def bar_read(self, bar: int, offset: int, size: int) -> int:
        return 0

    def bar_write(self, bar: int, offset: int, size: int, value: int) -> None:
        pass

    def config_written(self) -> None:
        pass

    def poll(self) -> None:
        pass

    def close(self) -> None:
        pass


def intx_irq(slot: int, pin: int, base: int = PCI_IRQ_BASE) -> int:
    """The interrupt input of INTx `pin` (1 = INTA) of the device in `slot`: `base` plus the
    swizzle (PLIC sources from 32 on QEMU virt, I/O APIC inputs from 16 on the PC)."""
    return base + (slot + pin - 1) % PCI_INTX_LINES


class PciHost:
    """Bus 0 of the ECAM window and the MMIO window; functions are attached to slots."""

    def __init__(self, window_base: int) -> None:
        self.window_base = window_base
        self.slots: dict[int, PciFunction] = {0: HostBridge()}
        self.decoded: list[tuple[int, int, PciFunction, int]] = []  # (base, end, function, BAR) now
        self.ecam = _Ecam(self)
        self.window = _Window(self)

    def attach(self, device: PciFunction, slot: int | None = None) -> int:
        """Put `device` (function 0) in `slot` (the first free one by default); returns the slot."""
        if slot is None:
            slot = next(s for s in range(1, SLOTS) if s not in self.slots)
        if slot in self.slots or not 0 <= slot < SLOTS:
            raise ValueError(f"PCI slot {slot} is taken or out of range")
        self.slots[slot] = device
        self.remap()
        return slot

    def function(self, bus: int, slot: int, function: int) -> PciFunction | None:
        """The function at bus/slot/function (bus 0, function 0 only), or None."""
        if bus or function or not 0 <= slot < SLOTS:
            return None
        return self.slots.get(slot)

    def config_read(self, dev: PciFunction | None, register: int, size: int) -> int:
        """A config space read; an absent function reads all ones."""
        if dev is None:
            return (1 << 8 * size) - 1
        return dev.config.read(register, size)

    def config_write(self, dev: PciFunction | None, register: int, size: int, value: int) -> None:
        if dev is not None:
            dev.config.write(register, size, value)
            self.remap()
            dev.config_written()

    def assign_bars(self, window_size: int, irq_base: int) -> None:
        """What PC firmware does before the kernel: every memory BAR placed in the window
        (in slot order, each aligned to its size), memory decoding on, and INTERRUPT_LINE
        set to the function's interrupt input.  Raises ValueError if the window is too small."""
        at = self.window_base
        end = self.window_base + window_size
        for slot, dev in sorted(self.slots.items()):
            cfg = dev.config
            for i, bar in enumerate(cfg.bars):
                at = (at + bar.size - 1) & ~(bar.size - 1)
                if at + bar.size > end:
                    raise ValueError("the PCI window is too small for the BARs")
                cfg.write(BAR0 + 4 * i, 4, at)
                at += bar.size
            if cfg.bars:
                cfg.write(COMMAND, 2, cfg.command | CMD_MEM)
            pin = cfg.get(INTERRUPT_PIN, 1)
            if pin:
                cfg.write(INTERRUPT_LINE, 1, intx_irq(slot, pin, irq_base))
            dev.config_written()
        self.remap()

    def devices(self) -> list[PciFunction]:
        return [d for s, d in sorted(self.slots.items()) if s]

    def poll(self) -> None:
        """Between rounds: host input for the devices (network frames)."""
        for dev in self.slots.values():
            dev.poll()

    def close(self) -> None:
        for dev in self.slots.values():
            dev.close()

    def remap(self) -> None:
        """After a config write: which BARs decode where (a window access only looks this up)."""
        self.decoded = [(base, base + bar.size, dev, i) for dev in self.slots.values()
                        for i, bar in enumerate(dev.config.bars) if (base := dev.config.bar_base(i)) is not None]

    def route(self, addr: int) -> tuple[PciFunction, int, int] | None:
        """The function, BAR and offset a window address falls in, if one decodes it."""
        for base, end, dev, bar in self.decoded:
            if base <= addr < end:
                return dev, bar, addr - base
        return None


class _Ecam:
    """The ECAM region as a bus device (offsets from its base)."""

    def __init__(self, host: PciHost) -> None:
        self.host = host

    def _function(self, offset: int) -> PciFunction | None:
        return self.host.function(offset >> 20, (offset >> 15) & 31, (offset >> 12) & 7)

    def read(self, offset: int, size: int) -> int:
        return self.host.config_read(self._function(offset), offset & (ECAM_FUNCTION - 1), size)

    def write(self, offset: int, size: int, value: int) -> None:
        self.host.config_write(self._function(offset), offset & (ECAM_FUNCTION - 1), size, value)


class _Window:
    """The MMIO window as a bus device (offsets from the window base)."""

    def __init__(self, host: PciHost) -> None:
        self.host = host

    def read(self, offset: int, size: int) -> int:
        hit = self.host.route(self.host.window_base + offset)
        return 0 if hit is None else hit[0].bar_read(hit[1], hit[2], size)

    def write(self, offset: int, size: int, value: int) -> None:
        hit = self.host.route(self.host.window_base + offset)
        if hit is not None:
            hit[0].bar_write(hit[1], hit[2], size, value)
