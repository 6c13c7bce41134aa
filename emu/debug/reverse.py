"""Reverse execution for the GDB stub: go back by restoring a snapshot and re-executing.

Every resume (continue or stepi) starts a segment and takes a fork snapshot first
(emu/snapshot.py); a continue also takes one every `--snapshot-every` virtual ms.  To go
back to a position (emu/debug/position.py) the nearest earlier snapshot of its segment
is restored with a *plan* and the run re-executes forward; re-execution is exact because
the run is deterministic and the snapshot holds the whole emulator.  Only the last turn
(one hart's share of one round) is executed with a per-instruction hook, to stop at the
exact instruction; everything before runs at full speed.

Plans (a restored process gets one and carries it out, possibly restoring again):
- goto: run to a position and stop there (the reply to the GDB packet comes from there);
- scan: run to `end` noting every breakpoint and watchpoint hit (any hart); then goto
  the last hit before `before`, or scan the previous snapshot's stretch, or goto the
  first snapshot with `replaylog:begin` (reverse-continue);
- rstep: like scan, for one hart's previous instruction: the turns that hart had are
  noted, then its last turn before the target is re-executed instruction by instruction
  (reverse-stepi).
While a plan runs, the user's break- and watchpoints only note hits and console output
and trace events that the host has already been given are not given again.
"""
from __future__ import annotations

import os
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NoReturn

import unicorn

from emu.board import TIMEBASE_HZ
from emu.debug.journal import InputJournal
from emu.debug.plan import OutputGate, Plan, Segment
from emu.debug.position import AFTER_STEP, BETWEEN_ROUNDS, Position
from emu.debug.stub import WATCH_KINDS
from emu.errors import EmuError
from emu.snapshot import ForkSnapshots, SnapshotInfo

if TYPE_CHECKING:
    from emu.debug.stub import GdbStub
    from emu.smp.hart import Hart


class ReverseDebugger:
    """The stub's reverse execution: segments, snapshots, positions and the plans that a
    restored process carries out.  Lives in every process of the run (inherited by fork)."""

    def __init__(self, stub: "GdbStub", every_ms: float, keep: int) -> None:
        self.stub = stub
        self.m = stub.m
        m = self.m
        if m.opts.net is not None and not m.opts.net.startswith("none") and not m.opts.replay:
            raise EmuError("--snapshot-every: reverse debugging needs a run without a host network "
                           "(--net; a --replay of a networked run is fine)")
        self.every_ticks = int(every_ms * TIMEBASE_HZ / 1000)  # 0: only at resumes
        self.snaps = ForkSnapshots(keep, self._prepare_fork, self._host_signal)
        self.gate = OutputGate()
        m.output_gate = self.gate
        self.journal = InputJournal(m) if m.replayer is None else None  # --replay: inputs from the file
        self.seg = 0
        self.segments: list[Segment] = [Segment("continue", -1)]
        self.here = Position(0, m.scheduler.rounds)
        self.plan: Plan | None = None
        self.next_snapshot = 0
        self._hook: int | None = None
        self._armed: tuple[int, int] | None = None  # (round, hart) being executed per instruction
        self._last_insn: Position | None = None
        self._cur: Position | None = None  # the instruction the per-instruction hook saw last
        self._seen = 0  # hit: the plan's watchpoint hits in its block so far
        self._access: Position | None = None  # hit: the accessing instruction, exactly
        self.hits: list[tuple[list[int], str, int]] = []  # scan: (position, stop reason, hart)
        self.turns: list[tuple[int, int]] = []  # rstep: (round, hart) turns seen
        self._pin = False
        self.stepping = False  # a debugger single step runs (outside the rounds)
        self.origin: Position | None = None  # where GDB stopped, before its reverse step-over
        m.cpu.engine.set_exact_stops(True)  # the same translation in every pass
        prev = m.scheduler.after_switch_in

        def after_switch_in(hart: "Hart") -> None:
            if prev is not None:
                prev(hart)
            self._turn(hart)
        m.scheduler.after_switch_in = after_switch_in

    # -- bookkeeping for the process that goes on --------------------------------------
    def _prepare_fork(self) -> None:
        m = self.m
        m.drain_uart()
        m.console.flush()
        if m.trace_log is not None:
            m.trace_log.sync()
        sys.stdout.flush()
        sys.stderr.flush()

    def _host_signal(self) -> int | None:
        got = self.m.signals.received
        self.m.signals.received = None
        return got

    def position(self, hart: "Hart | None", pc: int = 0) -> Position:
        sched = self.m.scheduler
        if hart is None:
            return Position(self.seg, sched.rounds)
        if self.stepping:
            return Position(self.seg, sched.rounds, hart.id, AFTER_STEP, pc)
        return Position(self.seg, sched.rounds, hart.id, sched.local_bytes(hart) - self.m.clock.round_start, pc)

    def note_halt(self, hart: "Hart | None", access: bool = False) -> None:
        """The machine halts here (a hook on `hart`, or between rounds; `access`: right
        after a watched memory access, the pc still on the accessing instruction)."""
        if self.plan is None:
            pos = self.position(hart)
            self.here = Position(pos.seg, pos.round, pos.hart, pos.bytes, 0, int(access))

    def settle(self) -> None:
        """Between rounds after a halt: the stopped hart's pc completes the position."""
        here = self.here
        if here.hart != BETWEEN_ROUNDS and here.pc == 0:
            self.here = Position(here.seg, here.round, here.hart, here.bytes, self._pc(here.hart), here.after)
        self.segments[self.seg].end = self.here.as_list()

    def _pc(self, hart_id: int) -> int:
        cpu = self.m.cpu
        with cpu.inspect(self.m.harts[hart_id]):
            return cpu.pc()

    # -- snapshots ----------------------------------------------------------------------
    def on_resume(self, kind: str, hart: int) -> bool:
        """A resume starts segment seg+1 with a snapshot.  True: this process was restored
        with a plan that has already answered GDB (do not resume)."""
        self.settle()
        self.origin = None
        if self.journal is not None:
            self.journal.on_resume()
        self.seg += 1
        del self.segments[self.seg:]
        self.segments.append(Segment(kind, hart))
        label = "on demand" if self._pin else "resume"
        self._pin = False
        return self._take(label)

    def poll(self) -> None:
        """Between rounds while running: periodic snapshots; plan ends at a round boundary."""
        m = self.m
        plan = self.plan
        if plan is None:
            if self.every_ticks and m.clock.ticks >= self.next_snapshot and not self.stub.halted:
                self._take("periodic")
            return
        end = Position.of(plan.end)
        if plan.op == "rstep-turn":
            if plan.turn is not None and m.scheduler.rounds > plan.turn[0]:
                self.reached()  # the hart's candidate turn is over
        elif end.hart == BETWEEN_ROUNDS and m.scheduler.rounds >= end.round:
            self.reached()
        elif m.scheduler.rounds > end.round:
            self._diverged(f"re-execution passed round {end.round} without reaching {end.text()}")

    def _take(self, label: str) -> bool:
        m = self.m
        self.next_snapshot = m.clock.ticks + self.every_ticks
        key = Position(self.seg, m.scheduler.rounds)
        plan = self.snaps.take(tuple(key.as_list()), m.clock.ticks, label)
        if plan is None:
            return False
        return self._begin(Plan(**plan))

    # -- a restored process ----------------------------------------------------------------
    def _begin(self, plan: Plan) -> bool:
        """Carry out `plan` in this freshly restored process.  True when it is done already."""
        m = self.m
        self.plan = plan
        m.input_held = True
        self.gate.shown = max(self.gate.shown, plan.console_shown)
        if m.trace_log is not None:
            m.trace_log.skip_until = max(m.trace_log.skip_until, plan.trace_written)
        if self.journal is not None:
            self.journal.begin(plan.journal, plan.pending_input)
        if plan.gdb_threads:
            self.stub.g_thread, self.stub.c_thread = plan.gdb_threads
        self.origin = Position.of(plan.origin) if plan.origin else None
        self.stub.set_points(plan.points)
        self.hits.clear()
        self.turns.clear()
        self._last_insn = None
        self._seen, self._access = 0, None
        if Position.of(plan.end) == Position.of(self._snap(plan.snap).key):
            self.reached()  # nothing to execute (a goto ends here; the others restore)
            return True
        return False

    def stepped(self, hart: "Hart") -> None:
        """A debugger single step (segment of its own) is done."""
        self.here = Position(self.seg, self.m.scheduler.rounds, hart.id, AFTER_STEP, self._pc(hart.id))
        self.segments[self.seg].end = self.here.as_list()

    def after_step(self, hart: "Hart") -> None:
        """A stepi segment re-executed under a plan: its end is reached."""
        self.here = Position(self.seg, self.m.scheduler.rounds, hart.id, AFTER_STEP, self._pc(hart.id))
        self.reached()

    def hit(self, hart: "Hart", pc: int, extra: str) -> bool:
        """A user break/watch point fired while a plan runs: note it; never halt."""
        plan = self.plan
        if plan is None:
            return False
        watch = not extra.startswith("swbreak")
        if watch and self._armed is not None and self._armed[1] == hart.id and self._cur is not None:
            pc = self._cur.pc  # exact: the per-instruction hook saw the accessing instruction start
        pos = self.position(hart, pc)
        pos = Position(pos.seg, pos.round, pos.hart, pos.bytes, pos.pc, int(watch))
        if plan.op == "scan":
            self.hits.append((pos.as_list(), extra, hart.id))
        elif plan.op == "hit" and extra == plan.extra:
            end = Position.of(plan.end)
            if (pos.round, pos.hart, pos.bytes) == (end.round, end.hart, end.bytes):
                self._seen += 1  # the pc is not exact in a memory callback: count hits in the block
                if self._seen - 1 == plan.nth:
                    # stop after the accessing instruction (the engine stops at the next
                    # instruction boundary; settle() reads the pc); `_cur`: exact, armed
                    self._access = self._cur
                    self.here = Position(pos.seg, pos.round, pos.hart, pos.bytes, 0, 0)
                    self.stub.halt_for_plan(hart.id)
                    return True
        return False

    def _turn(self, hart: "Hart") -> None:
        """A hart's turn starts: arm the per-instruction hook for the plan's last turn."""
        if self._armed is not None:
            self._disarm()
        plan = self.plan
        if plan is None:
            return
        here = (self.m.scheduler.rounds, hart.id)
        if plan.op == "rstep":
            self.turns.append(here)
        end = Position.of(plan.end)
        if (end.seg, end.round, end.hart) == (self.seg, *here) or (plan.turn is not None and list(here) == plan.turn):
            self._arm(here)

    def _arm(self, turn: tuple[int, int]) -> None:
        cpu = self.m.cpu
        self._armed = turn
        self._hook = cpu.uc.hook_add(unicorn.UC_HOOK_CODE, self._on_insn, begin=1, end=0)
        cpu.uc.ctl_flush_tb()

    def _disarm(self) -> None:
        self._cur = None
        if self._hook is not None:
            self.m.cpu.uc.hook_del(self._hook)
            self.m.cpu.uc.ctl_flush_tb()
        self._hook = None
        self._armed = None

    def _on_insn(self, _uc: object, address: int, _size: int, _ud: object) -> None:
        hart = self.m.cpu.current
        plan = self.plan
        if plan is None or hart is None or self._armed is None or hart.id != self._armed[1]:
            return
        pos = self.position(hart, address)
        self._cur = pos
        end = Position.of(plan.end)
        if plan.op != "hit" and (pos.hart, pos.round) == (end.hart, end.round) and (
                (not end.after and address == end.pc and pos.bytes >= end.bytes)
                or (end.after and (pos.bytes, pos.pc) > (end.bytes, end.pc))):
            self.m.cpu.set_pc(address)
            self.m.cpu.suppress_hooks_at(hart, address)
            self.here = pos
            self.stub.halt_for_plan(hart.id)
            return
        if plan.hart == hart.id:
            self._last_insn = pos

    # -- where a pass ends ---------------------------------------------------------------
    def reached(self) -> None:
        plan = self.plan
        assert plan is not None
        self._disarm()
        end = Position.of(plan.end)
        if plan.op == "hit" and not self.m.cpu.gdb.watch_stops_before and self._access is not None:
            # gdb (x86) expects the stop before the accessing instruction going backwards
            # (it does not step back over it): there, exactly, in one more pass
            snap = self._snap(plan.snap)
            access = self._access
            self._restore(snap, Plan("goto", snap.ident, access.as_list(), plan.reply, plan.extra, plan.thread,
                                     points=plan.points))
        if plan.op in ("goto", "hit"):
            self._finish(end, plan)
            return
        snap = self._snap(plan.snap)
        before = Position.of(plan.before or plan.end)
        in_step = self.segments[snap.key[0]].kind == "step"
        if plan.op == "scan":
            if in_step:  # the stepped instruction's own accesses (a breakpoint there is its end)
                found = [h for h in self.hits if not h[1].startswith("swbreak")]
            else:
                found = [h for h in self.hits if Position.of(h[0]) < before]
            if found:
                pos, extra, hart = found[-1]
                if in_step:  # the step's instruction did it: before the step
                    self._restore(snap, Plan("goto", snap.ident, list(snap.key), plan.reply, extra, hart,
                                             points=plan.points))
                # a watchpoint: its hit, counted in its block (the pc is not exact in a callback)
                op = "hit" if extra.startswith(WATCH_KINDS) else "goto"
                at = max(i for i, h in enumerate(self.hits) if h is found[-1])
                nth = sum(1 for h in self.hits[:at] if h[1] == extra and h[0][1:4] == pos[1:4])
                self._restore(snap, Plan(op, snap.ident, pos, plan.reply, extra, hart, points=plan.points, nth=nth))
            self._earlier(snap, plan)
        last = self._last_insn
        if last is not None and last < before:
            self._restore(snap, Plan("goto", snap.ident, last.as_list(), plan.reply, "", plan.hart,
                                     points=plan.points))
        if plan.op == "rstep":
            turns = [list(t) for t in self.turns
                     if t[1] == plan.hart and (self.seg, *t) < (before.seg, before.round, before.hart)]
        else:
            turns = plan.turns
        if turns:
            self._restore(snap, Plan("rstep-turn", snap.ident, plan.end, plan.reply, "", plan.thread, plan.before,
                                     plan.hart, turns[-1], turns[:-1], plan.points))
        self._earlier(snap, plan)

    def _earlier(self, snap: SnapshotInfo, plan: Plan) -> None:
        """Nothing in this snapshot's stretch: the stretch before it, or the beginning."""
        usable = self.usable()
        older = [s for s in usable if s.ident < snap.ident]
        if not older:
            first = usable[0] if usable else snap
            self._restore(first, Plan("goto", first.ident, list(first.key), plan.reply, "replaylog:begin;",
                                      plan.thread, points=plan.points))
        prev = older[-1]
        end = Position.of(snap.key)
        if prev.key[0] != end.seg:
            seg_end = self.segments[prev.key[0]].end
            if seg_end is None:
                self._diverged("the stretch before this snapshot has no recorded end")
            end = Position.of(seg_end)
        self._restore(prev, Plan(plan.op if plan.op != "rstep-turn" else "rstep", prev.ident, end.as_list(),
                                 plan.reply, "", plan.thread, end.as_list() if plan.op == "scan" else plan.before,
                                 plan.hart, points=plan.points))

    def _finish(self, end: Position, plan: Plan) -> None:
        """The target is reached: this process goes on from here; tell GDB."""
        stub = self.stub
        self._disarm()
        if end.hart == BETWEEN_ROUNDS:
            self.here = end
        self.plan = None
        self.m.input_held = False
        if self.journal is not None:
            self.journal.finish()
        self.snaps.truncate(self._snap(plan.snap))
        self.seg = self.here.seg
        del self.segments[self.seg + 1:]
        self.segments[self.seg].end = self.here.as_list()
        hart = end.hart if end.hart >= 0 else plan.thread
        self.settle()
        stub.stopped_by_plan(hart, plan.extra, plan.reply, self.here)

    def _diverged(self, why: str) -> None:
        out = self.m.opts.report or sys.stderr
        out.write(f"emu: reverse: {why}; stopping here\n")
        out.flush()
        plan = self.plan
        assert plan is not None
        self._disarm()
        self.here = self.position(None)
        self.plan = None
        self.origin = None
        self.m.input_held = False
        if self.journal is not None:
            self.journal.finish()
        self.stub.stopped_by_plan(plan.thread, "", plan.reply, self.here)

    # -- requests from GDB -------------------------------------------------------------------
    def usable(self) -> list[SnapshotInfo]:
        """Live snapshots (console input is journaled: re-execution gives it again)."""
        return [s for s in self.snaps.snaps if self.snaps.alive(s)]

    def _snap(self, ident: int) -> SnapshotInfo:
        return next(s for s in self.snaps.snaps if s.ident == ident)

    def _base_plan(self, op: str, snap: SnapshotInfo, end: Position, reply: str, thread: int, **kw: Any) -> Plan:
        return Plan(op, snap.ident, end.as_list(), reply, thread=thread, points=self.stub.point_list(), **kw)

    def _latest_before(self, pos: Position) -> SnapshotInfo | None:
        """The newest usable snapshot at or before `pos` in its segment (re-execution never
        crosses a segment's end: that was a debugger stop)."""
        cands = [s for s in self.usable() if Position.of(s.key) <= pos]
        return cands[-1] if cands and cands[-1].key[0] == pos.seg else None

    def reverse_continue(self, thread: int, every: bool = False) -> str | None:
        self.settle()
        start = self._gdb_stop(every)
        self.origin = None
        return self._start("scan", start, thread, "stop")

    def reverse_step(self, hart: int, thread: int, every: bool = False, step_over: bool = False) -> str | None:
        """Hart `hart`'s previous instruction: the machine goes to the position just
        before it, every other hart with it (emu/debug/position.py).  `every`: GDB
        resumes every thread; `step_over`: it names the thread that stopped, which is
        how it first steps that thread back over its breakpoint (origin: _gdb_stop)."""
        self.settle()
        start = self._gdb_stop(every)
        self.origin = self.here if step_over else None  # carried to the process that answers
        answer = self._start("rstep", start, thread, "stop", hart=hart)
        self.origin = None  # (a refusal: nothing moved)
        return answer

    def _gdb_stop(self, every: bool) -> Position:
        """Where a request that resumes every thread goes back from: where GDB stopped.
        Before it, GDB may have stepped the thread that stopped at a breakpoint back over
        it; that went back one instruction of that thread, which may lie rounds before
        the selected thread's last one: the request goes back from the origin, not from
        there.  (The origin is forgotten when GDB's command ends: qfThreadInfo.)"""
        origin = self.origin
        if every and origin is not None and origin.seg == self.here.seg and origin > self.here:
            return origin
        return self.here

    def goto(self, text: str, thread: int) -> str | None:
        self.settle()
        target = Position.parse(text)
        self.origin = None
        if target == self.here:
            return f"already at {target.text()}"
        if target.seg > self.here.seg:
            return f"{target.text()} is in a later segment than {self.here.text()}: continue or step to go there"
        snap = self._latest_before(target)
        if snap is None:
            return self._refusal()
        self._restore(snap, self._base_plan("goto", snap, target, "monitor", thread))
        return None

    def _start(self, op: str, here: Position, thread: int, reply: str, hart: int = -1) -> str | None:
        seg = self.segments[here.seg]
        if op == "rstep" and seg.kind == "step" and here.bytes == AFTER_STEP:
            snap = self._latest_before(Position(here.seg, here.round))
            if snap is not None and seg.hart == hart and Position.of(snap.key) == Position(here.seg, here.round):
                self._restore(snap, self._base_plan("goto", snap, Position.of(snap.key), reply, thread))
        snap = self._latest_before(here)
        if snap is None:
            return self._refusal()
        self._restore(snap, self._base_plan(op, snap, here, reply, thread, before=here.as_list(), hart=hart))
        return None

    def _refusal(self) -> str:
        return "E.cannot go back: no snapshot of this segment before here"

    def _restore(self, snap: SnapshotInfo, plan: Plan) -> NoReturn:
        m = self.m
        body = asdict(plan)
        body["console_shown"] = max(self.gate.shown, self.gate.written, body.get("console_shown", 0))
        if m.trace_log is not None:
            m.trace_log.sync()
            body["trace_written"] = max(m.trace_log.count, m.trace_log.skip_until, body.get("trace_written", 0))
        if self.journal is not None:
            body.update(self.journal.plan_fields())
        body["gdb_threads"] = [self.stub.g_thread, self.stub.c_thread]  # GDB will not select them again
        body["origin"] = self.origin.as_list() if self.origin is not None else None
        self.snaps.restore(snap, body)

    def when(self) -> str:
        self.settle()
        return f"position {self.here.text()} ({self.here.describe()})"

    def pin(self) -> str:
        self._pin = True
        return (f"a snapshot of {self.here.text()} will be taken when the machine resumes "
                f"({len(self.usable())} usable now, {self.snaps.memory_kib()} KiB)")

    def info(self) -> str:
        rows = [f"#{s.ident} pid {s.pid} {Position.of(s.key).text()} {s.label} vtime {s.ticks}"
                for s in self.snaps.snaps if self.snaps.alive(s)]
        costs = self.snaps.costs.fork_ms
        mean = sum(costs) / len(costs) if costs else 0.0
        rows.append(f"{len(rows)} snapshots, {self.snaps.memory_kib()} KiB private, fork {mean:.2f} ms mean, "
                    f"pid {os.getpid()}")
        return "\n".join(rows)
