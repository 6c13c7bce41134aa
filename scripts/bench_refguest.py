#!/usr/bin/env python3
"""Benchmark of the reference guest (issue 4): system call latency and boot time per mode.

    python3 scripts/bench_refguest.py [--n 1000] [--mode poll|ipi|off ...] [--repeat R]
                                      [--no-qemu] [--kernel ELF] [--json]

For each offload mode it boots the guest on emu (and, when qemu-system-riscv64 is
installed, on QEMU with OpenSBI, in the same run), and reports:

- boot s:       host seconds from starting the process to the first `ref> ` prompt;
- ticks/call:   the guest's own figure from `bench N` (mean time-CSR ticks per null
                system call, measured with rdtime in U-mode), and the same in guest µs;
- host µs/call: host wall time from typing `bench N` to its result line, divided by N
                (includes the spawn, wait and printing of the bench program: a few
                dozen system calls, small beside N = 1000).

A `bench 10` runs first as warm-up.  With --repeat R each figure is the median of R boots.
The guest is images/build/refguest/refguest.elf (built with `make -C images/refguest` if
missing) unless --kernel names another.  Needs pexpect.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

import pexpect

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_KERNEL = os.path.join(REPO, "images", "build", "refguest", "refguest.elf")
PROMPT = "ref> "
MODES = ("poll", "ipi", "off")
MEMORY = "512M"
BENCH_RE = re.compile(r"bench: (\d+) calls, mean (\d+) ticks, executed on hart (\d+)")
TIMEBASE_RE = re.compile(r"timebase (\d+) Hz")


def emu_cmd(kernel: str, mode: str, timeout: float) -> list[str]:
    return [sys.executable, "-m", "emu", "run", "--smp", "2", "-m", MEMORY, "--kernel", kernel,
            "--append", f"offload={mode}", "--timeout", f"{timeout:g}"]


def qemu_cmd(kernel: str, mode: str, timeout: float) -> list[str]:
    return ["qemu-system-riscv64", "-M", "virt", "-smp", "2", "-m", MEMORY, "-nographic",
            "-bios", "default", "-kernel", kernel, "-append", f"offload={mode}"]


def one_run(cmd: list[str], n: int, timeout: float, verbose: bool) -> dict[str, float]:
    """Boot, warm up, time `bench n`, power off; return the figures of this run."""
    t0 = time.monotonic()
    child = pexpect.spawn(cmd[0], cmd[1:], cwd=REPO, encoding="utf-8", codec_errors="replace",
                          timeout=timeout)
    if verbose:
        child.logfile_read = sys.stderr
    try:
        child.expect_exact(PROMPT)
        boot_s = time.monotonic() - t0
        m = TIMEBASE_RE.search(child.before)
        if not m:
            raise RuntimeError(f"no timebase in the boot banner: {child.before!r}")
        timebase = int(m.group(1))
        child.send("bench 10\r")
        child.expect(BENCH_RE)
        child.expect_exact(PROMPT)
        t1 = time.monotonic()
        child.send(f"bench {n}\r")
        child.expect(BENCH_RE)
        t2 = time.monotonic()
        calls, ticks, hart = (int(x) for x in child.match.groups())
        if calls != n:
            raise RuntimeError(f"bench ran {calls} calls, not {n}")
        child.expect_exact(PROMPT)
        child.send("poweroff\r")
        child.expect(pexpect.EOF)
        child.close()
        if child.exitstatus != 0:
            raise RuntimeError(f"{cmd[0]} exited with {child.exitstatus} after poweroff")
    finally:
        if child.isalive():
            child.close(force=True)
    return {"boot_s": boot_s, "ticks": ticks, "guest_us": ticks * 1e6 / timebase,
            "host_us": (t2 - t1) * 1e6 / n, "hart": hart}


def measure(cmd: list[str], n: int, repeat: int, timeout: float, verbose: bool) -> dict[str, float]:
    runs = [one_run(cmd, n, timeout, verbose) for _ in range(repeat)]
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def ensure_kernel(path: str) -> str:
    if os.path.exists(path):
        return path
    if path != DEFAULT_KERNEL:
        sys.exit(f"{path}: no such file")
    if shutil.which("riscv64-unknown-elf-gcc") is None:
        sys.exit("the reference guest is not built and riscv64-unknown-elf-gcc is missing: "
                 "apt-get install gcc-riscv64-unknown-elf, then make -C images/refguest")
    print("building the reference guest: make -C images/refguest", file=sys.stderr)
    subprocess.run(["make", "-C", os.path.join(REPO, "images", "refguest")], check=True,
                   stdout=subprocess.DEVNULL)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="system calls per bench (default 1000)")
    ap.add_argument("--mode", choices=MODES, action="append", help="offload mode (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="boots per figure; the median is shown")
    ap.add_argument("--kernel", default=DEFAULT_KERNEL, help="the guest ELF")
    ap.add_argument("--no-qemu", action="store_true", help="emu only")
    ap.add_argument("--timeout", type=float, default=120.0, help="host seconds per boot and per step")
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="copy the guest console to stderr")
    a = ap.parse_args()
    if a.n < 1 or a.repeat < 1:
        ap.error("--n and --repeat must be positive")
    kernel = ensure_kernel(os.path.abspath(a.kernel))
    machines = {"emu": emu_cmd}
    if not a.no_qemu:
        if shutil.which("qemu-system-riscv64"):
            machines["qemu"] = qemu_cmd
        else:
            print("qemu-system-riscv64 not found: emu figures only", file=sys.stderr)

    results: dict[str, dict[str, dict[str, float]]] = {}
    for mode in a.mode or MODES:
        for name, make_cmd in machines.items():
            print(f"... {name} offload={mode}", file=sys.stderr, flush=True)
            results.setdefault(mode, {})[name] = measure(make_cmd(kernel, mode, a.timeout), a.n,
                                                        a.repeat, a.timeout, a.verbose)

    print(f"reference guest, bench {a.n}, smp 2, -m {MEMORY}"
          + (f", median of {a.repeat} boots" if a.repeat > 1 else ""))
    print(f"{'mode':<5} {'machine':<7} {'hart':>4} {'ticks/call':>11} {'guest µs/call':>14} "
          f"{'host µs/call':>13} {'boot s':>7}")
    for mode, per in results.items():
        for name, r in per.items():
            print(f"{mode:<5} {name:<7} {r['hart']:>4.0f} {r['ticks']:>11.0f} {r['guest_us']:>14.1f} "
                  f"{r['host_us']:>13.1f} {r['boot_s']:>7.2f}")
    if "qemu" in machines:
        print("\nemu / qemu")
        print(f"{'mode':<5} {'ticks/call':>11} {'host µs/call':>13} {'boot s':>7}")
        for mode, per in results.items():
            e, q = per["emu"], per["qemu"]
            ratio = {k: (e[k] / q[k] if q[k] else float("inf")) for k in ("ticks", "host_us", "boot_s")}
            print(f"{mode:<5} {ratio['ticks']:>10.1f}x {ratio['host_us']:>12.1f}x {ratio['boot_s']:>6.1f}x")
    if a.json:
        print(json.dumps({"n": a.n, "repeat": a.repeat, "results": results}, indent=2))


if __name__ == "__main__":
    main()
