"""`emu trace plot`: what the trace says, as one PNG (matplotlib, optional dependency).

Panels: system calls per virtual millisecond over time, one line per thread; one stacked
bar per system call (by name) splitting its mean latency into the profile's stages; and
the latency distribution of each stage interval on a log axis.  A log axis with ticks at
1-2-5 steps in ns/us/ms keeps a tight cluster of samples readable (a linear histogram of
246 samples all near 1.273 us had ticks 1.2730 ... 1.2740 us).
"""
from __future__ import annotations

import math
from typing import Any

from emu.errors import EmuError
from emu.trace.analysis import analyse
from emu.trace.report import syscall_names
from emu.trace.names import DEFAULT_ABI, syscall_name

MAX_THREADS = 8  # lines in the rate panel (the busiest threads)
MAX_BINS = 200  # time bins in the rate panel


def human_ns(ns: float) -> str:
    """`500 ns`, `1.2 us`, `20 ms`: tick labels people read."""
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:g} {unit}"
    return f"{ns:g} ns"


def log_range(values: list[int]) -> tuple[float, float]:
    """At least a factor of 4 around the samples, so a log axis shows several labelled ticks."""
    lo = max(1.0, min(values) / 2)
    hi = max(lo * 4, max(values) * 2)
    return lo, hi


def plot(emu: dict[str, Any], output: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        raise EmuError("emu trace plot needs matplotlib (pip install matplotlib)") from None
    import numpy as np

    abi = str(emu.get("syscall_abi") or DEFAULT_ABI)
    a = analyse((tuple(e) for e in emu["events"]), abi)  # type: ignore[misc]
    names = syscall_names(emu)
    done = [s for s in a.spans if s.end is not None]
    if not done:
        raise EmuError("the trace has no complete system calls to plot")
    intervals: dict[str, list[int]] = {}
    stage_share: dict[str, dict[str, list[int]]] = {}
    for s in done:
        per = stage_share.setdefault(syscall_name(s.num, names), {})
        for name, t0, t1, _h0, _h1 in s.intervals():
            intervals.setdefault(name, []).append(t1 - t0)
            per.setdefault(name, []).append(t1 - t0)

    fig, axes = plt.subplots(2 + len(intervals), 1, figsize=(10, 3.0 * (2 + len(intervals))), squeeze=False)
    ax_rate, ax_stack = axes[0, 0], axes[1, 0]

    # 1. system calls per virtual ms over time, per thread
    t_min = min(s.start for s in done)
    t_max = max(s.end for s in done)  # type: ignore[type-var]
    width_ms = max(1, math.ceil((t_max - t_min) / 1e6 / MAX_BINS))
    by_thread: dict[str, list[int]] = {}
    pid_of: dict[str, int] = {}
    for s in done:
        by_thread.setdefault(s.thread, []).append(s.start)
        if s.pid is not None:
            pid_of[s.thread] = s.pid
    edges = np.arange(t_min / 1e6, t_max / 1e6 + width_ms, width_ms)
    if len(edges) < 2:
        edges = np.array([t_min / 1e6, t_min / 1e6 + width_ms])
    for thread, starts in sorted(by_thread.items(), key=lambda kv: -len(kv[1]))[:MAX_THREADS]:
        counts, _ = np.histogram(np.array(starts) / 1e6, bins=edges)
        label = f"pid {pid_of[thread]}" if thread in pid_of else thread
        ax_rate.step(edges[:-1], counts / width_ms, where="post", label=f"{label} ({len(starts)} calls)")
    ax_rate.set_title("system calls per virtual ms, per thread", fontsize=9)
    ax_rate.set_xlabel("virtual time (ms)", fontsize=8)
    ax_rate.set_ylabel("calls / ms", fontsize=8)
    ax_rate.legend(fontsize=7)

    # 2. one stacked bar per system call: each stage's share of its mean latency
    calls = sorted(stage_share, key=lambda n: -sum(len(v) for v in stage_share[n].values()))
    stages = list(dict.fromkeys(k for n in calls for k in stage_share[n]))
    bottom = np.zeros(len(calls))
    for stage in stages:
        means = []
        for n in calls:
            total = sum(sum(v) for v in stage_share[n].values())
            vals = stage_share[n].get(stage, [])
            means.append(100 * sum(vals) / total if total else 0.0)
        ax_stack.bar(calls, means, bottom=bottom, label=stage)
        bottom += np.array(means)
    ax_stack.set_title("share of each stage in a system call's latency", fontsize=9)
    ax_stack.set_ylabel("% of latency", fontsize=8)
    ax_stack.tick_params(axis="x", labelsize=7, rotation=20)
    ax_stack.legend(fontsize=7, ncol=4)

    # 3. latency distributions, log axis, readable ticks
    fmt = FuncFormatter(lambda v, _pos: human_ns(v))
    for ax, (name, values) in zip(axes[2:, 0], intervals.items()):
        positive = [v for v in values if v > 0] or [1]
        lo, hi = log_range(positive)
        ax.hist(positive, bins=np.geomspace(lo, hi, 50))
        ax.set_xscale("log")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(fmt)
        ax.xaxis.set_minor_formatter(NullFormatter())
        skipped = len(values) - len([v for v in values if v > 0])
        ax.set_title(f"{name} (n={len(values)}{f', {skipped} at or below 0 not shown' if skipped else ''})",
                     fontsize=9)
        ax.set_xlabel("virtual time (log)", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
    plt.close(fig)
