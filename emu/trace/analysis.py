"""From raw events to system-call spans with their stages (shared by report and Perfetto).

A span starts at a U-mode ecall on a hart and ends at the next return to U-mode of the
same thread (satp + tp).  Stage events (from the profile) with the same correlation key
form one instance of the protocol; an instance is attached to the span whose ecall is
the latest unattached one on the hart where the instance's first stage ran.  A stage that
fires again for a live instance (zCore polls a call that blocked once more after its
wake-up) keeps its first time and is counted in `Span.repeats`.  Events are
taken in emission order, which follows causality between harts.

Besides spans: every WFI wait of every hart with what ended it (an IPI and from which
hart, the hart's timer, a device interrupt; recorded by the tracer at the wake-up), so a
hand-off can say what its receiver waited for; and the requests still open when the
trace ends, for hang reports and killed runs.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any, Iterable

from emu.trace.names import DEFAULT_ABI, HART_STATES, irq_name, sbi_name, trap_name

Event = tuple[int, int, str, dict[str, Any]]
POLLING = "polling (no WFI)"


@dataclass
class Span:
    num: int
    thread: str
    hart: int
    start: int
    end: int | None = None
    ret: int | None = None
    stages: list[tuple[str, int, int]] = field(default_factory=list)  # (stage, t_ns, hart)
    epc: int | None = None  # the ecall's address
    pc: int | None = None  # where the latest stage point fired
    pid: int | None = None  # from a profile field named `pid`, when there is one
    repeats: dict[str, int] = field(default_factory=dict)  # stage -> times it fired again (the first counts)

    @property
    def points(self) -> list[tuple[str, int, int]]:
        """syscall, the stages, return: the span's timeline."""
        pts = [("syscall", self.start, self.hart), *self.stages]
        if self.end is not None:
            pts.append(("return", self.end, self.hart))
        return pts

    def intervals(self) -> list[tuple[str, int, int, int, int]]:
        """(name, t0, t1, hart0, hart1) between consecutive points."""
        pts = self.points
        return [(f"{a[0]}->{b[0]}", a[1], b[1], a[2], b[2]) for a, b in zip(pts, pts[1:])]


@dataclass
class Wait:
    """One WFI wait of a hart: parked at `start`, woken at `end` by `why`."""

    start: int
    end: int
    why: str


@dataclass
class Analysis:
    spans: list[Span]
    parks: dict[int, list[tuple[int, int]]]  # hart -> [(park_ns, unpark_ns)]
    counts: dict[int, dict[str, int]]  # hart -> event label -> count
    waits: dict[int, list[Wait]] = field(default_factory=dict)
    end_ns: int = 0  # the last event's time
    parked_at_end: dict[int, int] = field(default_factory=dict)  # hart -> park_ns, still parked
    abi: str = DEFAULT_ABI  # the trace's `syscall_abi`: which CPU's trap numbers the events hold
    _ends: dict[int, list[int]] = field(default_factory=dict, repr=False)

    def wait_in(self, hart: int, t0: int, t1: int) -> tuple[int, str]:
        """How long `hart` sat in WFI inside [t0, t1] and what ended its last wait there.

        No WFI inside the interval: the hart was running and found the work by polling
        (or was busy with something else first).
        """
        waits = self.waits.get(hart, [])
        ends = self._ends.get(hart)
        if ends is None:
            ends = self._ends[hart] = [w.end for w in waits]
        idle, why = 0, POLLING
        for w in waits[bisect.bisect_left(ends, t0):]:
            if w.start > t1:
                break
            idle += max(0, min(w.end, t1) - max(w.start, t0))
            if w.end <= t1:
                why = w.why
        parked = self.parked_at_end.get(hart)
        if parked is not None and parked <= t1:
            idle += t1 - max(parked, t0)
        return idle, why

    def in_flight(self) -> list[Span]:
        """Requests made and not answered when the trace ends (the report leaves out `exit` and
        the like by name: their numbers are the ABI's)."""
        last: dict[str, Span] = {}
        for s in self.spans:
            last[s.thread] = s
        return [s for s in self.spans if s.end is None and last[s.thread] is s]


def event_label(kind: str, f: dict[str, Any], abi: str = DEFAULT_ABI) -> str:
    """The row an event counts under in `exits per hart`."""
    if kind == "trap":
        return f"trap: {trap_name(f['cause'], abi)}"
    if kind == "irq":
        return f"irq: {irq_name(f['cause'])}"
    if kind == "sbi":
        return f"SBI {sbi_name(f['eid'], f.get('fid'))}"
    if kind == "hart":
        return HART_STATES.get(f.get("state", ""), f"hart {f.get('state')}")
    if kind == "ipi":
        return "IPI sent"
    return kind


def analyse(events: Iterable[Event], abi: str = DEFAULT_ABI) -> Analysis:
    spans: list[Span] = []
    pending: dict[int, Span] = {}  # hart -> latest ecall span without stages
    open_by_thread: dict[str, Span] = {}
    instances: dict[Any, Span] = {}
    parks: dict[int, list[tuple[int, int]]] = {}
    waits: dict[int, list[Wait]] = {}
    parked_at: dict[int, int] = {}
    last_ipi_from: dict[int, int] = {}  # target hart -> sender of the latest IPI
    counts: dict[int, dict[str, int]] = {}
    end = 0
    for t, hart, kind, f in events:
        end = max(end, t)
        c = counts.setdefault(hart, {})
        label = event_label(kind, f, abi)
        c[label] = c.get(label, 0) + 1
        if kind == "syscall":
            span = Span(f["num"], f["thread"], hart, t, epc=f.get("epc"))
            spans.append(span)
            pending[hart] = span
            open_by_thread[f["thread"]] = span
        elif kind == "sysret":
            span = open_by_thread.pop(f["thread"], None) or _renamed(open_by_thread, f["thread"], hart)
            if span is not None and span.end is None:
                span.end, span.ret = t, f["ret"]
        elif kind == "stage":
            key = f.get("key")
            span = instances.get(key)
            if span is None or any(s == f["stage"] for s, _, _ in span.stages) or span.end is not None:
                new = pending.pop(hart, None)
                if new is None:
                    if span is not None and span.end is None:  # a repeat (a call polled again
                        span.repeats[f["stage"]] = span.repeats.get(f["stage"], 0) + 1  # after it blocked)
                    else:
                        instances.pop(key, None)
                    continue
                span = instances[key] = new
            span.stages.append((f["stage"], t, hart))
            if "pc" in f:
                span.pc = f["pc"]
            if isinstance(f.get("pid"), int):
                span.pid = f["pid"]
        elif kind == "ipi":
            last_ipi_from[f.get("to", -1)] = hart
        elif kind == "hart":
            if f["state"] == "park":
                parked_at[hart] = t
            elif f["state"] == "unpark" and hart in parked_at:
                t0 = parked_at.pop(hart)
                parks.setdefault(hart, []).append((t0, t))
                waits.setdefault(hart, []).append(Wait(t0, t, _why(f.get("why"), last_ipi_from.get(hart))))
    return Analysis(spans, parks, counts, waits, end, dict(parked_at), abi=abi)


def _renamed(open_by_thread: dict[str, Span], thread: str, hart: int) -> Span | None:
    """A return with no call open under its thread's name: the call that renamed the thread, if
    one of the same address space is open on this hart (x86_64's arch_prctl(ARCH_SET_FS) sets the
    FS base that names a thread there, as musl does once per thread)."""
    space = thread.split(":")[0]
    for name, span in reversed(open_by_thread.items()):
        if span.hart == hart and name.split(":")[0] == space:
            del open_by_thread[name]
            return span
    return None


def _why(reasons: list[str] | None, ipi_from: int | None) -> str:
    if not reasons:
        return "unknown"
    names = {"ipi": f"IPI from hart {ipi_from}" if ipi_from is not None else "IPI",
             "timer": "its timer", "device": "device interrupt"}
    return " + ".join(names.get(r, r) for r in reasons)


def idle_within(parks: list[tuple[int, int]], t0: int, t1: int) -> int:
    """ns a hart spent parked (WFI) inside [t0, t1]."""
    return sum(max(0, min(b, t1) - max(a, t0)) for a, b in parks)
