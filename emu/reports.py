"""What emu reports when a run ends badly (hang, panic, fault loop, timeout, a signal): each
hart's state and pc with its function, the last events, the system calls still in flight."""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from emu.smp.hart import HsmState

if TYPE_CHECKING:
    from emu.machine import Machine
    from emu.smp.hart import Hart


def report(m: "Machine", what: str) -> None:
    m.console.flush()
    out = m.opts.report or sys.stderr
    lines = [f"emu: {what} at virtual time {m.clock.seconds():.6f} s"]
    for h in m.harts:
        pc = hart_pc(m, h)
        sym = m.kernel.symbols.describe(pc) if pc is not None else None
        where = f"pc {pc:#x}" if pc is not None else "pc ?"
        if sym:
            where += f" <{sym}>"
        state = "parked (wfi)" if h.parked else h.state.name.lower()
        lines.append(f"emu:   hart {h.id}: {state}, {where}")
    if m.events:
        abi = m.cpu.trace.syscall_abi
        lines.append("emu:   last events: " + "; ".join(_fmt_event(e, abi) for e in m.events))
    lines += _in_flight_lines(m)
    out.write("\r\n".join(lines) + "\r\n" if m.console._saved_tty else "\n".join(lines) + "\n")
    out.flush()


def _in_flight_lines(m: "Machine") -> list[str]:
    """Traced system calls still open (hang, timeout, signal): where each one waits."""
    if m.trace_log is None or m.tracer is None or not m.trace_log.wants("syscall"):
        return []
    from emu.trace.report import in_flight_report

    now = max(m.tracer.ns(h) for h in m.harts)
    return in_flight_report(m.trace_log.events(), m.trace_profile, m.kernel.symbols, now, "emu:   ",
                            m.cpu.trace.syscall_abi)


def hart_pc(m: "Machine", hart: "Hart") -> int | None:
    """A hart's pc, running or saved (None for one that never started)."""
    if hart.ctx is None or hart.state == HsmState.STOPPED and hart.start is None:
        return None
    if m.cpu.current is hart:
        return m.cpu.pc()
    return m.cpu.saved_pc(hart)


def _fmt_event(e: tuple, abi: str) -> str:
    kind, hart, t = e[0], e[1], e[2]
    from emu.trace.names import sbi_name, trap_name

    if kind == "trap":
        return f"t={t} h{hart} trap {trap_name(e[3], abi)} ({e[3]}) epc={e[4]:#x} tval={e[5]:#x}"
    if kind == "sbi":
        return f"t={t} h{hart} SBI {sbi_name(e[3])}"
    if kind == "ipi":
        return f"t={t} h{hart} ipi->h{e[3]}"
    return f"t={t} h{hart} {kind} {e[3]:#x}"

