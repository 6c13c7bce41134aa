"""The local APIC of one x86 CPU (xAPIC, MMIO at 0xFEE0_0000), as a plain model.

QEMU's APIC is not in Unicorn.  This model keeps what software sees (ID, TPR, ISR/IRR,
EOI, LVT, timer, ICR) and decides which vector the CPU may take next; the patched engine
takes that vector when the CPU's interrupt flag allows (QEMU's own interrupt entry through
the IDT), and the adapter tells the model which vector was taken.  The timer counts on the
virtual clock at QEMU's APIC bus rate, 1 GHz (`bus_cycles_per_tick` per clock tick) divided by
the divide configuration, so runs are deterministic and kernels that assume QEMU's rate (zCore
programs 1,000,000 counts for its 1 ms tick) tick as they do there.  IPIs, INIT and SIPI leave through the host (the machine), which
owns the other CPUs.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

APIC_BASE = 0xFEE0_0000
APIC_SIZE = 0x1000
APIC_VERSION = 0x0005_0014  # version 0x14, 6 LVT entries (as QEMU's)

REG_ID, REG_VERSION, REG_TPR, REG_APR, REG_PPR, REG_EOI = 0x20, 0x30, 0x80, 0x90, 0xA0, 0xB0
REG_LDR, REG_DFR, REG_SVR = 0xD0, 0xE0, 0xF0
REG_ISR, REG_TMR, REG_IRR, REG_ESR = 0x100, 0x180, 0x200, 0x280
REG_ICR_LO, REG_ICR_HI = 0x300, 0x310
REG_LVT_TIMER, REG_LVT_LAST = 0x320, 0x370
REG_TIMER_ICR, REG_TIMER_CCR, REG_TIMER_DCR = 0x380, 0x390, 0x3E0

LVT_MASKED = 1 << 16
TIMER_PERIODIC = 1 << 17
DELIVERY_FIXED, DELIVERY_NMI, DELIVERY_INIT, DELIVERY_SIPI = 0, 4, 5, 6
SHORTHAND_SELF, SHORTHAND_ALL, SHORTHAND_OTHERS = 1, 2, 3
NO_DEADLINE = (1 << 64) - 1


class LapicHost(Protocol):
    """What a local APIC asks of the machine."""

    def apic_now(self, cpu: int) -> int: ...

    def apic_arm(self, cpu: int, deadline: int) -> None: ...

    def apic_ipi(self, source: int, dest: int, shorthand: int, mode: int, vector: int, logical: bool) -> None: ...

    def apic_eoi(self, cpu: int, vector: int) -> None: ...


@dataclass
class Lapic:
    """One CPU's local APIC."""

    cpu: int
    host: LapicHost
    apic_id: int = 0
    tpr: int = 0
    ldr: int = 0
    dfr: int = 0xFFFF_FFFF
    svr: int = 0xFF
    irr: int = 0  # 256-bit request register
    isr: int = 0  # 256-bit in-service register
    esr: int = 0
    icr_hi: int = 0
    icr_lo: int = 0
    lvt: list[int] = field(default_factory=lambda: [LVT_MASKED] * 6)  # timer .. error
    timer_initial: int = 0
    timer_start: int = 0  # tick at which the count was (re)loaded
    divide_conf: int = 0
    deadline: int = NO_DEADLINE
    bus_cycles_per_tick: int = 100  # QEMU's 1 GHz APIC bus on emu's 10 MHz clock (the board sets it)

    # -- interrupts -------------------------------------------------------------------
    def request(self, vector: int) -> None:
        """A fixed interrupt arrives (IPI, timer, IOAPIC)."""
        if vector >= 16:
            self.irr |= 1 << vector

    def ppr(self) -> int:
        isrv = self.isr.bit_length() - 1
        return max(self.tpr & 0xF0, (isrv & 0xF0) if isrv >= 0 else 0)

    def deliverable(self) -> int:
        """The vector the CPU would take next, or -1 (the APIC disabled, nothing
        requested, or nothing above the processor priority)."""
        if not self.svr & 0x100 or not self.irr:
            return -1
        v = self.irr.bit_length() - 1
        return v if (v & 0xF0) > self.ppr() else -1

    def accept(self, vector: int) -> None:
        """The CPU took `vector`: request -> in service."""
        self.irr &= ~(1 << vector)
        self.isr |= 1 << vector

    def eoi(self) -> int:
        """End the highest vector in service; return it (-1: none)."""
        if not self.isr:
            return -1
        vector = self.isr.bit_length() - 1
        self.isr &= ~(1 << vector)
        return vector

    # -- timer --------------------------------------------------------------------------
    def _divide(self) -> int:
        code = (self.divide_conf & 3) | ((self.divide_conf >> 1) & 4)
        return 1 if code == 7 else 2 << code

    def _period(self) -> int:
        """The count's length in clock ticks (rounded up: it never fires early)."""
        return max(1, -(-self.timer_initial * self._divide() // self.bus_cycles_per_tick))

    def _arm(self) -> None:
        lvt = self.lvt[0]
        if self.timer_initial == 0:
            self.deadline = NO_DEADLINE
        else:
            self.deadline = self.timer_start + self._period()
        self.host.apic_arm(self.cpu, self.deadline if not lvt & LVT_MASKED else NO_DEADLINE)

    def timer_expired(self, now: int) -> None:
        """The timer's deadline has passed: request its vector, reload if periodic."""
        if self.deadline == NO_DEADLINE or now < self.deadline:
            return
        lvt = self.lvt[0]
        if not lvt & LVT_MASKED:
            self.request(lvt & 0xFF)
        if lvt & TIMER_PERIODIC:
            periods = (now - self.timer_start) // self._period()
            self.timer_start += periods * self._period()
            self._arm()
        else:
            self.deadline = NO_DEADLINE
            self.host.apic_arm(self.cpu, NO_DEADLINE)

    def _current_count(self) -> int:
        if self.timer_initial == 0:
            return 0
        elapsed = (self.host.apic_now(self.cpu) - self.timer_start) * self.bus_cycles_per_tick // self._divide()
        if self.lvt[0] & TIMER_PERIODIC:
            return self.timer_initial - elapsed % self.timer_initial
        return max(0, self.timer_initial - elapsed)

    # -- registers ----------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        reg = offset & 0xFF0
        value = self._read_reg(reg)
        shift = 8 * (offset & 3)
        return (value >> shift) & ((1 << (8 * size)) - 1) if size < 4 else value

    def _read_reg(self, reg: int) -> int:
        if reg == REG_ID:
            return self.apic_id << 24
        if reg == REG_VERSION:
            return APIC_VERSION
        if reg == REG_TPR:
            return self.tpr
        if reg == REG_PPR:
            return self.ppr()
        if reg == REG_LDR:
            return self.ldr
        if reg == REG_DFR:
            return self.dfr
        if reg == REG_SVR:
            return self.svr
        if REG_ISR <= reg < REG_ISR + 0x80:
            return (self.isr >> (32 * ((reg - REG_ISR) >> 4))) & 0xFFFF_FFFF
        if REG_IRR <= reg < REG_IRR + 0x80:
            return (self.irr >> (32 * ((reg - REG_IRR) >> 4))) & 0xFFFF_FFFF
        if reg == REG_ESR:
            return self.esr
        if reg == REG_ICR_LO:
            return self.icr_lo & ~(1 << 12)  # delivery status: always idle
        if reg == REG_ICR_HI:
            return self.icr_hi
        if REG_LVT_TIMER <= reg <= REG_LVT_LAST:
            return self.lvt[(reg - REG_LVT_TIMER) >> 4]
        if reg == REG_TIMER_ICR:
            return self.timer_initial
        if reg == REG_TIMER_CCR:
            return self._current_count()
        if reg == REG_TIMER_DCR:
            return self.divide_conf
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        reg = offset & 0xFF0
        value &= 0xFFFF_FFFF
        if reg == REG_ID:
            self.apic_id = value >> 24
        elif reg == REG_TPR:
            self.tpr = value & 0xFF
        elif reg == REG_EOI:
            vector = self.eoi()
            if vector >= 0:
                self.host.apic_eoi(self.cpu, vector)  # level-triggered I/O APIC inputs
        elif reg == REG_LDR:
            self.ldr = value & 0xFF00_0000
        elif reg == REG_DFR:
            self.dfr = value | 0x0FFF_FFFF
        elif reg == REG_SVR:
            self.svr = value & 0x1FFF
        elif reg == REG_ESR:
            self.esr = 0
        elif reg == REG_ICR_HI:
            self.icr_hi = value
        elif reg == REG_ICR_LO:
            self.icr_lo = value
            self._send_ipi(value)
        elif REG_LVT_TIMER <= reg <= REG_LVT_LAST:
            index = (reg - REG_LVT_TIMER) >> 4
            self.lvt[index] = value
            if index == 0:
                self._arm()
        elif reg == REG_TIMER_ICR:
            self.timer_initial = value
            self.timer_start = self.host.apic_now(self.cpu)
            self._arm()
        elif reg == REG_TIMER_DCR:
            self.divide_conf = value & 0xB

    def _send_ipi(self, icr: int) -> None:
        mode = (icr >> 8) & 7
        shorthand = (icr >> 18) & 3
        logical = bool(icr & (1 << 11))
        if mode == DELIVERY_INIT and (icr >> 14) & 3 == 2:  # INIT level de-assert: no action
            return
        self.host.apic_ipi(self.cpu, self.icr_hi >> 24, shorthand, mode, icr & 0xFF, logical)

    def matches_logical(self, dest: int) -> bool:
        """Flat logical destination (the only model Linux and zCore use in xAPIC mode)."""
        return bool((self.ldr >> 24) & dest)
