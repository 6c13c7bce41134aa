#!/usr/bin/env python3
"""Dev aid: boot the reference guest on QEMU in each offload mode and drive the shell.

    python3 images/refguest/qemu_check.py [--image elf|bin] [--mode poll|ipi|off ...] [-v]

Builds nothing: run `make -C images/refguest` first. Exits non-zero on the first failure.
"""
import argparse
import os
import re
import sys
import time

import pexpect

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.path.join(HERE, "..", "build", "refguest")
PROMPT = "ref> "


def qemu(image, smp, append):
    return ["qemu-system-riscv64", "-M", "virt", "-smp", str(smp), "-m", "256M",
            "-nographic", "-bios", "default", "-kernel", image, "-append", append]


def spawn(cmd, verbose):
    child = pexpect.spawn(cmd[0], cmd[1:], encoding="utf-8", timeout=20,
                          codec_errors="replace")
    if verbose:
        child.logfile_read = sys.stdout
    return child


def run(child, line, expect=PROMPT):
    """type a line, return everything printed up to the next prompt"""
    child.send(line + "\r")
    child.expect_exact(expect)
    return child.before


def check_mode(image, mode, verbose):
    t0 = time.time()
    child = spawn(qemu(image, 2, f"offload={mode}"), verbose)
    child.expect_exact(PROMPT)
    boot = time.time() - t0
    assert f"refguest: offload={mode}" in child.before, child.before
    hart = "0" if mode == "off" else "1"

    out = run(child, "help")
    assert "poweroff" in out and "bench" in out, out
    out = run(child, "hello")
    assert "hello, world! (pid 2)" in out, out
    out = run(child, "getcpu")
    assert f"executed on hart {hart}" in out, out
    out = run(child, "bench 100")
    m = re.search(r"bench: 100 calls, mean (\d+) ticks, executed on hart (\d)", out)
    assert m and m.group(2) == hart, out
    ticks = int(m.group(1))
    out = run(child, "sleep 50")
    assert "sleep: slept 50 ms" in out, out

    # read()-based echo
    child.send("echo\r")
    child.expect_exact("echo: type a line")
    child.send("the quick brown fox\r")
    child.expect_exact('echo: you typed "the quick brown fox"')
    child.expect_exact(PROMPT)

    # spin in the background: the shell keeps answering (timer preemption)
    out = run(child, "spin 1500 &")
    m = re.search(r"\[(\d+)\] spin 1500", out)
    assert m, out
    spin_pid = m.group(1)
    t = time.time()
    out = run(child, "hello")
    assert "hello, world!" in out, out
    out = run(child, "ps")
    assert re.search(rf"\s{spin_pid}\s+1\s+(running|ready|syscall \w+)\s+spin", out), out
    assert re.search(r"\s1\s+0\s+syscall wait\s+shell", out), out
    answered = time.time() - t
    assert answered < 1.5, f"shell took {answered:.2f}s beside spin"
    out = run(child, "wait")
    assert "spin: done after 1500 ms" in out and f"[{spin_pid}] done, exit 0" in out, out

    out = run(child, "nosuch")
    assert "unknown command" in out, out

    child.send("poweroff\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.exitstatus
    print(f"ok   offload={mode:<4} {os.path.basename(image)}: boot {boot:.2f}s, "
          f"bench 100 mean {ticks} ticks")


def check_refusal(image, mode, verbose):
    child = spawn(qemu(image, 1, f"offload={mode}"), verbose)
    child.expect_exact(f"refguest: offload={mode} needs 2 harts (found 1)")
    child.expect(pexpect.EOF)
    child.close()
    print(f"ok   -smp 1 offload={mode} refused (qemu exit {child.exitstatus})")


def check_smp1_default(image, verbose):
    child = spawn(qemu(image, 1, ""), verbose)
    child.expect_exact("refguest: offload=off")
    child.expect_exact(PROMPT)
    out = run(child, "getcpu")
    assert "executed on hart 0" in out, out
    child.send("poweroff\r")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    print("ok   -smp 1 default mode is off")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image", choices=["elf", "bin"], action="append")
    ap.add_argument("--mode", choices=["poll", "ipi", "off"], action="append")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    for kind in a.image or ["elf", "bin"]:
        image = os.path.join(BUILD, f"refguest.{kind}")
        if not os.path.exists(image):
            sys.exit(f"{image} missing: run make -C images/refguest")
        for mode in a.mode or ["poll", "ipi", "off"]:
            check_mode(image, mode, a.verbose)
        for mode in ["poll", "ipi"]:
            check_refusal(image, mode, a.verbose)
        check_smp1_default(image, a.verbose)


if __name__ == "__main__":
    main()
