#!/usr/bin/env python3
"""SMP benchmark (issue 15): emu against QEMU in the same run; prints figures, asserts nothing.

    python3 scripts/bench_harts.py [--runs 3] [--work 10]

(a) The Linux guest's cross-CPU system call workload whole (`-smp 2 -m 256M`, append
    `console=ttyS0 emu.selftest=poweroff emu.work=N`, see images/linux/README.md): host seconds
    from process start to exit on emu and on QEMU, the ratio, the workload's own share
    (`selftest: ok` to exit), and emu's --stats (rdtime traps and U-mode ecalls = trap8 per hart,
    hart switches, WFI parks, IPIs, SBI calls by extension).
(b) Host ns per hart switch on emu: the Linux selftest boot at --quantum 20000 (the default) and
    at --quantum 1000; (time difference) / (switch difference).
(c) Poll visibility latency: the reference guest's `bench 1000` in offload=poll/ipi/off, guest
    ticks per call (as scripts/bench_refguest.py measures it), emu and QEMU.
(d) Linux boot to `Run /init` and to `selftest: ok`, emu against QEMU (taken from the runs of (a):
    emu.work only acts after `selftest: ok`).
(e) zCore, when EMU_ZCORE_KERNEL (and/or EMU_ZCORE_OFFLOAD_KERNEL) and EMU_ZCORE_INITRD are set:
    host seconds to `/ # ` and for `ls /libc-test/src/math`, emu against QEMU.

QEMU runs twice per figure: as users run it (multi-threaded TCG, one host thread per vCPU) and with
`-accel tcg,thread=single` (all vCPUs on one host thread, as emu runs them): the per-core comparison.

Every figure is the median of --runs runs, emu and QEMU alternating.  QEMU with -smp 2 on a host
with 2 cores or fewer (or a busy one) is very sensitive to load: its vCPU threads wait for the host
scheduler at every synchronous cross-CPU call.  Needs pexpect, make -C images/linux and the
reference guest (images/refguest).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_linux  # noqa: E402
import bench_refguest  # noqa: E402
import bench_zcore  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMP = 2


def median(xs) -> float:
    return statistics.median(list(xs))


def ratio(e: float, q: float) -> str:
    return f"{e / q:.2f}x" if q else "inf"


def linux_run(cmd: list[str]) -> dict:
    """One Linux boot: host seconds to `Run /init`, to `selftest: ok` and to exit, plus emu's stats."""
    t0 = time.perf_counter()
    init, ok, tail = bench_linux.timed(cmd)
    end = time.perf_counter() - t0
    if "emu.work=" in " ".join(cmd) and "work: ok" not in tail:
        raise RuntimeError(f"{cmd[0]}: no 'work: ok':\n{tail[-2000:]}")
    stats = bench_linux.stats_of(tail) if "--stats" in cmd else {}
    return {"init": init, "ok": ok, "end": end, "stats": stats}


def per_hart(stats: dict, key: str) -> str:
    return " ".join(f"h{h}={per.get(key, 0)}" for h, per in sorted(stats["harts"].items()))


def total(stats: dict, key: str) -> int:
    return sum(per.get(key, 0) for per in stats["harts"].values())


def print_stats(stats: dict, base: dict | None) -> None:
    print(f"  emu --stats: virtual {stats['vtime_s']:.3f} s, ~{stats['instructions_est'] / 1e6:.1f} M instructions, "
          f"{stats['switches']} hart switches, {stats['wfi_parks']} WFI parks, {stats['rounds']} rounds")
    print(f"    rdtime traps  {per_hart(stats, 'rdtime')}")
    print(f"    U-mode ecalls {per_hart(stats, 'trap8')}  (trap8)")
    print(f"    IPIs (SBI IPI calls) {stats['sbi'].get('IPI', 0)};  SBI by extension {stats['sbi']}")
    if base:
        def d(get) -> int:
            return get(stats) - get(base)
        print("    the workload alone (minus the selftest-only boot of (b)): "
              f"rdtime {d(lambda s: total(s, 'rdtime'))}, ecalls {d(lambda s: total(s, 'trap8'))}, "
              f"switches {d(lambda s: s['switches'])}, IPIs {d(lambda s: s['sbi'].get('IPI', 0))}, "
              f"RFENCE {d(lambda s: s['sbi'].get('RFENCE', 0))}, virtual "
              f"{stats['vtime_s'] - base['vtime_s']:.3f} s")


def single_thread(qemu: list[str] | None) -> list[str] | None:
    """QEMU with all vCPUs on one host thread (-accel tcg,thread=single), as emu runs: the
    per-core comparison, which host load does not distort the way it does multi-threaded TCG."""
    return [*qemu, "-accel", "tcg,thread=single"] if qemu else None


def alternate(label: str, runs: int, measure, emu: list[str], qemu: list[str] | None) -> tuple[list, list, list]:
    """`runs` measurements of emu, QEMU and single-threaded QEMU in turn (A B C A B C: drift
    hits all alike)."""
    e_runs, q_runs, s_runs = [], [], []
    for i in range(runs):
        print(f"... {label} run {i + 1}/{runs}", file=sys.stderr, flush=True)
        e_runs.append(measure(emu))
        if qemu:
            q_runs.append(measure(qemu))
            s_runs.append(measure(single_thread(qemu)))
    return e_runs, q_runs, s_runs


def bench_linux_whole(runs: int, work: int) -> tuple[list[dict], list[dict], list[dict]]:
    emu, qemu = bench_linux.commands(SMP, f"{bench_linux.APPEND} emu.work={work}")
    return alternate("(a)", runs, linux_run, emu, qemu)


def report_linux(e_runs: list[dict], q_runs: list[dict], s_runs: list[dict], work: int, base: dict | None) -> None:
    e_end = median(r["end"] for r in e_runs)
    print(f"(a) Linux workload emu.work={work}, -smp {SMP} -m 256M (host s from process start to exit; "
          "workload = `selftest: ok` to exit)")
    print(f"  emu : whole {e_end:6.2f}  workload {median(r['end'] - r['ok'] for r in e_runs):6.2f}")
    if q_runs:
        q_end = median(r["end"] for r in q_runs)
        e_w, q_w = median(r["end"] - r["ok"] for r in e_runs), median(r["end"] - r["ok"] for r in q_runs)
        s_end, s_w = median(r["end"] for r in s_runs), median(r["end"] - r["ok"] for r in s_runs)
        print(f"  QEMU: whole {q_end:6.2f}  workload {q_w:6.2f}")
        print(f"  QEMU, one host thread: whole {s_end:6.2f}  workload {s_w:6.2f}")
        print(f"  ratio emu/QEMU: whole {ratio(e_end, q_end)}  workload {ratio(e_w, q_w)};  "
              f"emu/QEMU one thread: whole {ratio(e_end, s_end)}  workload {ratio(e_w, s_w)}")
    else:
        print("  QEMU not installed (apt-get install qemu-system-misc opensbi): no ratio")
    print_stats(e_runs[-1]["stats"], base)


def report_boot(e_runs: list[dict], q_runs: list[dict], s_runs: list[dict]) -> None:
    e_ok = median(r["ok"] for r in e_runs)
    print("(d) Linux boot (from the runs of (a)): host s to `Run /init` and to `selftest: ok`")
    print(f"  emu : Run /init {median(r['init'] for r in e_runs):6.2f}  selftest: ok {e_ok:6.2f}")
    if q_runs:
        q_init, q_ok = median(r["init"] for r in q_runs), median(r["ok"] for r in q_runs)
        print(f"  QEMU: Run /init {q_init:6.2f}  selftest: ok {q_ok:6.2f}")
        s_init, s_ok = median(r["init"] for r in s_runs), median(r["ok"] for r in s_runs)
        e_init = median(r['init'] for r in e_runs)
        print(f"  QEMU, one host thread: Run /init {s_init:6.2f}  selftest: ok {s_ok:6.2f}")
        print(f"  ratio emu/QEMU: Run /init {ratio(e_init, q_init)}  selftest: ok {ratio(e_ok, q_ok)};  "
              f"emu/QEMU one thread: Run /init {ratio(e_init, s_init)}  selftest: ok {ratio(e_ok, s_ok)}")


def bench_switch(runs: int) -> dict[int, list[dict]]:
    """(b): the selftest boot at two quanta, alternating."""
    out: dict[int, list[dict]] = {20000: [], 1000: []}
    for i in range(runs):
        print(f"... (b) run {i + 1}/{runs}", file=sys.stderr, flush=True)
        for q in out:
            out[q].append(linux_run(bench_linux.commands(SMP, emu_args=("--quantum", str(q)))[0]))
    return out


def report_switch(out: dict[int, list[dict]]) -> None:
    print("(b) emu host cost per hart switch: Linux selftest boot, -smp 2 (host s to exit)")
    fig = {}
    for q, rs in out.items():
        fig[q] = (median(r["end"] for r in rs), rs[-1]["stats"]["switches"], rs[-1]["stats"]["instructions_est"])
        print(f"  --quantum {q:>5}: {fig[q][0]:6.2f} s, {fig[q][1]:>7} switches, ~{fig[q][2] / 1e6:.1f} M instructions")
    (t_hi, s_hi, i_hi), (t_lo, s_lo, i_lo) = fig[20000], fig[1000]
    if s_lo != s_hi:
        extra = (i_lo - i_hi) * t_hi / i_hi  # the extra instructions at the --quantum 20000 rate
        print(f"  (time difference) / (switch difference) = {(t_lo - t_hi) * 1e9 / (s_lo - s_hi):,.0f} ns per switch")
        print(f"  without the {(i_lo - i_hi) / 1e6:.1f} M extra instructions the smaller quantum causes (spin waits), "
              f"at the --quantum 20000 rate: {(t_lo - t_hi - extra) * 1e9 / (s_lo - s_hi):,.0f} ns per switch")


def bench_poll(runs: int, n: int) -> dict[str, dict[str, list[dict]]]:
    kernel = bench_refguest.ensure_kernel(bench_refguest.DEFAULT_KERNEL)
    machines = {"emu": bench_refguest.emu_cmd}
    if shutil.which("qemu-system-riscv64"):
        machines["QEMU"] = bench_refguest.qemu_cmd
    out: dict[str, dict[str, list[dict]]] = {}
    for mode in bench_refguest.MODES:
        for i in range(runs):
            print(f"... (c) offload={mode} run {i + 1}/{runs}", file=sys.stderr, flush=True)
            for name, make in machines.items():
                out.setdefault(mode, {}).setdefault(name, []).append(
                    bench_refguest.one_run(make(kernel, mode, 120.0), n, 120.0, False))
    return out


def report_poll(out: dict[str, dict[str, list[dict]]], n: int) -> None:
    print(f"(c) reference guest `bench {n}`, -smp 2, default settings: time-CSR ticks per null system call "
          "(guest figure), host µs per call")
    print(f"  {'mode':<5} {'machine':<5} {'ticks/call':>10} {'guest µs':>9} {'host µs':>8}   emu/QEMU ticks")
    for mode, per in out.items():
        med = {name: {k: median(r[k] for r in rs) for k in ("ticks", "guest_us", "host_us")} for name, rs in per.items()}
        for name, m in med.items():
            rel = ratio(med["emu"]["ticks"], m["ticks"]) if name == "QEMU" else ""
            print(f"  {mode:<5} {name:<5} {m['ticks']:>10.0f} {m['guest_us']:>9.1f} {m['host_us']:>8.1f}   {rel}")


def zcore_run(cmd: list[str]) -> tuple[float, float]:
    """Host seconds to `/ # ` and for `ls /libc-test/src/math` back to the prompt."""
    child, boot = bench_zcore.to_prompt(cmd)
    try:
        t = time.perf_counter()
        child.sendline("ls /libc-test/src/math")
        # zCore may print its next prompt before the child's output: the listing's last name
        # (libc-test's math directory ends with ynf.exe) ends the measurement
        child.expect_exact("ynf.exe")
        return boot, time.perf_counter() - t
    finally:
        child.close(force=True)


def bench_zcore_boots(runs: int) -> None:
    initrd = os.environ.get("EMU_ZCORE_INITRD")
    kernels = [(label, os.environ.get(var)) for label, var in
               (("zCore", "EMU_ZCORE_KERNEL"), ("zCore offload", "EMU_ZCORE_OFFLOAD_KERNEL"),
                ("zCore baseline", "EMU_ZCORE_BASELINE_KERNEL"))]
    kernels = [(label, k) for label, k in kernels if k]
    if not (initrd and kernels):
        print("(e) zCore: skipped (set EMU_ZCORE_KERNEL and/or EMU_ZCORE_OFFLOAD_KERNEL, and EMU_ZCORE_INITRD)")
        return
    print(f"(e) zCore -smp {SMP} -m {bench_zcore.MEMORY}: host s to `/ # ` and for `ls /libc-test/src/math`")
    for label, kernel in kernels:
        emu, qemu = bench_zcore.commands(kernel, initrd, str(SMP))
        e_runs, q_runs, s_runs = alternate(f"(e) {label}", runs, zcore_run, emu, qemu)
        e = [median(r[k] for r in e_runs) for k in (0, 1)]
        line = f"  {label:<13} emu : boot {e[0]:6.2f}  ls {e[1]:6.2f}"
        if q_runs:
            q = [median(r[k] for r in q_runs) for k in (0, 1)]
            line += f"   QEMU: boot {q[0]:6.2f}  ls {q[1]:6.2f}   ratio boot {ratio(e[0], q[0])}  ls {ratio(e[1], q[1])}"
            q1 = [median(r[k] for r in s_runs) for k in (0, 1)]
            line += (f"\n  {'':<13} QEMU one thread: boot {q1[0]:6.2f}  ls {q1[1]:6.2f}   "
                     f"ratio boot {ratio(e[0], q1[0])}  ls {ratio(e[1], q1[1])}")
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs per figure, the median is shown (default 3)")
    ap.add_argument("--work", type=int, default=10, help="N of emu.work=N (default 10)")
    ap.add_argument("--n", type=int, default=1000, help="system calls per reference-guest bench (default 1000)")
    a = ap.parse_args()
    if a.runs < 1 or a.work < 1 or a.n < 1:
        ap.error("--runs, --work and --n must be positive")
    os.chdir(ROOT)
    bench_linux.as_installed()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    started = time.perf_counter()

    e_runs, q_runs, s_runs = bench_linux_whole(a.runs, a.work)
    switch = bench_switch(a.runs)
    poll = bench_poll(a.runs, a.n)

    print(f"emu SMP benchmark, median of {a.runs} runs, emu and QEMU alternating; host: {os.cpu_count()} CPUs, "
          f"load average {load:.2f} at the start")
    if (os.cpu_count() or 1) <= SMP or load >= 0.5:
        print(f"NOTE: QEMU -smp {SMP} needs a free host core per vCPU: on this host "
              f"({os.cpu_count()} CPUs, load {load:.2f}) its figures are inflated by host scheduling and vary a lot")
    print()
    report_linux(e_runs, q_runs, s_runs, a.work, switch[20000][-1]["stats"])
    print()
    report_switch(switch)
    print()
    report_poll(poll, a.n)
    print()
    report_boot(e_runs, q_runs, s_runs)
    print()
    bench_zcore_boots(a.runs)
    print(f"\n(benchmark took {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
