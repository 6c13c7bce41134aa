#!/usr/bin/env python3
"""Cost of tracing (issue 5): host seconds of `bench 1000` on the reference guest with tracing
off, with syscall events only, and with the full refguest profile; prints ratios (target:
full tracing <= 1.5x untraced).  Builds the guest with `make -C images/refguest` if needed.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "images" / "build" / "refguest" / "refguest.elf"
SCRIPT = b"bench 1000\npoweroff\n"


def run(mode: str, extra: list[str]) -> float:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "emu", "run", "--smp", "2", "--kernel", str(ELF),
                          "--append", f"offload={mode}", "--timeout", "300", *extra],
                         input=SCRIPT, capture_output=True, cwd=ROOT)
    took = time.perf_counter() - t
    assert res.returncode == 0 and b"bench: 1000 calls" in res.stdout, res.stderr.decode()[-500:]
    return took


def main() -> None:
    if not ELF.exists():
        subprocess.run(["make", "-C", str(ROOT / "images" / "refguest")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        variants = {
            "off": [],
            "syscall events": ["--trace", f"{tmp}/s.json", "--trace-events", "syscall", "--trace-profile", "none"],
            "full profile": ["--trace", f"{tmp}/f.json", "--trace-events", "all", "--trace-profile", "refguest"],
        }
        for mode in ("ipi", "poll", "off"):
            times = {name: statistics.median(run(mode, extra) for _ in range(3)) for name, extra in variants.items()}
            base = times["off"]
            print(f"offload={mode}: " + ", ".join(f"{k} {v:.2f} s ({v / base:.2f}x)" for k, v in times.items()))


if __name__ == "__main__":
    main()
