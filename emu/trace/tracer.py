"""The trace sources: hooks only where they matter, feeding an EventLog.

No per-instruction hooks: events come from what already reaches Python (traps the
adapter delivers, SBI calls, IPIs, hart state changes) plus code hooks on chosen
addresses only: the kernel's trap vector (to see interrupts QEMU delivers natively), its
`sret` sites (return to U-mode and the return value), and the profile's stage points.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unicorn.riscv_const import UC_RISCV_REG_SATP, UC_RISCV_REG_SCAUSE, UC_RISCV_REG_SSTATUS, UC_RISCV_REG_STVEC

from emu.cpu.riscv import csr
from emu.smp.scheduler import pending_lines
from emu.trace.events import EventLog
from emu.trace.profile import Expr, Point, Profile, resolve

if TYPE_CHECKING:
    from emu.machine import Machine
    from emu.smp.hart import Hart

INSN_SRET = 0x10200073
NS_PER_TICK = 100


def sret_sites(exec_segments: list[tuple[int, bytes]]) -> list[int]:
    """Addresses of every `sret` in the kernel's executable segments (2-byte aligned)."""
    sites = []
    needle = INSN_SRET.to_bytes(4, "little")
    for vaddr, data in exec_segments:
        start = 0
        while (i := data.find(needle, start)) >= 0:
            if i % 2 == 0:
                sites.append(vaddr + i)
            start = i + 1
    return sites


class Tracer:
    def __init__(self, machine: "Machine", log: EventLog, profile: Profile | None) -> None:
        self.m = machine
        self.cpu = machine.cpu
        self.log = log
        self.profile = profile
        self.points: list[Point] = []
        self._stvec_hooked: set[int] = set()
        self.listener: Any = None  # the GDB stub's break-on check
        kernel = machine.kernel
        if log.wants("syscall"):
            for addr in sret_sites(kernel.exec_segments):
                self.cpu.add_code_hook(addr, self._on_sret)
        if profile is not None and log.wants("stage"):
            self.points = resolve(profile, kernel.symbols, kernel.path if kernel.kind == "elf" else None)
            for point in self.points:
                for addr in point.addresses:
                    if point.watch:
                        self.cpu.add_mem_watch(addr, point.size, 2, self._watch_cb(point))
                    else:
                        self.cpu.add_code_hook(addr, self._stage_cb(point))

    # -- time ------------------------------------------------------------------------------
    def ns(self, hart: "Hart") -> int:
        """Virtual ns of `hart` now, read without touching the guest-visible clock (code bytes
        at the clock's rate: --mips sets the bytes per 100 ns tick)."""
        sched = self.m.scheduler
        return sched.local_bytes(hart) * NS_PER_TICK // sched.clock.bytes_per_tick

    def emit(self, hart: "Hart", kind: str, fields: dict[str, Any]) -> None:
        self.log.emit(self.ns(hart), hart.id, kind, fields)
        if self.listener is not None:
            self.listener(hart, kind, fields)

    def _hart(self) -> "Hart":
        hart = self.cpu.current
        assert hart is not None
        return hart

    # -- sources called by the machine ----------------------------------------------------------
    def on_switch_in(self, hart: "Hart") -> None:
        if not self.log.wants("irq"):
            return
        vec = self.cpu.mcsr_read(UC_RISCV_REG_STVEC) & ~3
        if vec and vec not in self._stvec_hooked:
            self._stvec_hooked.add(vec)
            self.cpu.add_code_hook(vec, self._on_vector)

    def on_trap(self, hart: "Hart", cause: int, epc: int, tval: int, priv: int) -> None:
        if cause == csr.CAUSE_USER_ECALL:
            if self.log.wants("syscall"):
                x = self.cpu.xreg
                self.emit(hart, "syscall", {"num": x(17), "args": [x(10 + i) for i in range(6)],
                                            "thread": self._thread(), "epc": epc})
        elif self.log.wants("trap"):
            self.emit(hart, "trap", {"cause": cause, "epc": epc, "tval": tval, "priv": priv})

    def on_sbi(self, hart: "Hart", eid: int, fid: int) -> None:
        if self.log.wants("sbi"):
            self.emit(hart, "sbi", {"eid": eid, "fid": fid})

    def on_ipi(self, source: "Hart", target: "Hart") -> None:
        if self.log.wants("ipi"):
            self.emit(source, "ipi", {"to": target.id})

    def on_hart(self, hart: "Hart", state: str) -> None:
        if self.log.wants("hart"):
            fields: dict[str, Any] = {"state": state}
            if state == "unpark":  # what ended the WFI: the scheduler has just raised these lines
                fields["why"] = self.wake_reasons(hart)
            self.emit(hart, "hart", fields)

    def wake_reasons(self, hart: "Hart") -> list[str]:
        """The pending interrupt lines (among those the hart waits for) that woke it."""
        cpu = self.cpu
        pending = pending_lines(cpu, hart)
        pending &= hart.wake_mask or pending
        return [name for bit, name in ((cpu.IRQ_SOFT, "ipi"), (cpu.IRQ_TIMER, "timer"),
                                       (cpu.IRQ_EXTERNAL, "device")) if pending & bit]

    # -- code hooks -------------------------------------------------------------------------------
    def _thread(self) -> str:
        return f"{self.cpu.mcsr_read(UC_RISCV_REG_SATP):x}:{self.cpu.xreg(4):x}"

    def _on_sret(self, pc: int) -> None:
        if self.cpu.rreg(UC_RISCV_REG_SSTATUS) & csr.SSTATUS_SPP:
            return  # back to S-mode: not a return to user
        hart = self._hart()
        self.emit(hart, "sysret", {"ret": self.cpu.xreg(10), "thread": self._thread(), "pc": pc})

    def _on_vector(self, pc: int) -> None:
        cause = self.cpu.rreg(UC_RISCV_REG_SCAUSE)
        if cause >> 63:
            self.emit(self._hart(), "irq", {"cause": cause & 0xFF})

    def _read(self, e: Expr) -> int | None:
        value = self.cpu.xreg(e.reg)
        if not e.mem:
            return value
        data = self.cpu.read_virt_current(value + e.offset, e.size)
        return None if data is None else int.from_bytes(data, "little")

    def _stage_cb(self, point: Point):  # noqa: ANN202
        def on_stage(pc: int) -> None:
            fields: dict[str, Any] = {"stage": point.stage, "pc": pc}
            if point.key is not None:
                fields["key"] = self._read(point.key)
            for name, e in point.fields.items():
                fields[name] = self._read(e)
            self.emit(self._hart(), "stage", fields)
        return on_stage

    def _watch_cb(self, point: Point):  # noqa: ANN202
        def on_write(address: int, size: int, value: int) -> None:
            self.emit(self._hart(), "stage", {"stage": point.stage, "key": address, "value": value})
        return on_write
