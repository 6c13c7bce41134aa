"""Deterministic round-robin scheduling of harts on one CPU model instance.

Every round gives each runnable hart (in hart-id order) the same budget of code bytes,
starting at the same virtual time.  A round is cut short at the earliest timer deadline
so timer interrupts arrive on time.  A hart that executes WFI with nothing pending is
parked until an IPI, its timer or a device interrupt makes `mip & mie` non-zero; it is
never re-run in a spin.  When every started hart is parked the clock jumps to the next
deadline (idle skip), or the machine waits for input, or reports a hang.
"""
from __future__ import annotations

import ctypes
from typing import Callable, Protocol

from emu.smp.clock import BYTES_PER_INSN, VirtualClock
from emu.smp.hart import NO_DEADLINE, Hart, HsmState


SPIN_SLICE_BYTES = 200 * BYTES_PER_INSN  # what others run before a polling hart looks again
SOLO_ROUND_FACTOR = 8  # a round with one runnable hart is this many quanta long
# A hart whose last turns all ended polling memory with nothing found, this many in a row,
# is waiting (zCore's offload server between requests, a secondary CPU before its start
# flag): it does not keep rounds short.  Rounds stay one quantum while requests flow,
# because the streak restarts whenever the poller takes a trap; the first hand-off after a
# long wait is placed within SOLO_ROUND_FACTOR quanta instead of one.
WAITING_STREAK = 4


class Cpu(Protocol):
    """The arch adapter as the scheduler sees it (arch-neutral: interrupt lines are the
    adapter's own bit masks for "timer", "software/IPI" and "external")."""

    current: Hart | None
    IRQ_TIMER: int
    IRQ_SOFT: int
    IRQ_EXTERNAL: int

    def switch_in(self, hart: Hart) -> None: ...

    def switch_out(self, hart: Hart) -> None: ...

    def run(self, hart: Hart, budget: int) -> str: ...

    def wfi_state(self) -> tuple[int, int]: ...

    def update_mip(self, set_bits: int, clear_bits: int) -> None: ...

    def interrupts_enabled(self) -> bool: ...

    def activity(self) -> int: ...

    def apply_fences(self, hart: Hart) -> None: ...


def pending_lines(cpu: Cpu, hart: Hart) -> int:
    """The interrupt lines pending for a parked hart: what was pending at its WFI plus
    what the machine has raised since (timer, device, IPI), as the adapter's bits."""
    pending = hart.parked_mip
    if hart.stip:
        pending |= cpu.IRQ_TIMER
    if hart.seip:
        pending |= cpu.IRQ_EXTERNAL
    if hart.ssip_pending:
        pending |= cpu.IRQ_SOFT
    return pending


class MachineLoop(Protocol):
    """What the scheduler asks of the machine between rounds."""

    exit_code: int | None

    def poll(self, block: bool) -> None: ...

    def input_possible(self) -> bool: ...

    def report_hang(self) -> None: ...

    def idle_wait(self, ticks: int) -> int: ...

    @property
    def halted(self) -> bool: ...

    paused: bool


class Scheduler:
    def __init__(self, cpu: Cpu, harts: list[Hart], clock: VirtualClock, quantum_bytes: int) -> None:
        self.cpu = cpu
        self.harts = harts
        self.clock = clock
        self.quantum = quantum_bytes
        self.slice_budget = 0  # budget the running slice started with
        self.round_length = quantum_bytes  # bytes in the current round (an IPI may cut it)
        self.rounds = 0
        self.switches = 0
        self.parks = 0
        self.on_hart_state: Callable[[Hart, str], None] | None = None  # tracing: park/unpark
        self.after_switch_in: Callable[[Hart], None] | None = None
        self.executed_bytes = 0  # code bytes run (time skipped by rdtime polling excluded)
        self._turn_activity = 0
        self.spin_skipped_bytes = 0  # round time charged to pollers without running them
        clock.native.budget = ctypes.pointer(cpu.budget)  # type: ignore[attr-defined]
        self._time_polls = {h.id: ctypes.pointer(h.time_poll) for h in harts}  # native rdtime state

    # -- time ------------------------------------------------------------------
    def local_bytes(self, hart: Hart) -> int:
        local = self.clock.round_start + hart.round_bytes
        if hart is self.cpu.current:
            local += self.slice_budget - self.cpu.budget.budget  # type: ignore[attr-defined]
        return local

    def now(self, hart: Hart) -> int:
        """Ticks as `hart` reads them (time CSR, mtime)."""
        return self.clock.read(self.local_bytes(hart))

    def set_timer(self, hart: Hart, deadline: int) -> None:
        hart.deadline = deadline
        now = self.now(hart)
        if deadline <= now:
            hart.stip = True
            self.cpu.update_mip(self.cpu.IRQ_TIMER, 0)
            return
        hart.stip = False
        self.cpu.update_mip(0, self.cpu.IRQ_TIMER)
        # End this slice at the deadline so the interrupt is not late.
        until = deadline * self.clock.bytes_per_tick - self.local_bytes(hart)
        b = self.cpu.budget  # type: ignore[attr-defined]
        if 0 < until < b.budget:
            b.budget = until

    # -- the loop --------------------------------------------------------------
    def _wake_parked(self) -> None:
        now = self.clock.ticks
        for h in self.harts:
            if h.state not in (HsmState.STARTED, HsmState.SUSPENDED):
                continue
            if not h.stip and h.deadline <= now:
                h.stip = True
            if not h.parked:
                continue
            if pending_lines(self.cpu, h) & h.wake_mask:
                h.parked = False
                h.state = HsmState.STARTED
                if self.on_hart_state:
                    self.on_hart_state(h, "unpark")

    def run(self, machine: MachineLoop) -> None:
        while machine.exit_code is None:
            machine.poll(False)
            if machine.exit_code is not None or machine.paused:
                break
            for h in self.harts:
                if h.state == HsmState.START_PENDING:
                    h.state = HsmState.STARTED
            self._wake_parked()
            only = getattr(machine, "run_only", None)
            runnable = [h for h in self.harts if h.state == HsmState.STARTED and not h.parked
                        and (only is None or h.id in only)]
            waiting = [h for h in self.harts if h.state in (HsmState.STARTED, HsmState.SUSPENDED)]
            if not runnable:
                # A hart whose timer already fired (stip) waits for its next set_timer, not
                # for this deadline: skipping "to" it would never move the clock.
                deadline = min((h.deadline for h in waiting if not h.stip), default=NO_DEADLINE)
                if deadline != NO_DEADLINE:
                    # On a terminal, idle time passes in real time (as on QEMU: no host CPU
                    # burnt while a shell waits for a key); otherwise jump to the deadline.
                    self.clock.skip_to(min(deadline, self.clock.ticks + machine.idle_wait(deadline - self.clock.ticks)))
                    continue
                if machine.input_possible():
                    machine.poll(True)
                    continue
                machine.report_hang()
                break
            length = self.quantum
            working = sum(1 for h in runnable if h.spin_streak < WAITING_STREAK)
            if working <= 1 and not any(h.state == HsmState.START_PENDING for h in self.harts):
                # One hart runs alone (the others park or wait in a poll): nothing to
                # interleave with until an IPI (which cuts the round or lets its target
                # join at the sender's time), a timer deadline (which cuts it below) or a
                # device; fewer rounds, less host work.
                length *= SOLO_ROUND_FACTOR
            start = self.clock.round_start
            for h in waiting:
                if h.deadline != NO_DEADLINE and not h.stip:
                    length = min(length, max(self.clock.bytes_per_tick, h.deadline * self.clock.bytes_per_tick - start))
            self.round_length = length
            ran = 0
            for h in self.harts:  # hart-id order; a hart woken mid-round by a later id runs next round
                if h.state != HsmState.STARTED or h.parked or h.round_bytes >= self.round_length:
                    continue
                if only is not None and h.id not in only:
                    continue
                self._run_hart(h)
                ran = max(ran, h.round_bytes)
                if machine.exit_code is not None:
                    return
                if machine.halted:  # a debugger stop: the other harts wait at their boundaries
                    self.round_length = max(self.clock.bytes_per_tick, h.round_bytes)
                    break
            # Time advances to where the last hart stopped: a round whose harts all parked
            # early is not charged its full length.
            self.clock.round_start = start + max(self.clock.bytes_per_tick, min(ran, self.round_length))
            for h in self.harts:
                h.round_bytes = 0
            self.rounds += 1

    def wake_by_ipi(self, source: Hart, target: Hart) -> None:
        """An IPI takes effect at the sender's current virtual time, not at a round boundary.

        A parked target resumes in this round from the sender's offset if its turn is
        still to come; if its turn is over, the round is cut here so that it resumes next
        round without the sender's remaining quantum in between.  A runnable target whose
        turn is still to come starts its turn no earlier than the IPI was sent, so it
        never reacts to an interrupt before the sender raised it.
        """
        offset = self.local_bytes(source) - self.clock.round_start
        if not target.parked:
            if target.id > source.id and target.state == HsmState.STARTED:
                target.round_bytes = max(target.round_bytes, offset)
            return
        if not target.wake_mask & self.cpu.IRQ_SOFT:
            return
        target.parked = False
        target.state = HsmState.STARTED
        target.round_bytes = max(target.round_bytes, offset)
        if target.id < source.id:
            cut = max(target.round_bytes, self.clock.bytes_per_tick)
            if cut < self.round_length:
                self.round_length = cut
                self.cpu.stop("cut")  # type: ignore[attr-defined]
        if self.on_hart_state:
            self.on_hart_state(target, "unpark")

    def _spin_yield(self, hart: Hart) -> None:
        """`hart` polls memory in a loop that cannot change anything (native detection).

        If every other hart has had its turn in this round, nothing can change memory
        before the round ends (devices act between rounds, timer deadlines cut rounds),
        so the loop would spin to the end: charge the rest of the round without running
        it, exactly.  Otherwise cut the round here: the harts still to run catch up to
        this point (at least SPIN_SLICE_BYTES, doubling while the poll finds nothing),
        and the next round starts with this hart polling again.  Either way the spinner
        costs the host next to nothing.
        """
        hart.count("spin_yields")
        if self.cpu.activity() != self._turn_activity:
            hart.spin_streak = 0  # it took traps this turn (e.g. system calls): not a long wait
        hart.spin_streak += 1
        later = [h for h in self.harts if h.id > hart.id and h.state == HsmState.STARTED
                 and not h.parked and h.round_bytes < self.round_length]
        if not later:
            self.spin_skipped_bytes += self.round_length - hart.round_bytes
            hart.round_bytes = self.round_length
            return
        # The harts still to run get at least SPIN_SLICE instructions, doubling while this
        # hart keeps finding nothing (a long wait costs a few rounds, not thousands).
        floor = min(self.quantum, SPIN_SLICE_BYTES << min(hart.spin_streak - 1, 20))
        ahead = max((h.round_bytes for h in self.harts if h.id < hart.id), default=0)
        cut = max(hart.round_bytes, ahead, floor)
        if cut < self.round_length:
            self.round_length = cut

    def _run_hart(self, hart: Hart) -> None:
        cpu = self.cpu
        clock = self.clock
        clock.native.spin = self._time_polls[hart.id]
        self._turn_activity = cpu.activity()
        cpu.switch_in(hart)
        self.switches += 1
        # spin detection forgives counting registers only while another hart can run
        cpu.budget.counters_ok = any(h is not hart and h.state == HsmState.STARTED and not h.parked  # type: ignore[attr-defined]
                                     for h in self.harts)
        if self.after_switch_in:
            self.after_switch_in(hart)
        try:
            while hart.round_bytes < self.round_length:
                budget = self.round_length - hart.round_bytes
                if hart.deadline != NO_DEADLINE and not hart.stip:
                    until = hart.deadline * self.clock.bytes_per_tick - (self.clock.round_start + hart.round_bytes)
                    if 0 < until < budget:
                        budget = until
                self.slice_budget = budget
                clock.native.hart_base = self.clock.round_start + hart.round_bytes
                clock.native.slice_budget = budget
                if hart.flush_tlb or hart.flush_pages:  # a remote sfence.vma that included this hart
                    cpu.apply_fences(hart)
                reason = cpu.run(hart, budget)
                ran = budget - cpu.budget.budget  # type: ignore[attr-defined]
                hart.round_bytes += ran
                hart.ran_bytes += ran
                self.executed_bytes += ran
                self.slice_budget = cpu.budget.budget  # type: ignore[attr-defined]  # nothing in flight
                if not hart.stip and hart.deadline != NO_DEADLINE and self.now(hart) >= hart.deadline:
                    hart.stip = True
                    cpu.update_mip(cpu.IRQ_TIMER, 0)
                if reason in ("budget", "yield"):
                    continue
                if reason == "spin":
                    self._spin_yield(hart)
                    break
                hart.spin_streak = 0
                if reason == "wfi":
                    mip, mie = cpu.wfi_state()
                    if mip & mie:
                        if cpu.interrupts_enabled():
                            continue  # taken as soon as the hart runs again
                        # Pending but masked (e.g. Linux's stopped CPUs: irqs off, wfi in a
                        # loop): WFI cannot sleep, so this hart spins; charge it the rest
                        # of the round instead of re-entering Unicorn per WFI.
                        hart.round_bytes = self.round_length
                        break
                    hart.parked = True
                    hart.parked_mip = mip
                    hart.wake_mask = mie
                    self.parks += 1
                    if self.on_hart_state:
                        self.on_hart_state(hart, "park")
                    break
                if reason == "suspend":
                    _mip, mie = cpu.wfi_state()
                    hart.wake_mask = mie or (self.cpu.IRQ_TIMER | self.cpu.IRQ_SOFT | self.cpu.IRQ_EXTERNAL)
                    hart.parked_mip = 0
                    self.parks += 1
                break  # stop, cut, exit, fault
        finally:
            cpu.switch_out(hart)
            cpu.current = None
