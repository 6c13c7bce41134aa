#!/usr/bin/env python3
"""Benchmark of `emu test` (issue 8): the reference list, --jobs 1 vs 2, fork vs boot per case.

    python3 scripts/bench_testrunner.py [--repeat R] [--kernel ELF] [--list FILE]
                                        [--append offload=ipi] [--timeout 2] [--json]

Runs the list end to end as a user would (`python -m emu.testrunner`, or `emu test`
once registered), in four set-ups:

- fork j1 / fork j2:  one boot, one fork of the booted machine per case, 1 or 2 at once;
- boot j1 / boot j2:  --boot-per-case --case-via console: a fresh machine booted per case
                      (the reference guest takes no program from its bootargs, so the case
                      is typed on its shell as in fork mode), 1 or 2 at once.

For each: wall s = host seconds of the whole process (start-up, kernel load, boot, cases,
report), run s = the runner's own figure from its summary line (cases and boot, without
Python start-up).  Each figure is the median of --repeat runs; every run must reproduce
the list's statuses.  Ratios: j1/j2 (parallel speed-up) and boot/fork (what the snapshot
saves).  The guest is images/build/refguest/refguest.elf (built with `make -C
images/refguest` if missing) unless --kernel names another.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_KERNEL = os.path.join(REPO, "images", "build", "refguest", "refguest.elf")
DEFAULT_LIST = os.path.join(REPO, "tests", "lists", "refguest.txt")
RUN_S = re.compile(r"case\(s\) in ([0-9.]+) s")
SETUPS = {
    "fork j1": ["--jobs", "1"],
    "fork j2": ["--jobs", "2"],
    "boot j1": ["--jobs", "1", "--boot-per-case", "--case-via", "console"],
    "boot j2": ["--jobs", "2", "--boot-per-case", "--case-via", "console"],
}


def emu_test() -> list[str]:
    sys.path.insert(0, REPO)
    from emu.cli import main

    if "test" in main.commands:
        return [sys.executable, "-m", "emu", "test"]
    return [sys.executable, "-m", "emu.testrunner"]


def ensure_kernel(path: str) -> str:
    if os.path.exists(path):
        return path
    if path != DEFAULT_KERNEL:
        sys.exit(f"bench_testrunner: kernel not found: {path}")
    subprocess.run(["make", "-C", os.path.join(REPO, "images", "refguest")], check=True,
                   stdout=subprocess.DEVNULL)
    return path


def one(cmd: list[str]) -> tuple[float, float]:
    t0 = time.monotonic()
    res = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO, timeout=600)
    wall = time.monotonic() - t0
    if res.returncode != 0 or "gave the status the list expects" not in res.stdout:
        sys.exit(f"bench_testrunner: run did not reproduce the list (exit {res.returncode}):\n"
                 f"{' '.join(cmd)}\n{res.stdout}{res.stderr[-2000:]}")
    m = RUN_S.search(res.stdout)
    return wall, float(m.group(1)) if m else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kernel", default=DEFAULT_KERNEL)
    ap.add_argument("--list", default=DEFAULT_LIST)
    ap.add_argument("--append", default="offload=ipi", help="guest bootargs (the list's header: offload=ipi)")
    ap.add_argument("--timeout", default="2", help="guest seconds per case (the list's header: 2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    kernel = ensure_kernel(args.kernel)
    base = emu_test() + ["--kernel", kernel, "--smp", "2", "-m", "256M", "--append", args.append,
                         "--prompt", "ref> ", "--timeout", args.timeout, "--list", args.list]
    one(base + SETUPS["fork j1"])  # warm-up: page cache, .pyc files
    figures: dict[str, dict[str, float]] = {}
    for _ in range(args.repeat):  # interleaved, so a slow moment of the host hits every set-up
        for name, extra in SETUPS.items():
            wall, run = one(base + extra)
            figures.setdefault(name, {"wall": [], "run": []})  # type: ignore[arg-type]
            figures[name]["wall"].append(wall)  # type: ignore[attr-defined]
            figures[name]["run"].append(run)  # type: ignore[attr-defined]
    med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}  # type: ignore[arg-type]
    ratios = {
        "fork j1/j2 wall": med["fork j1"]["wall"] / med["fork j2"]["wall"],
        "fork j1/j2 run": med["fork j1"]["run"] / med["fork j2"]["run"],
        "boot j1/j2 wall": med["boot j1"]["wall"] / med["boot j2"]["wall"],
        "boot/fork j1 wall": med["boot j1"]["wall"] / med["fork j1"]["wall"],
        "boot/fork j1 run": med["boot j1"]["run"] / med["fork j1"]["run"],
        "boot/fork j2 wall": med["boot j2"]["wall"] / med["fork j2"]["wall"],
    }
    with open(args.list, encoding="utf-8") as f:
        ncases = sum(1 for line in f if line.strip() and not line.lstrip().startswith("#"))
    if args.json:
        print(json.dumps({"cases": ncases, "repeat": args.repeat, "cpus": os.cpu_count(),
                          "median_s": med, "ratios": ratios}, indent=1))
        return
    print(f"emu test on {os.path.relpath(args.list, REPO)} ({ncases} cases), median of {args.repeat}, "
          f"{os.cpu_count()} CPU(s)")
    print(f"  {'set-up':<10} {'wall s':>8} {'run s':>8} {'run ms/case':>12}")
    for name, f in med.items():
        print(f"  {name:<10} {f['wall']:8.3f} {f['run']:8.3f} {1000 * f['run'] / ncases:12.1f}")
    print("ratios:")
    for name, r in ratios.items():
        print(f"  {name:<18} {r:6.2f}x")


if __name__ == "__main__":
    main()
