#!/usr/bin/env python3
"""zCore boot benchmark (issue 9): host seconds to `/ # ` on emu and on QEMU in the same run,
instructions executed on emu, and the first lines that differ between the two consoles
(ANSI colours and timestamps stripped).  Needs EMU_ZCORE_KERNEL and EMU_ZCORE_INITRD.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

import pexpect

ANSI = re.compile(r"\x1b\[[0-9;]*m|\[\s*\d+\.\d+\s")


def to_prompt(cmd: list[str]) -> tuple[pexpect.spawn, float]:
    """Starts cmd; returns the child at its first `/ # ` and the host seconds that took."""
    t = time.perf_counter()
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=120)
    child.expect_exact("/ # ")
    return child, time.perf_counter() - t


def boot(cmd: list[str]) -> tuple[float, str]:
    child, took = to_prompt(cmd)
    console = child.before.decode(errors="replace")
    child.close(force=True)
    return took, console


MEMORY = "512M"  # the offload fork panics with 2G (its physmap wraps at 4 GiB); upstream boots with both


def commands(kernel: str, initrd: str, smp: str) -> tuple[list[str], list[str] | None]:
    """The emu and QEMU command lines booting zCore; QEMU's is None when not installed.

    QEMU loads an ELF at its virtual addresses, where zCore's do not boot: given the ELF
    (emu takes it, for symbols), QEMU gets the raw `zcore.bin` beside it when there is one."""
    emu = [sys.executable, "-m", "emu", "run", "--smp", smp, "-m", MEMORY, "--linux", "--kernel", kernel,
           "--initrd", initrd, "--timeout", "120"]
    raw = Path(kernel).with_suffix(".bin")
    qemu_kernel = str(raw) if raw.is_file() else kernel
    qemu_bin = shutil.which("qemu-system-riscv64")
    qemu = [qemu_bin, "-machine", "virt", "-bios", "default", "-m", MEMORY, "-smp", smp, "-kernel", qemu_kernel,
            "-initrd", initrd, "-append", "LOG=warn", "-nographic", "-no-reboot"] if qemu_bin else None
    return emu, qemu


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("smp", nargs="?", type=int, default=2, help="harts (default 2)")
    smp = str(parser.parse_args().smp)
    kernel, initrd = os.environ.get("EMU_ZCORE_KERNEL"), os.environ.get("EMU_ZCORE_INITRD")
    if not (kernel and initrd):
        sys.exit("set EMU_ZCORE_KERNEL and EMU_ZCORE_INITRD")
    emu, qemu = commands(kernel, initrd, smp)
    e_runs, q_runs = [], []
    for _ in range(3):
        e_runs.append(boot(emu))
        if qemu:
            q_runs.append(boot(qemu))
    e = statistics.median(t for t, _ in e_runs)
    print(f"zCore --smp {smp}: emu {e:.2f} s to '/ # '", end="")
    if q_runs:
        q = statistics.median(t for t, _ in q_runs)
        print(f", QEMU {q:.2f} s, ratio {e / q:.2f}")
    else:
        print(" (QEMU not installed)")
    from emu.board import BoardSpec
    from emu.machine import Machine, MachineOptions
    from loader.image import load_kernel

    spec = BoardSpec(harts=int(smp), ram_size=2 << 30, bootargs="LOG=warn")
    m = Machine(spec, load_kernel(kernel, spec.ram.base, spec.ram.size), open(initrd, "rb").read(),
                MachineOptions(capture=True, timeout=60))
    res = m.run(until=lambda mm: bytes(mm.console.log).endswith(b"/ # "))
    print(f"emu: ~{res.stats['instructions_est'] / 1e6:.1f} M instructions to the prompt, "
          f"virtual {res.stats['vtime_s']:.3f} s; SBI {json.dumps(res.stats['sbi'])}")
    if q_runs:
        norm = [[ANSI.sub("", ln).strip() for ln in c.splitlines() if ln.strip()] for c in (e_runs[0][1], q_runs[0][1])]
        only_emu = [ln for ln in norm[0] if ln not in norm[1]]
        only_qemu = [ln for ln in norm[1] if ln not in norm[0]]
        print("first console lines only on emu :", only_emu[:5] or "none")
        print("first console lines only on QEMU:", only_qemu[:5] or "none")


if __name__ == "__main__":
    main()
