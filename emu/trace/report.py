"""`emu trace report`: latency per stage and per system call, hand-offs, exits per hart.

The summary is data first (`summarise`, also what `--json` prints and `--compare` lines
up), text second (`format_report`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from emu.trace.analysis import Analysis, Span, analyse
from emu.trace.names import DEFAULT_ABI, syscall_name, syscall_table


def _pct(values: list[int], q: float) -> int:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * (len(s) - 1) + 0.5))]


def stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {"count": 0, "mean": 0, "p50": 0, "p99": 0, "max": 0}
    return {"count": len(values), "mean": sum(values) / len(values), "p50": _pct(values, 0.5),
            "p99": _pct(values, 0.99), "max": max(values)}


def syscall_names(emu: dict[str, Any]) -> dict[int, str]:
    """The trace's system call names: its ABI's table (the header's `syscall_abi`; riscv64's in
    traces older than that field) with the profile's own names over it (the reference guest's 500+)."""
    profile = emu.get("profile") or {}
    extra = {int(k): str(v) for k, v in (profile.get("syscalls") or {}).items()}
    return syscall_table(str(emu.get("syscall_abi") or DEFAULT_ABI), extra)


def _handoffs(a: Analysis, done: list[Span], pairs: list[list[str]]) -> dict[str, dict[str, Any]]:
    """Each profile hand-off: its latency, the receiver's WFI time inside it, what ended the wait."""
    out: dict[str, dict[str, Any]] = {}
    for src, dst in pairs:
        times, idle = [], []
        ended: dict[str, list[int]] = {}
        for s in done:
            pts = {name: (t, h) for name, t, h in s.stages}
            if src in pts and dst in pts:
                t0, (t1, h1) = pts[src][0], pts[dst]
                times.append(t1 - t0)
                wfi, why = a.wait_in(h1, t0, t1)
                idle.append(wfi)
                ended.setdefault(why, []).append(wfi)
        out[f"{src}->{dst}"] = {
            "latency": stats(times), "receiver_idle_wfi": stats(idle),
            "wait_ended_by": {k: {"count": len(v), "mean_idle": sum(v) / len(v)}
                              for k, v in sorted(ended.items(), key=lambda kv: -len(kv[1]))},
        }
    return out


def in_flight(a: Analysis, names: dict[int, str]) -> list[dict[str, Any]]:
    """The requests still open at the end of the trace: where each one got to, and for how long."""
    out = []
    for s in a.in_flight():
        if syscall_name(s.num, names).split(" (")[0] in NO_RETURN_NAMES:
            continue
        stage, t, hart = s.points[-1]
        out.append({"num": s.num, "name": syscall_name(s.num, names), "thread": s.thread, "pid": s.pid,
                    "hart": s.hart, "since_ns": s.start, "last_stage": stage, "stage_hart": hart,
                    "pc": s.pc if stage != "syscall" else s.epc, "waited_ns": a.end_ns - t,
                    "age_ns": a.end_ns - s.start})
    return out


def offload(done: list[Span], stages: list[str], names: dict[int, str]) -> dict[str, Any] | None:
    """The calls that went through the profile's stages: how many got every stage, and the
    share of their end-to-end latency (ecall -> return to user) the stages explain, i.e.
    the time from their first stage to their last, overall and per system call."""
    staged = [s for s in done if s.stages]
    if not stages and not staged:
        return None
    missing: dict[str, int] = {}
    per: dict[int, dict[str, Any]] = {}
    e2e_all = explained_all = 0
    for s in staged:
        have = {name for name, _, _ in s.stages}
        for st in stages:
            if st not in have:
                missing[st] = missing.get(st, 0) + 1
        e2e = s.end - s.start  # type: ignore[operator]
        explained = s.stages[-1][1] - s.stages[0][1]
        e2e_all += e2e
        explained_all += explained
        row = per.setdefault(s.num, {"name": syscall_name(s.num, names), "count": 0, "all_stages": 0, "e2e": 0,
                                     "explained": 0, "intervals": {}})
        row["count"] += 1
        row["all_stages"] += all(st in have for st in stages)
        row["e2e"] += e2e
        row["explained"] += explained
        for name, t0, t1, _h0, _h1 in s.intervals():
            row["intervals"][name] = row["intervals"].get(name, 0) + t1 - t0
    out_per = {}
    for n, r in sorted(per.items(), key=lambda kv: -kv[1]["count"]):
        c = r["count"]
        out_per[str(n)] = {"name": r["name"], "count": c, "all_stages": r["all_stages"], "mean_ns": r["e2e"] / c,
                           "coverage": r["explained"] / r["e2e"] if r["e2e"] else 0.0,
                           "intervals": {k: v / c for k, v in r["intervals"].items()}}
    return {"stages": list(stages), "calls": len(staged), "of": len(done),
            "all_stages": sum(r["all_stages"] for r in per.values()),
            "missing": missing, "repeats": sum(sum(s.repeats.values()) for s in staged),
            "coverage": explained_all / e2e_all if e2e_all else 0.0, "per_syscall": out_per}


def summarise(emu: dict[str, Any]) -> dict[str, Any]:
    """Everything the report prints, as data (also what --compare lines up)."""
    from emu.trace.threads import per_thread

    abi = str(emu.get("syscall_abi") or DEFAULT_ABI)
    a: Analysis = analyse((tuple(e) for e in emu["events"]), abi)  # type: ignore[misc]
    names = syscall_names(emu)
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
    profile = emu.get("profile") or {}
    return {
        "spans": len(done),
        "truncated": bool(emu.get("truncated")),
        "end_ns": a.end_ns,
        "per_syscall": {str(n): {**stats(v), "name": syscall_name(n, names)} for n, v in sorted(by_num.items())},
        "per_interval": {k: {**stats(v), "share": (sum(v) / total if total else 0.0)} for k, v in intervals.items()},
        "offload": offload(done, list(profile.get("stages") or []), names),
        "handoffs": _handoffs(a, done, profile.get("handoffs", [])),
        "per_hart": {str(h): dict(sorted(c.items())) for h, c in sorted(a.counts.items())},
        "per_thread": per_thread(a, names),
        "in_flight": in_flight(a, names),
        "mmio": {k: v for k, v in emu.get("stats", {}).get("mmio", {}).items() if v},
    }


NAME_W = 30
NO_RETURN_NAMES = {"exit", "exit_group", "poweroff", "reboot"}  # open at the end by design


def _row(name: str, st: dict[str, float], extra: str = "") -> str:
    return (f"  {name:<{NAME_W}} {st['count']:>7} {st['mean']:>12.0f} {st['p50']:>10.0f} {st['p99']:>10.0f} "
            f"{st['max']:>10.0f}{extra}")


HEADER = f"  {'':<{NAME_W}} {'count':>7} {'mean ns':>12} {'p50':>10} {'p99':>10} {'max':>10}"
HIDDEN_LABELS = ("stage", "syscall", "sysret")


def format_in_flight(rows: list[dict[str, Any]], prefix: str = "  ") -> list[str]:
    out = []
    for r in rows:
        who = f"pid {r['pid']}" if r.get("pid") is not None else f"thread {r['thread']}"
        pc = f" pc {r['pc']:#x}" if isinstance(r.get("pc"), int) else ""
        out.append(f"{prefix}{r['name']} from {who} on hart {r['hart']}: last stage {r['last_stage']} "
                   f"on hart {r['stage_hart']}{pc}, waiting {r['waited_ns']} ns since (made {r['age_ns']} ns ago)")
    return out


def in_flight_report(events: Iterable[tuple], profile: Any, symbols: Any, now_ns: int, prefix: str,
                     abi: str = DEFAULT_ABI) -> list[str]:
    """Lines for a hang/timeout/signal report: the open requests (numbers of `abi`), their stage
    pc named by `symbols`."""
    a = analyse(events, abi)
    a.end_ns = max(a.end_ns, now_ns)
    rows = in_flight(a, syscall_table(abi, profile.syscalls if profile is not None else None))
    if not rows:
        return []
    lines = [f"{prefix}requests in flight: {len(rows)}"]
    for r, line in zip(rows, format_in_flight(rows, prefix + "  ")):
        where = symbols.describe(r["pc"]) if isinstance(r.get("pc"), int) else None
        lines.append(line + (f" <{where}>" if where else ""))
    return lines


def format_report(s: dict[str, Any], title: str = "") -> str:
    from emu.trace.threads import format_threads

    lines = [f"emu trace report{(' - ' + title) if title else ''}: {s['spans']} system calls"
             + (" (truncated trace)" if s.get("truncated") else "")]
    lines += ["", "per system call (span: U-mode ecall -> return to U-mode):", HEADER]
    lines += [_row(st.get("name", f"syscall {n}"), st) for n, st in s["per_syscall"].items()]
    lines += ["", "per stage interval (virtual ns; share of all end-to-end latency):", HEADER]
    lines += [_row(k, st, f"  {100 * st['share']:5.1f}%") for k, st in s["per_interval"].items()]
    if s.get("offload"):
        lines += ["", *format_offload(s["offload"])]
    if s["handoffs"]:
        lines += ["", "cross-hart hand-offs (how long the receiving hart sat in WFI inside them, "
                      "and what ended its wait):", HEADER]
        for k, h in s["handoffs"].items():
            lines.append(_row(k, h["latency"]))
            lines.append(_row("  receiver idle (WFI)", h["receiver_idle_wfi"]))
            for why, w in h.get("wait_ended_by", {}).items():
                lines.append(f"    wait ended by {why}: {w['count']} (mean {w['mean_idle']:.0f} ns in WFI)")
        if any(h["latency"]["count"] and h["latency"]["p50"] < 0 or h["latency"]["mean"] < 0
               for h in s["handoffs"].values()):
            lines.append("  note: negative hand-offs mean the receiving hart saw a shared-memory write made later in")
            lines.append("  virtual time in the same scheduling round (polling, no IPI); use a smaller --quantum.")
    if s.get("per_thread"):
        lines += ["", *format_threads(s["per_thread"], brief=True)]
    lines += ["", "exits per hart (SBI calls, traps, interrupts, IPIs, WFI):"]
    for h, c in s["per_hart"].items():
        lines.append(f"  hart {h}: " + ", ".join(f"{k} {v}" for k, v in c.items() if k not in HIDDEN_LABELS))
    if s["mmio"]:
        lines.append("  MMIO accesses (all harts): " + ", ".join(f"{k} {v}" for k, v in s["mmio"].items()))
    flight = s.get("in_flight") or []
    lines += ["", f"requests in flight at the end of the trace ({s.get('end_ns', 0)} ns): {len(flight) or 'none'}"]
    lines += format_in_flight(flight)
    return "\n".join(lines)


def format_offload(o: dict[str, Any]) -> list[str]:
    stages = o["stages"]
    lines = [f"offloaded system calls (stages {' -> '.join(stages) or '-'}): {o['calls']} of {o['of']} calls, "
             f"{o['all_stages']} with all {len(stages)} stages"
             + (", missing: " + ", ".join(f"{k} {v}" for k, v in o["missing"].items()) if o["missing"] else ""),
             f"  the stages explain {100 * o['coverage']:.1f}% of their end-to-end latency "
             "(first stage -> last stage over ecall -> return to user)"]
    if o.get("repeats"):
        lines.append(f"  stages that fired again for a call already past them (a blocked call polled anew): {o['repeats']}")
    if not o["per_syscall"]:
        return lines
    cols = list(dict.fromkeys(k for r in o["per_syscall"].values() for k in r["intervals"]))
    w = max([10, *(len(c) for c in cols)])
    lines.append(f"  {'mean ns per call':<{NAME_W - 2}} {'count':>6} {'end-to-end':>11} {'explained':>9} "
                 + " ".join(f"{c:>{w}}" for c in cols))
    for r in o["per_syscall"].values():
        lines.append(f"  {r['name']:<{NAME_W - 2}} {r['count']:>6} {r['mean_ns']:>11.0f} {100 * r['coverage']:>8.1f}% "
                     + " ".join(f"{r['intervals'][c]:>{w}.0f}" if c in r["intervals"] else f"{'-':>{w}}"
                                for c in cols))
    return lines


def _by_name(pa: dict[str, dict], pb: dict[str, dict]) -> list[tuple[str, dict | None, dict | None]]:
    """Two traces' per-call rows lined up by name, not number, so traces of two ABIs compare
    (`read` is 63 on riscv64 and 0 on x86_64: its label then says `read (0/63)`)."""
    def bare(n: str, row: dict) -> str:
        return str(row.get("name", f"syscall {n}")).split(" (")[0]

    rows: dict[str, list] = {}
    for side, per in enumerate((pa, pb)):
        for n, row in sorted(per.items(), key=lambda kv: int(kv[0])):
            entry = rows.setdefault(bare(n, row), [int(n), None, None, []])
            entry[1 + side] = row
            if n not in entry[3]:
                entry[3].append(n)
    out = []
    for name, (_first, x, y, nums) in sorted(rows.items(), key=lambda kv: (kv[1][0], kv[0])):
        label = name if name.startswith("syscall ") else f"{name} ({'/'.join(nums)})"
        out.append((label, x, y))
    return out


def format_compare(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> str:
    """Two traces side by side: each system call by name (calls, mean end-to-end latency, the
    difference and the ratio), each stage interval, and the share the stages explain (a trace
    without stages shows -)."""
    fa, fb = Path(name_a).name[-20:], Path(name_b).name[-20:]
    lines = [f"emu trace compare: {name_a} ({a['spans']} calls) vs {name_b} ({b['spans']} calls)", "",
             f"  {'mean ns':<28} {'calls':>6} {fa:>20} {'calls':>6} {fb:>20} {'difference':>12} {'ratio':>8}"]

    def row(label: str, x: dict | None, y: dict | None) -> str:
        mx = x["mean"] if x else None
        my = y["mean"] if y else None
        ratio = f"{my / mx:8.2f}" if mx and my else f"{'-':>8}"
        diff = f"{round(my - mx):+12d}" if mx is not None and my is not None else f"{'-':>12}"
        fx = f"{mx:20.0f}" if mx is not None else f"{'-':>20}"
        fy = f"{my:20.0f}" if my is not None else f"{'-':>20}"
        cx = f"{x['count']:>6}" if x else f"{'-':>6}"
        cy = f"{y['count']:>6}" if y else f"{'-':>6}"
        return f"  {label:<28} {cx} {fx} {cy} {fy} {diff} {ratio}"

    for label, x, y in _by_name(a["per_syscall"], b["per_syscall"]):
        lines.append(row(label, x, y))
    lines += ["", "  per stage interval:"]
    for k in list(dict.fromkeys([*a["per_interval"], *b["per_interval"]])):
        lines.append(row(k, a["per_interval"].get(k), b["per_interval"].get(k)))

    def explained(s: dict[str, Any]) -> str:
        o = s.get("offload")
        if not o or not o["calls"]:
            return "no stages"
        return f"{100 * o['coverage']:.1f}% of {o['calls']} offloaded calls"
    lines += ["", f"  stages explain: {Path(name_a).name} {explained(a)}; {Path(name_b).name} {explained(b)}"]
    return "\n".join(lines)
