"""`emu trace report`: latency per stage and per system call, hand-offs, exits per hart."""
from __future__ import annotations

from typing import Any

from emu.trace.analysis import Analysis, analyse, idle_within


def _pct(values: list[int], q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0, "mean": 0, "p50": 0, "p99": 0, "max": 0}
    return {"count": len(values), "mean": sum(values) / len(values), "p50": _pct(values, 0.5),
            "p99": _pct(values, 0.99), "max": max(values)}


def summarise(emu: dict[str, Any]) -> dict[str, Any]:
    """Everything the report prints, as data (also what --compare lines up)."""
    a: Analysis = analyse(tuple(e) for e in emu["events"])  # type: ignore[misc]
    done = [s for s in a.spans if s.end is not None]
    by_num: dict[int, list[int]] = {}
    for s in done:
        by_num.setdefault(s.num, []).append(s.end - s.start)  # type: ignore[operator]
    intervals: dict[str, list[int]] = {}
    total = 0
    for s in done:
        total += s.end - s.start  # type: ignore[operator]
        for name, t0, t1, _h0, _h1 in s.intervals():
            intervals.setdefault(name, []).append(t1 - t0)
    handoffs: dict[str, dict[str, Any]] = {}
    profile = emu.get("profile") or {}
    for src, dst in profile.get("handoffs", []):
        times, idle = [], []
        for s in done:
            pts = {name: (t, h) for name, t, h in s.stages}
            if src in pts and dst in pts:
                (t0, _h0), (t1, h1) = pts[src], pts[dst]
                times.append(t1 - t0)
                idle.append(idle_within(a.parks.get(h1, []), t0, t1))
        handoffs[f"{src}->{dst}"] = {"latency": stats(times), "receiver_idle_wfi": stats(idle)}
    return {
        "spans": len(done),
        "per_syscall": {str(n): stats(v) for n, v in sorted(by_num.items())},
        "per_interval": {k: {**stats(v), "share": (sum(v) / total if total else 0.0)} for k, v in intervals.items()},
        "handoffs": handoffs,
        "per_hart": {str(h): dict(sorted(c.items())) for h, c in sorted(a.counts.items())},
        "mmio": {k: v for k, v in emu.get("stats", {}).get("mmio", {}).items() if v},
    }


def _row(name: str, st: dict[str, float], extra: str = "") -> str:
    return (f"  {name:<24} {st['count']:>7} {st['mean']:>12.0f} {st['p50']:>10.0f} {st['p99']:>10.0f} "
            f"{st['max']:>10.0f}{extra}")


HEADER = f"  {'':<24} {'count':>7} {'mean ns':>12} {'p50':>10} {'p99':>10} {'max':>10}"


def format_report(s: dict[str, Any], title: str = "") -> str:
    lines = [f"emu trace report{(' - ' + title) if title else ''}: {s['spans']} system calls"]
    lines += ["", "per system call number (span: U-mode ecall -> return to U-mode):", HEADER]
    lines += [_row(f"syscall {n}", st) for n, st in s["per_syscall"].items()]
    lines += ["", "per stage interval (virtual ns; share of all end-to-end latency):", HEADER]
    lines += [_row(k, st, f"  {100 * st['share']:5.1f}%") for k, st in s["per_interval"].items()]
    if s["handoffs"]:
        lines += ["", "cross-hart hand-offs (and how long the receiving hart sat in WFI inside them):", HEADER]
        for k, h in s["handoffs"].items():
            lines.append(_row(k, h["latency"]))
            lines.append(_row("  receiver idle (WFI)", h["receiver_idle_wfi"]))
        if any(h["latency"]["count"] and h["latency"]["p50"] < 0 or h["latency"]["mean"] < 0
               for h in s["handoffs"].values()):
            lines.append("  note: negative hand-offs mean the receiving hart saw a shared-memory write made later in")
            lines.append("  virtual time in the same scheduling round (polling, no IPI); use a smaller --quantum.")
    lines += ["", "exits per hart (SBI calls, traps, interrupts, IPIs):"]
    for h, c in s["per_hart"].items():
        lines.append(f"  hart {h}: " + ", ".join(f"{k} {v}" for k, v in c.items() if k not in ("stage", "syscall", "sysret")))
    if s["mmio"]:
        lines.append("  MMIO accesses (all harts): " + ", ".join(f"{k} {v}" for k, v in s["mmio"].items()))
    return "\n".join(lines)


def format_compare(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> str:
    lines = [f"emu trace compare: {name_a} ({a['spans']} calls) vs {name_b} ({b['spans']} calls)", "",
             f"  {'mean ns':<28} {name_a[-20:]:>20} {name_b[-20:]:>20} {'ratio':>8}"]

    def row(label: str, x: dict | None, y: dict | None) -> str:
        mx = x["mean"] if x else None
        my = y["mean"] if y else None
        ratio = f"{my / mx:8.2f}" if mx and my else f"{'-':>8}"
        fx = f"{mx:20.0f}" if mx is not None else f"{'-':>20}"
        fy = f"{my:20.0f}" if my is not None else f"{'-':>20}"
        return f"  {label:<28} {fx} {fy} {ratio}"

    for n in sorted(set(a["per_syscall"]) | set(b["per_syscall"]), key=int):
        lines.append(row(f"syscall {n}", a["per_syscall"].get(n), b["per_syscall"].get(n)))
    for k in list(dict.fromkeys([*a["per_interval"], *b["per_interval"]])):
        lines.append(row(k, a["per_interval"].get(k), b["per_interval"].get(k)))
    return "\n".join(lines)
