"""The x86_64 PC platform of a Machine: the CPUs and their local APICs, COM1, ACPI
power-off, the PCI devices (pci.py), and the kernel entered in the 64-bit boot state.

The board's regions (emu/board.py `pc_regions`) say what goes where; this module builds
the parts and wires them: the local APIC MMIO page answers for the CPU that is running,
IPIs, INIT and SIPI go from one CPU's APIC to the others through the scheduler (an IPI
takes effect at the sender's virtual time), and the APIC timer arms the scheduler's
per-CPU deadline.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from unicorn import x86_const as X

from emu.board import TIMEBASE_HZ
from emu.cpu.x86_64 import acpi, boot
from emu.cpu.x86_64.pci import build_pci
from emu.cpu.x86_64.cpu import X86Cpu
from emu.cpu.x86_64.lapic import (APIC_BASE as LAPIC_BASE, DELIVERY_FIXED, DELIVERY_INIT, DELIVERY_SIPI, NO_DEADLINE, SHORTHAND_ALL,
                                  SHORTHAND_OTHERS, SHORTHAND_SELF, Lapic)
from emu.devices.dma import GuestMemory
from emu.devices.i8254 import Pit, Port61
from emu.devices.ioapic import IOAPIC_BASE, IoApic
from emu.devices.mc146818 import Mc146818
from emu.devices.pci_ports import PciConfigPorts
from emu.devices.irq import IrqLine
from emu.devices.uart16550 import Uart16550
from emu.errors import EmuError
from emu.smp.clock import BYTES_PER_INSN
from emu.smp.hart import Hart, HsmState
from emu.smp.scheduler import Scheduler
from loader import bzimage, zcore_x86

if TYPE_CHECKING:
    from emu.machine import Machine

TSC_PER_TICK = 400  # the virtual TSC runs at 4 GHz (zCore assumes 4 GHz without CPUID 0x16)
PM1_SLP_EN = 1 << 13
PM1A_CNT = 4  # offset of PM1a_CNT in the ACPI PM block at 0x600 (QEMU q35: port 0x604)
APIC_BUS_HZ = 1_000_000_000  # the local APIC timer's input clock, as QEMU's (APIC_BUS_CYCLE_NS = 1)
PM_TMR = 8  # the ACPI PM timer (port 0x608)
PM_TIMER_HZ = 3_579_545
IOAPIC_ID = 0  # as QEMU's pc machines


class PcPlatform:
    """Builds and wires the PC board's parts into `m` (cpu, scheduler, uart, dma)."""

    def __init__(self, m: "Machine", initrd: bytes | None) -> None:
        self.m = m
        board = m.board
        m.cpu = cpu = X86Cpu(board, m, TSC_PER_TICK)
        ram = board.ram
        m.dma = GuestMemory(ram.base, ram.size, lambda a, n: bytes(cpu.uc.mem_read(a, n)), cpu.uc.mem_write)
        m.scheduler = Scheduler(cpu, m.harts, m.clock, m.opts.quantum * BYTES_PER_INSN)
        cpu.attach_clock(m.clock.native)
        cpu.now_fn = m.scheduler.now
        self.lapics = [Lapic(h.id, self, apic_id=h.id, bus_cycles_per_tick=APIC_BUS_HZ // TIMEBASE_HZ)
                       for h in m.harts]
        self.lapic_deadlines = [NO_DEADLINE] * len(m.harts)
        self.pit_deadline = NO_DEADLINE  # the IRQ 0 armed on CPU 0
        self.pit = Pit(self._now, TIMEBASE_HZ)
        self.pit.on_program = lambda: self._arm(0)
        cpu.on_timer = self._on_timer
        for hart, lapic in zip(m.harts, self.lapics):
            cpu.add_cpu(hart, lapic)
        self.ioapic = IoApic(IOAPIC_ID, self._deliver)
        m.uart = Uart16550(m.console_write, IrqLine(board.region("com1").irq or 4, self._isa_irq))
        pci = build_pci(m, self.ioapic.set_level)
        m.pci, self.pci_root = pci if pci is not None else (None, None)
        for region in board.regions:
            if region.kind == "pci_mmio":  # the BAR window: mapped only with PCI devices
                if m.pci is not None:
                    cpu.map_device(region.base, region.size, m.pci.window, m.mmio_counts, region.name)
                continue
            device = {"lapic": _LapicPage(self), "uart16550": m.uart, "acpi_pm": _AcpiPm(m),
                      "ioapic": self.ioapic, "pci_ports": PciConfigPorts(m.pci), "i8254": self.pit,
                      "port61": Port61(self.pit),
                      "mc146818": Mc146818(lambda: self._now() / TIMEBASE_HZ)}.get(region.kind)
            if device is None:
                continue
            if region.space == "io":
                cpu.map_ports(region.base, region.size, device)
            else:
                cpu.map_device(region.base, region.size, device, m.mmio_counts, region.name)
        self._load(initrd)

    def _load(self, initrd: bytes | None) -> None:
        """The boot tables, ACPI tables and kernel in RAM; the BSP to enter it (a bzImage
        with its zero page, an ELF as is)."""
        m = self.m
        kernel = m.kernel
        rboot = kernel.kind == "elf" and zcore_x86.is_rboot_kernel(kernel.entry_vaddr, True)
        if initrd is not None and kernel.kind != "bzimage" and not rboot:
            raise EmuError("--initrd: on x86_64 only a bzImage or an upper-half ELF (zCore) takes one")
        for addr, data in boot.boot_tables():
            m.cpu.write_phys(addr, data)
        self.acpi, tables = acpi.build(len(m.harts), IOAPIC_ID, LAPIC_BASE, IOAPIC_BASE, pci=self.pci_root)
        m.cpu.write_phys(acpi.ACPI_BASE, tables)
        for addr, data in kernel.segments:
            if addr < boot.BOOT_TABLES_END and addr + len(data) > boot.BOOT_TABLES:
                raise EmuError(f"{kernel.path}: a segment at {addr:#x} overlaps the boot tables")
            if not m.cpu.write_phys(addr, data):
                raise EmuError(f"{kernel.path}: a segment at {addr:#x} is outside RAM")
        params, rdi, rsp, pc = 0, 0, None, kernel.entry
        if isinstance(kernel.boot, bzimage.BzImage):
            params = self._linux_boot(kernel.boot, kernel.segments[0][0], initrd)
        elif rboot:
            rdi, rsp = self._rboot_handover(initrd)
            pc = kernel.entry_vaddr  # paging is on with the kernel's own mapping
        bsp = m.harts[0]
        bsp.state = HsmState.START_PENDING
        bsp.start = (pc, rdi, params)
        m.cpu.switch_in(bsp)  # apply the entry registers now, so a debugger sees them
        if rsp is not None:
            m.cpu.wreg(X.UC_X86_REG_RSP, rsp)
            # UEFI's x64 handover state (UEFI 2.x, 2.3.4): zCore never runs fninit/ldmxcsr and
            # its user contexts inherit the CPU's, so musl's math saw single precision and no
            # FP exception flags with the registers left 0.
            m.cpu.wreg(X.UC_X86_REG_FPCW, zcore_x86.UEFI_FPCW)
            m.cpu.wreg(X.UC_X86_REG_MXCSR, zcore_x86.UEFI_MXCSR)
        m.cpu.switch_out(bsp)
        m.cpu.current = None

    def _linux_boot(self, image: "bzimage.BzImage", load_addr: int, initrd: bytes | None) -> int:
        """The command line, initrd and zero page of the 64-bit boot protocol; returns the
        zero page's address."""
        m = self.m
        ram_end = m.board.ram.end
        m.cpu.write_phys(bzimage.CMDLINE, bzimage.command_line(image, m.board.bootargs))
        placed = None
        if initrd is not None:
            kernel_end = load_addr + max(image.init_size, len(image.kernel))
            placed = (bzimage.initrd_place(image, len(initrd), ram_end, kernel_end), len(initrd))
            m.cpu.write_phys(placed[0], initrd)
        e820 = bzimage.e820_map(ram_end, [(acpi.ACPI_BASE, acpi.ACPI_END)])
        m.cpu.write_phys(bzimage.BOOT_PARAMS, bzimage.boot_params(image, m.board.bootargs, placed, e820,
                                                                  self.acpi.rsdp))
        return bzimage.BOOT_PARAMS

    def _rboot_handover(self, initrd: bytes | None) -> tuple[int, int]:
        """zCore's entry state as rboot leaves it (loader/zcore_x86.py): its tables go over
        the boot tables' PML4 (the identity PDPT is shared with the physmap); returns rdi
        (&BootInfo) and rsp."""
        m = self.m
        kernel = m.kernel
        segments = [zcore_x86.Segment(v, p, n, f) for v, p, n, f in kernel.placed]
        handover = zcore_x86.handover(segments, kernel.end, m.board.ram.end, boot.PML4, boot.PDPT,
                                      (acpi.ACPI_BASE, acpi.ACPI_END), self.acpi.rsdp, m.board.bootargs, initrd)
        for addr, data in handover.blobs:
            if not m.cpu.write_phys(addr, data):
                raise EmuError(f"zCore loader: {len(data)} bytes at {addr:#x} are outside RAM")
        return handover.rdi, handover.rsp

    # -- LapicHost ------------------------------------------------------------------------
    def apic_now(self, cpu: int) -> int:
        return self.m.scheduler.now(self.m.harts[cpu])

    def apic_arm(self, cpu: int, deadline: int) -> None:
        self.lapic_deadlines[cpu] = deadline
        self._arm(cpu)

    def _now(self) -> int:
        m = self.m
        return m.scheduler.now(m.cpu.current or m.harts[0])

    def _arm(self, cpu: int) -> None:
        """A CPU's one scheduler deadline: its APIC timer's, and on CPU 0 also the PIT's
        next IRQ 0 (the board's timer events ride on the boot CPU's deadline)."""
        m = self.m
        hart = m.harts[cpu]
        deadline = self.lapic_deadlines[cpu]
        if cpu == 0:
            self.pit_deadline = self.pit.next_irq()
            deadline = min(deadline, self.pit_deadline)
        if deadline == NO_DEADLINE:
            hart.deadline = NO_DEADLINE
            hart.stip = False
        elif hart is m.cpu.current:
            m.scheduler.set_timer(hart, deadline)  # cuts the running slice at the deadline
        else:
            hart.deadline = deadline
            hart.stip = False

    def _on_timer(self, hart: Hart, now: int) -> None:
        """`hart`'s deadline passed: its APIC timer, and on CPU 0 the PIT's IRQ 0."""
        self.lapics[hart.id].timer_expired(now)
        if hart.id == 0 and self.pit_deadline <= now:
            self._isa_irq(0, True)  # an edge on GSI 2
            self._isa_irq(0, False)
        self._arm(hart.id)

    def apic_eoi(self, cpu: int, vector: int) -> None:
        self.ioapic.eoi(vector)

    def _targets(self, source: int, dest: int, shorthand: int, logical: bool) -> list[int]:
        """The CPUs an interrupt message reaches (xAPIC physical or flat logical)."""
        if shorthand == SHORTHAND_SELF:
            return [source]
        if shorthand == SHORTHAND_ALL:
            return list(range(len(self.lapics)))
        if shorthand == SHORTHAND_OTHERS:
            return [i for i in range(len(self.lapics)) if i != source]
        if logical:
            return [i for i, lapic in enumerate(self.lapics) if lapic.matches_logical(dest)]
        return [i for i, lapic in enumerate(self.lapics) if dest in (lapic.apic_id, 0xFF)]

    def _deliver(self, dest: int, vector: int, logical: bool) -> None:
        """An I/O APIC message: the vector to its destination CPUs' local APICs."""
        m = self.m
        for i in self._targets(-1, dest, 0, logical):
            self.lapics[i].request(vector)
            self._interrupt(m.cpu.current, m.harts[i])

    def apic_ipi(self, source: int, dest: int, shorthand: int, mode: int, vector: int, logical: bool) -> None:
        m = self.m
        sender = m.harts[source]
        for i in self._targets(source, dest, shorthand, logical):
            target = m.harts[i]
            m.events.append(("ipi", source, m.clock.last_read, i))
            if mode == DELIVERY_FIXED:
                self.lapics[i].request(vector)
                self._interrupt(sender, target)
            elif mode == DELIVERY_INIT and i != source:
                m.cpu.init(target)
                target.state = HsmState.STOPPED
                target.parked = False
            elif mode == DELIVERY_SIPI and target.state == HsmState.STOPPED and m.cpu.sipi(target, vector):
                target.state = HsmState.START_PENDING
                target.round_bytes = max(target.round_bytes, m.scheduler.local_bytes(sender) - m.clock.round_start)

    def _interrupt(self, sender: Hart | None, target: Hart) -> None:
        """The target's local APIC has a new request: offer it now if it runs, else at its
        next switch-in (waking it if it halted: at the sender's time, or between rounds)."""
        m = self.m
        if target is m.cpu.current:
            m.cpu.sync_lapic(target)
            return
        target.ssip_pending = True
        if sender is not None:
            m.scheduler.wake_by_ipi(sender, target)

    def _isa_irq(self, line: int, level: bool) -> None:
        """ISA interrupts reach the I/O APIC's input of the same number (IRQ 0 is GSI 2,
        as the MADT's override says)."""
        self.ioapic.set_level(2 if line == 0 else line, level)


class _LapicPage:
    """The local APIC's MMIO page: the running CPU's APIC answers."""

    def __init__(self, pc: PcPlatform) -> None:
        self.pc = pc

    def read(self, offset: int, size: int) -> int:
        cpu = self.pc.m.cpu
        hart = cpu.current
        assert hart is not None
        cpu.sync_lapic(hart)  # what the CPU took since: ISR/IRR/PPR must show it
        return self.pc.lapics[hart.id].read(offset, size)

    def write(self, offset: int, size: int, value: int) -> None:
        cpu = self.pc.m.cpu
        hart = cpu.current
        assert hart is not None
        cpu.sync_lapic(hart)
        self.pc.lapics[hart.id].write(offset, size, value)
        cpu.sync_lapic(hart)  # EOI, TPR: the next vector may be deliverable now


class _AcpiPm:
    """The ACPI PM block at port 0x600 (QEMU q35's): PM1a_CNT reads SCI_EN (ACPI mode, no
    SMI hand-over), a sleep-enable write to it powers off; the PM timer at 0x608 counts
    at 3.579545 MHz on the virtual clock (32 bits)."""

    def __init__(self, m: "Machine") -> None:
        self.m = m

    def read(self, offset: int, size: int) -> int:
        if offset == PM1A_CNT:
            return 1  # SCI_EN
        if offset == PM_TMR:
            cpu = self.m.cpu.current or self.m.harts[0]
            return (self.m.scheduler.now(cpu) * PM_TIMER_HZ // TIMEBASE_HZ) & 0xFFFF_FFFF
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == PM1A_CNT and value & PM1_SLP_EN:
            self.m.request_exit(0, "ACPI power-off")
