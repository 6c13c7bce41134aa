"""Chrome/Perfetto trace JSON: one process for the machine, one track per hart.

Slices: each system call on the hart that made it, and each interval between two stage
points on the same hart; instants for traps, SBI calls, IPIs, interrupts and hart state
changes; flows (`bind_id` / `flow_out` / `flow_in`) for every cross-hart step, e.g.
submit on hart 0 -> pickup on hart 1 and wake on hart 1 -> resume on hart 0.
"""
from __future__ import annotations

from typing import Any, Iterable

from emu.trace.analysis import Analysis, Event, event_label
from emu.trace.names import syscall_name

PID = 1


def _us(ns: int) -> float:
    return round(ns / 1000, 3)


def chrome_events(events: Iterable[Event], analysis: Analysis, harts: int,
                  names: dict[int, str] | None = None) -> list[dict[str, Any]]:
    """The Perfetto events; `names`: the trace's system call names (`names.syscall_table`)."""
    out: list[dict[str, Any]] = [{"ph": "M", "pid": PID, "tid": 0, "name": "process_name", "args": {"name": "emu"}}]
    executing = {h for s in analysis.spans for _, _, h in s.stages if h != s.hart}
    for h in range(harts):
        name = f"hart{h} (S)" if h in executing else f"hart{h}"
        out.append({"ph": "M", "pid": PID, "tid": h, "name": "thread_name", "args": {"name": name}})
        out.append({"ph": "M", "pid": PID, "tid": h, "name": "thread_sort_index", "args": {"sort_index": h}})
    for t, hart, kind, f in events:
        if kind in ("syscall", "sysret", "stage"):
            continue
        args = {k: (hex(v) if isinstance(v, int) and k in ("epc", "tval", "pc", "eid") else v) for k, v in f.items()}
        if kind == "ipi":
            name = f"IPI -> hart{f.get('to')}"
        elif kind == "hart" and f.get("why"):
            name = f"{event_label(kind, f, analysis.abi)} ({', '.join(f['why'])})"
        else:
            name = event_label(kind, f, analysis.abi)
        out.append({"ph": "i", "s": "t", "pid": PID, "tid": hart, "ts": _us(t), "name": name, "cat": kind,
                    "args": args})
    flow = 0
    for span in analysis.spans:
        if span.end is not None:
            out.append({"ph": "X", "pid": PID, "tid": span.hart, "ts": _us(span.start),
                        "dur": _us(span.end - span.start), "name": syscall_name(span.num, names), "cat": "syscall",
                        "args": {"num": span.num, "ret": span.ret, "thread": span.thread}})
        pending_flow: int | None = None
        for name, t0, t1, h0, h1 in span.intervals():
            if h0 != h1:  # a hand-off between harts: an arrow, not a slice
                flow += 1
                pending_flow = flow
                # the slice that ends at the hand-off's start carries flow_out
                for ev in reversed(out):
                    if ev.get("ph") == "X" and ev["tid"] == h0 and ev.get("cat") == "stage" and \
                            abs(ev["ts"] + ev["dur"] - _us(t0)) < 1e-9:
                        ev["bind_id"] = flow
                        ev["flow_out"] = True
                        break
                else:
                    out.append({"ph": "X", "pid": PID, "tid": h0, "ts": _us(t0), "dur": 0, "name": name,
                                "cat": "stage", "bind_id": flow, "flow_out": True, "args": {"num": span.num}})
                continue
            ev = {"ph": "X", "pid": PID, "tid": h0, "ts": _us(t0), "dur": _us(t1 - t0), "name": name,
                  "cat": "stage", "args": {"num": span.num}}
            if pending_flow is not None:
                ev["bind_id"] = pending_flow
                ev["flow_in"] = True
                pending_flow = None
            out.append(ev)
        if pending_flow is not None and span.end is not None:
            out.append({"ph": "X", "pid": PID, "tid": span.hart, "ts": _us(span.end), "dur": 0, "name": "return",
                        "cat": "stage", "bind_id": pending_flow, "flow_in": True, "args": {"num": span.num}})
    return out
