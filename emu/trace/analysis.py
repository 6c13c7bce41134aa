"""From raw events to system-call spans with their stages (shared by report and Perfetto).

A span starts at a U-mode ecall on a hart and ends at the next return to U-mode of the
same thread (satp + tp).  Stage events (from the profile) with the same correlation key
form one instance of the protocol; an instance is attached to the span whose ecall is
the latest unattached one on the hart where the instance's first stage ran.  Events are
taken in emission order, which follows causality between harts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

Event = tuple[int, int, str, dict[str, Any]]


@dataclass
class Span:
    num: int
    thread: str
    hart: int
    start: int
    end: int | None = None
    ret: int | None = None
    stages: list[tuple[str, int, int]] = field(default_factory=list)  # (stage, t_ns, hart)

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
class Analysis:
    spans: list[Span]
    parks: dict[int, list[tuple[int, int]]]  # hart -> [(park_ns, unpark_ns)]
    counts: dict[int, dict[str, int]]  # hart -> kind -> count


def analyse(events: Iterable[Event]) -> Analysis:
    spans: list[Span] = []
    pending: dict[int, Span] = {}  # hart -> latest ecall span without stages
    open_by_thread: dict[str, Span] = {}
    instances: dict[Any, Span] = {}
    parks: dict[int, list[tuple[int, int]]] = {}
    parked_at: dict[int, int] = {}
    counts: dict[int, dict[str, int]] = {}
    for t, hart, kind, f in events:
        c = counts.setdefault(hart, {})
        label = kind
        if kind == "trap":
            label = f"trap cause {f['cause']}"
        elif kind == "irq":
            label = f"irq cause {f['cause']}"
        elif kind == "sbi":
            label = f"sbi {f['eid']:#x}"
        c[label] = c.get(label, 0) + 1
        if kind == "syscall":
            span = Span(f["num"], f["thread"], hart, t)
            spans.append(span)
            pending[hart] = span
            open_by_thread[f["thread"]] = span
        elif kind == "sysret":
            span = open_by_thread.pop(f["thread"], None)
            if span is not None and span.end is None:
                span.end, span.ret = t, f["ret"]
        elif kind == "stage":
            key = f.get("key")
            span = instances.get(key)
            if span is None or any(s == f["stage"] for s, _, _ in span.stages) or span.end is not None:
                span = pending.pop(hart, None)
                if span is None:
                    instances.pop(key, None)
                    continue
                instances[key] = span
            span.stages.append((f["stage"], t, hart))
        elif kind == "hart":
            if f["state"] == "park":
                parked_at[hart] = t
            elif f["state"] == "unpark" and hart in parked_at:
                parks.setdefault(hart, []).append((parked_at.pop(hart), t))
    return Analysis(spans, parks, counts)


def idle_within(parks: list[tuple[int, int]], t0: int, t1: int) -> int:
    """ns a hart spent parked (WFI) inside [t0, t1]."""
    return sum(max(0, min(b, t1) - max(a, t0)) for a, b in parks)
