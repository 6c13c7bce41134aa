"""The trace sources: hooks only where they matter, feeding an EventLog.

No per-instruction hooks: events come from what already reaches Python (traps the
adapter delivers, SBI calls, IPIs, hart state changes) plus code hooks on chosen
addresses only: the kernel's trap vectors (to see interrupts QEMU delivers natively), its
return-to-user sites (and the return value), and the profile's stage points.  What those
are on an architecture comes from the CPU adapter's probes (`cpu.trace`, e.g.
emu/cpu/riscv/traceprobe.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emu.errors import EmuError
from emu.smp.scheduler import pending_lines
from emu.trace.events import EventLog
from emu.trace.profile import Expr, Point, Profile, resolve

if TYPE_CHECKING:
    from emu.machine import Machine
    from emu.smp.hart import Hart

NS_PER_TICK = 100


class Tracer:
    def __init__(self, machine: "Machine", log: EventLog, profile: Profile | None) -> None:
        self.m = machine
        self.cpu = machine.cpu
        self.probe = machine.cpu.trace
        self.log = log
        self.profile = profile
        self.points: list[Point] = []
        self._stvec_hooked: set[int] = set()
        self._return_hooked: set[int] = set()
        self.listener: Any = None  # the GDB stub's break-on check
        kernel = machine.kernel
        if log.wants("syscall"):
            self._hook_user_returns(self.probe.user_return_sites(kernel.exec_segments))
        if profile is not None and log.wants("stage"):
            self._check_registers(profile)
            self.points = resolve(profile, kernel.symbols, kernel.path if kernel.kind == "elf" else None)
            for point in self.points:
                for addr in point.addresses:
                    if point.watch:
                        self.cpu.add_mem_watch(addr, point.size, 2, self._watch_cb(point))
                    else:
                        self.cpu.add_code_hook(addr, self._stage_cb(point))

    def _check_registers(self, profile: Profile) -> None:
        """Every register the profile's expressions name is one the CPU adapter can read."""
        for point in profile.points:
            for e in [point.key, *point.fields.values()]:
                for name in e.registers() if e is not None else []:
                    if name not in self.probe.registers:
                        raise EmuError(f"trace profile {profile.name}: unknown {profile.arch} register {name!r} "
                                       f"(in the {point.stage} point)")

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
    def _hook_user_returns(self, sites: list[int]) -> None:
        for addr in sites:
            if addr not in self._return_hooked:
                self._return_hooked.add(addr)
                self.cpu.add_code_hook(addr, self._on_user_return)

    def on_switch_in(self, hart: "Hart") -> None:
        if self.log.wants("syscall"):  # return sites only known once the kernel runs (bzImage)
            self._hook_user_returns(self.probe.late_user_return_sites())
        if not self.log.wants("irq"):
            return
        for vec in self.probe.trap_vectors():
            if vec not in self._stvec_hooked:
                self._stvec_hooked.add(vec)
                self.cpu.add_code_hook(vec, self._on_vector)

    def on_trap(self, hart: "Hart", cause: int, epc: int, tval: int, priv: int) -> None:
        if self.probe.is_syscall(cause):
            if self.log.wants("syscall"):
                num, args = self.probe.syscall()
                self.emit(hart, "syscall", {"num": num, "args": args, "thread": self.probe.thread(), "epc": epc})
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
    def _on_user_return(self, pc: int) -> None:
        if not self.probe.returning_to_user():
            return  # back to the kernel: not a return to user
        hart = self._hart()
        self.emit(hart, "sysret", {"ret": self.probe.return_value(), "thread": self.probe.thread(), "pc": pc})

    def _on_vector(self, pc: int) -> None:
        irq = self.probe.interrupt_at_vector(pc)
        if irq is not None:
            self.emit(self._hart(), "irq", {"cause": irq})

    def _read(self, e: Expr) -> int | None:
        regs = self.probe.registers
        value = self.cpu.xreg(regs[e.reg]) + e.offset
        if e.index is not None:
            value += self.cpu.xreg(regs[e.index])
        value &= (1 << 64) - 1
        if not e.mem:
            return value
        data = self.cpu.read_virt_current(value, e.size)
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
