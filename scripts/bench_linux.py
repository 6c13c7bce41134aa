#!/usr/bin/env python3
"""Linux 6.1 boot benchmark (issue 11): emu against QEMU in the same run; prints, asserts nothing.

For `emu run --smp 2 -m 256M --kernel Image --initrd initramfs --append "console=ttyS0
emu.selftest=poweroff"` and the equivalent QEMU command (OpenSBI, CPU features trimmed to
what Unicorn implements): host seconds to `Run /init` and to `selftest: ok` (median of N
runs, alternating), the ratio, instructions executed (emu's estimate from code bytes) and
emu's Python callbacks by kind (SBI by extension, rdtime traps, MMIO by device, traps by
cause). Run `make -C images/linux` first.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "images" / "build" / "linux"
APPEND = "console=ttyS0 emu.selftest=poweroff"
QEMU_CPU = "rv64,sstc=off,h=off,zba=off,zbb=off,zbc=off,zbs=off"


def timed(cmd: list[str]) -> tuple[float, float, str]:
    t0 = time.perf_counter()
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=300)
    child.expect("Run /init")
    init = time.perf_counter() - t0
    child.expect("selftest: ok")
    ok = time.perf_counter() - t0
    child.expect(pexpect.EOF)
    return init, ok, child.before.decode(errors="replace")


def commands(smp: int, append: str = APPEND, emu_args: tuple[str, ...] = (),
             arch: str = "riscv64") -> tuple[list[str], list[str] | None]:
    """The emu (with --stats and emu_args) and QEMU command lines booting the Linux guest;
    QEMU's is None when its qemu-system binary is not installed.  x86_64: the bzImage of
    `make -C images/linux ARCH=x86_64` against QEMU's q35 (SeaBIOS, TCG)."""
    if arch == "x86_64":
        build, kernel, make = BUILD.with_name("linux-x86_64"), "bzImage", "make -C images/linux ARCH=x86_64"
    else:
        build, kernel, make = BUILD, "Image", "make -C images/linux"
    image, initrd = build / kernel, build / "initramfs.cpio.gz"
    if not image.exists():
        sys.exit(f"build the kernel first: {make}")
    common = ["-smp", str(smp), "-m", "256M", "-kernel", str(image), "-initrd", str(initrd), "-append", append]
    emu = [sys.executable, "-m", "emu", "run", "--arch", arch, "--stats", *emu_args, *common]
    if arch == "x86_64":
        qemu_bin = shutil.which("qemu-system-x86_64")
        qemu = [qemu_bin, "-machine", "q35", "-nographic", "-no-reboot", *common] if qemu_bin else None
    else:
        qemu_bin = shutil.which("qemu-system-riscv64")
        qemu = [qemu_bin, "-M", "virt", "-nographic", "-bios", "default", "-cpu", QEMU_CPU, *common] if qemu_bin else None
    return emu, qemu


def as_installed() -> None:
    """Time emu as a user runs it: with Python's bytecode cache (an environment that sets
    PYTHONDONTWRITEBYTECODE recompiles every changed module at each start, ~20 ms)."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)


def stats_of(tail: str) -> dict:
    """emu's --stats JSON: the last line of the console (stderr shares the pty)."""
    return json.loads(tail.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--smp", type=int, default=2)
    ap.add_argument("--arch", choices=["riscv64", "x86_64"], default="riscv64")
    args = ap.parse_args()
    as_installed()
    emu, qemu = commands(args.smp, arch=args.arch)
    e_runs, q_runs, stats = [], [], {}
    for _ in range(args.runs):
        init, ok, tail = timed(emu)
        e_runs.append((init, ok))
        stats = stats_of(tail)
        if qemu:
            q_runs.append(timed(qemu)[:2])
    e_init, e_ok = (statistics.median(r[i] for r in e_runs) for i in (0, 1))
    print(f"Linux 6.1 {args.arch}, --smp {args.smp}, median of {args.runs} runs (host seconds from process start)")
    print(f"  emu : Run /init {e_init:.2f}  selftest: ok {e_ok:.2f}")
    if q_runs:
        q_init, q_ok = (statistics.median(r[i] for r in q_runs) for i in (0, 1))
        print(f"  QEMU: Run /init {q_init:.2f}  selftest: ok {q_ok:.2f}")
        print(f"  ratio emu/QEMU: Run /init {e_init / q_init:.2f}x (target <= 1.0)  "
              f"selftest: ok {e_ok / q_ok:.2f}x (target <= 1.5)")
    else:
        print("  QEMU not installed (apt-get install qemu-system-misc or qemu-system-x86): no ratio")
    print(f"  emu: ~{stats['instructions_est'] / 1e6:.1f} M instructions, virtual {stats['vtime_s']:.3f} s, "
          f"{stats['switches']} hart switches, {stats['wfi_parks']} WFI parks")
    if stats["sbi"]:
        print(f"  emu callbacks: SBI {stats['sbi']}")
    traps: dict[str, int] = {}
    for per in stats["harts"].values():
        for k, v in per.items():
            if k != "instructions_est":  # not a callback
                traps[k] = traps.get(k, 0) + v
    print(f"  emu callbacks: {traps}")
    print(f"  emu MMIO: {dict((k, v) for k, v in stats['mmio'].items() if v)}")


if __name__ == "__main__":
    main()
