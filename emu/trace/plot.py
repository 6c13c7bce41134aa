"""`emu trace plot`: one histogram per stage interval (matplotlib, optional dependency)."""
from __future__ import annotations

from typing import Any

from emu.errors import EmuError
from emu.trace.analysis import analyse


def plot(emu: dict[str, Any], output: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EmuError("emu trace plot needs matplotlib (pip install matplotlib)") from None
    a = analyse(tuple(e) for e in emu["events"])  # type: ignore[misc]
    intervals: dict[str, list[float]] = {}
    for s in a.spans:
        if s.end is None:
            continue
        for name, t0, t1, _h0, _h1 in s.intervals():
            intervals.setdefault(name, []).append((t1 - t0) / 1000)
    if not intervals:
        raise EmuError("the trace has no complete system calls to plot")
    fig, axes = plt.subplots(len(intervals), 1, figsize=(8, 2.2 * len(intervals)), squeeze=False)
    for ax, (name, values) in zip(axes[:, 0], intervals.items()):
        ax.hist(values, bins=40)
        ax.set_title(f"{name} (n={len(values)})", fontsize=9)
        ax.set_xlabel("virtual µs", fontsize=8)
    fig.tight_layout()
    fig.savefig(output, dpi=100)
