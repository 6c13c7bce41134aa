#!/usr/bin/env python3
"""Boot benchmark for the foundation (issue 3): prints figures, asserts nothing.

1. Guest MIPS on a tight loop under emu (scheduler, native slice hook, 2 harts' machinery)
   against raw Unicorn running the same code with no hooks, in the same run.
2. Debian U-Boot: host seconds to its autoboot banner and to the `=>` prompt, instructions
   executed (emu's estimate from code bytes), Python callbacks by kind; QEMU's seconds to the
   same prompt when qemu-system-riscv64 is installed, and the ratio.
3. U-Boot `sleep 1` (busy-waits on the time CSR): host seconds on emu.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
UBOOT = "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"
LOOP_ITERS = 100_000_000  # 2 instructions each

LOOP_ASM = f"""
    .globl _start
_start:
    li t0, {LOOP_ITERS}
1:  addi t0, t0, -1
    bnez t0, 1b
    .globl done
done:
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
2:  j 2b
"""


def build_loop(work: Path) -> Path:
    src, obj, elf = work / "loop.S", work / "loop.o", work / "loop.elf"
    src.write_text(LOOP_ASM)
    subprocess.run(["riscv64-unknown-elf-as", "-o", str(obj), str(src)], check=True)
    subprocess.run(["riscv64-unknown-elf-ld", "-Ttext=0x80200000", "-o", str(elf), str(obj)], check=True)
    return elf


def raw_unicorn_mips(elf: Path) -> float:
    import unicorn

    from loader.image import load_kernel

    k = load_kernel(elf, 0x80000000, 64 << 20)
    uc = unicorn.Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
    uc.mem_map(0x80000000, 64 << 20)
    for addr, data in k.segments:
        uc.mem_write(addr, data)
    t = time.perf_counter()
    uc.emu_start(k.entry, k.symbols.by_name["done"])
    return 2 * LOOP_ITERS / (time.perf_counter() - t) / 1e6


def emu_mips(elf: Path, harts: int) -> float:
    from emu.board import BoardSpec
    from emu.machine import Machine, MachineOptions
    from loader.image import load_kernel

    spec = BoardSpec(harts=harts, ram_size=64 << 20)
    k = load_kernel(elf, spec.ram.base, spec.ram.size)
    m = Machine(spec, k, None, MachineOptions())
    t = time.perf_counter()
    res = m.run()
    assert res.exit_code == 0, res.reason
    return 2 * LOOP_ITERS / (time.perf_counter() - t) / 1e6


def uboot_emu() -> dict:
    t0 = time.perf_counter()
    child = pexpect.spawn(sys.executable, ["-m", "emu", "run", "--smp", "2", "-m", "512M", "--kernel", UBOOT,
                                           "--timeout", "120", "--stats"], timeout=60)
    child.expect("Hit any key to stop autoboot")
    banner = time.perf_counter() - t0
    child.send("\r")
    child.expect("=> ")
    prompt = time.perf_counter() - t0
    t1 = time.perf_counter()
    child.sendline("sleep 1")
    child.expect("=> ")
    sleep1 = time.perf_counter() - t1
    child.sendline("poweroff")
    child.expect(pexpect.EOF)
    stats = json.loads(child.before.decode().strip().splitlines()[-1])
    return {"banner_s": banner, "prompt_s": prompt, "sleep1_s": sleep1, "stats": stats}


def uboot_qemu() -> float | None:
    qemu = shutil.which("qemu-system-riscv64")
    if not qemu:
        return None
    t0 = time.perf_counter()
    child = pexpect.spawn(qemu, ["-M", "virt", "-smp", "2", "-m", "512M", "-nographic", "-bios", "default",
                                 "-kernel", UBOOT], timeout=60)
    child.expect("Hit any key to stop autoboot")
    child.send("\r")
    child.expect("=> ")
    took = time.perf_counter() - t0
    child.sendline("poweroff")
    child.expect(pexpect.EOF)
    return took


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        elf = build_loop(Path(tmp))
        raw = [raw_unicorn_mips(elf) for _ in range(3)]
        one = [emu_mips(elf, 1) for _ in range(3)]
        two = [emu_mips(elf, 2) for _ in range(3)]
    print(f"tight loop, {2 * LOOP_ITERS / 1e6:.0f} M instructions (median of 3):")
    print(f"  raw Unicorn (no hooks)      {statistics.median(raw):8.0f} MIPS")
    print(f"  emu --smp 1                 {statistics.median(one):8.0f} MIPS  "
          f"({statistics.median(one) / statistics.median(raw):.2f}x raw)")
    print(f"  emu --smp 2 (hart 1 idle)   {statistics.median(two):8.0f} MIPS  "
          f"({statistics.median(two) / statistics.median(raw):.2f}x raw)")
    if not Path(UBOOT).exists():
        print("U-Boot not installed (apt-get install u-boot-qemu): skipped")
        return
    runs = [uboot_emu() for _ in range(3)]
    prompt = statistics.median(r["prompt_s"] for r in runs)
    print("Debian U-Boot, --smp 2 -m 512M (median of 3):")
    print(f"  emu: autoboot banner {statistics.median(r['banner_s'] for r in runs):.2f} s, "
          f"prompt {prompt:.2f} s (includes the 2 s countdown, skipped in virtual time)")
    st = runs[0]["stats"]
    print(f"  emu: ~{st['instructions_est'] / 1e6:.1f} M instructions, {st['switches']} hart switches, "
          f"SBI {st['sbi']}, rdtime traps {st['harts']['0'].get('rdtime', 0)}, "
          f"MMIO {dict((k, v) for k, v in st['mmio'].items() if v)}")
    print(f"  emu: `sleep 1` took {statistics.median(r['sleep1_s'] for r in runs):.2f} host s")
    q = [t for t in (uboot_qemu() for _ in range(3)) if t is not None]
    if q:
        print(f"  QEMU: prompt {statistics.median(q):.2f} s (countdown in real time); "
              f"ratio emu/QEMU {prompt / statistics.median(q):.2f}")
    else:
        print("  QEMU not installed: no ratio (apt-get install qemu-system-misc)")


if __name__ == "__main__":
    main()
