"""Per process and thread: who makes the system calls, how often, and how long they take.

A thread is what a span is keyed by: the satp (address space, so the process) and the tp
register (the thread) at the ecall.  When the profile records a `pid` field (the
reference guest's submit does) the pid names the thread too.  The rate is calls per
virtual millisecond over the thread's own active window (its first ecall to its last
return), so a short-lived task is not diluted by the whole run.
"""
from __future__ import annotations

from typing import Any

from emu.trace.analysis import Analysis
from emu.trace.names import syscall_name

TOP = 3  # system calls listed per thread
BRIEF_THREADS = 8  # threads in the main report (`--by thread` lists all)


def per_thread(a: Analysis, names: dict[int, str]) -> list[dict[str, Any]]:
    """One row per thread, the busiest first."""
    from emu.trace.report import stats

    rows: dict[str, dict[str, Any]] = {}
    for s in a.spans:
        if s.end is None:
            continue
        r = rows.setdefault(s.thread, {"thread": s.thread, "pid": None, "latencies": [], "first": s.start,
                                       "last": s.end, "calls": {}})
        r["latencies"].append(s.end - s.start)
        r["first"] = min(r["first"], s.start)
        r["last"] = max(r["last"], s.end)
        if s.pid is not None:
            r["pid"] = s.pid
        r["calls"][s.num] = r["calls"].get(s.num, 0) + 1
    out = []
    for r in rows.values():
        window = max(1, r["last"] - r["first"])
        top = sorted(r["calls"].items(), key=lambda kv: (-kv[1], kv[0]))
        out.append({"thread": r["thread"], "pid": r["pid"], "count": len(r["latencies"]),
                    "window_ns": window, "rate_per_ms": len(r["latencies"]) * 1e6 / window,
                    "latency": stats(r["latencies"]),
                    "calls": [{"name": syscall_name(n, names), "num": n, "count": c} for n, c in top]})
    out.sort(key=lambda r: (-r["count"], r["thread"]))
    return out


def thread_label(r: dict[str, Any]) -> str:
    return f"pid {r['pid']} ({r['thread']})" if r.get("pid") is not None else r["thread"]


def format_threads(rows: list[dict[str, Any]], brief: bool = False) -> list[str]:
    shown = rows[:BRIEF_THREADS] if brief else rows
    lines = ["per thread (satp:tp; calls per virtual ms over the thread's active window; latency in ns)"
             + (f", busiest {len(shown)} of {len(rows)}:" if brief and len(rows) > len(shown) else ":"),
             f"  {'thread':<34} {'calls':>7} {'per ms':>8} {'mean ns':>10} {'p50':>9} {'p99':>9}  top calls"]
    for r in shown:
        lat = r["latency"]
        top = ", ".join(f"{c['name']} {c['count']}" for c in r["calls"][:TOP])
        lines.append(f"  {thread_label(r):<34} {r['count']:>7} {r['rate_per_ms']:>8.2f} {lat['mean']:>10.0f} "
                     f"{lat['p50']:>9.0f} {lat['p99']:>9.0f}  {top}")
    return lines
