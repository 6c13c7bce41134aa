#!/usr/bin/env python3
"""Reverse execution cost (issue 20): snapshots and a reverse-continue over ~1 virtual second.

The reference guest runs `spin MS` (a CPU-bound program; hart 1 serves its few system
calls) under gdb with
`--snapshot-every MS`; after about one virtual second gdb reverse-continues to the
breakpoint where the bench program started.  Printed (nothing is asserted):
- fork snapshots: count, host ms per fork, private memory they hold, per virtual second;
- the alternative, a page-level copy: host ms to copy the guest RAM once (what a snapshot
  costs without dirty-page tracking, which the engine does not offer);
- reverse-continue over the virtual second: host seconds (target < 5 s).

    PYTHONPATH=. scripts/bench_reverse.py [--every 10] [--seconds 1.0] [--ram 256M]
"""
from __future__ import annotations

import argparse
import mmap
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pexpect

ROOT = Path(__file__).resolve().parent.parent
ELF = ROOT / "images" / "build" / "refguest" / "refguest.elf"


def page_copy_ms(size: int) -> float:
    """Host ms to copy `size` bytes of touched anonymous memory (a page-level snapshot)."""
    src = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, size, mmap.PAGESIZE):
        src[off] = 1
    start = time.perf_counter()
    copy = bytes(src)
    took = (time.perf_counter() - start) * 1000
    del copy
    src.close()
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--every", type=float, default=10.0, help="--snapshot-every (virtual ms)")
    ap.add_argument("--seconds", type=float, default=1.0, help="virtual seconds to go back over")
    ap.add_argument("--ram", default="256M")
    args = ap.parse_args()
    gdb_exe = shutil.which("gdb-multiarch")
    if gdb_exe is None or not ELF.exists():
        print("needs gdb-multiarch and images/build/refguest/refguest.elf (make -C images/refguest)")
        return 2
    env = {**os.environ, "TERM": "dumb"}
    emu = subprocess.Popen([sys.executable, "-m", "emu", "run", "--smp", "2", "-m", args.ram, "--kernel", str(ELF),
                            "--append", "offload=ipi", "--timeout", "600", "--gdb", "127.0.0.1:0", "--gdb-wait",
                            "--snapshot-every", str(args.every), "--snapshot-keep", "1000"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    port = int(re.search(rb":(\d+)", emu.stderr.readline()).group(1))
    assert emu.stdin is not None
    emu.stdin.write(f"spin {int(args.seconds * 1000) + 500}\n".encode())
    emu.stdin.flush()
    gdb = pexpect.spawn(gdb_exe, ["-q", "-nx", "-ex", "set style enabled off", "-ex", "set pagination off",
                                  "-ex", "set confirm off", "-ex", f"target remote 127.0.0.1:{port}", str(ELF)],
                        timeout=120, env=env)
    prompt = r"\(gdb\) "

    def cmd(line: str) -> str:
        gdb.sendline(line)
        gdb.expect(prompt)
        return gdb.before.decode(errors="replace")

    def vtime() -> float:
        return float(re.search(r"virtual time ([\d.]+)", cmd("monitor vtime")).group(1))
    try:
        gdb.expect(prompt)
        cmd("break task_start")
        cmd("continue")  # the shell starts
        assert "pid=2" in cmd("continue"), "the spin program did not start"  # all input has been read
        start_v = vtime()
        cmd("delete")
        host_run = 0.0
        while vtime() < start_v + args.seconds:
            gdb.sendline("continue")
            gdb.expect("Continuing")
            t0 = time.perf_counter()
            time.sleep(0.5)
            gdb.sendcontrol("c")
            gdb.expect(prompt)
            host_run += time.perf_counter() - t0
            print(f"... {vtime() - start_v:.3f} virtual s", file=sys.stderr)
        end_v = vtime()
        snaps = cmd("monitor snapshots")
        m = re.search(r"(\d+) snapshots, (\d+) KiB private, fork ([\d.]+) ms mean", snaps)
        count, kib, fork_ms = int(m.group(1)), int(m.group(2)), float(m.group(3))
        cmd("break task_start")
        t0 = time.perf_counter()
        out = cmd("reverse-continue")
        took = time.perf_counter() - t0
        assert "task_start" in out, out
        gdb.sendline("kill")
        gdb.expect(prompt)
        gdb.sendline("quit")
        gdb.expect(pexpect.EOF)
    finally:
        gdb.close()
        emu.kill()
        emu.wait()
    span = end_v - start_v
    ram = int(args.ram[:-1]) << {"M": 20, "G": 30}[args.ram[-1]]
    print(f"run: {span:.3f} virtual s in {host_run:.2f} host s (spin, --smp 2, --snapshot-every {args.every:g} ms)")
    print(f"fork snapshots: {count} alive, {fork_ms:.2f} ms per fork, {kib / 1024:.1f} MiB private in all "
          f"({kib / max(count, 1):.0f} KiB each), {count / span:.0f} per virtual s, {kib / 1024 / span:.1f} MiB per virtual s")
    print(f"page-level copy of {args.ram} RAM: {page_copy_ms(ram):.1f} ms and {ram >> 20} MiB per snapshot")
    print(f"reverse-continue over {span:.3f} virtual s: {took:.2f} host s (target < 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
