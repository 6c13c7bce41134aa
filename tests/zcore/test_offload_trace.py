"""The zcore-offload trace profile on the real offload fork (issue 16, item 1 and acceptance 1).

Needs local builds (never part of the repository): EMU_ZCORE_OFFLOAD_KERNEL (wyfcyx/zCore
async-modules c0cfdfb8, riscv64 release ELF with debug info) and EMU_ZCORE_INITRD (the SFS
rootfs with busybox and /libc-test); EMU_ZCORE_BASELINE_KERNEL (the fork with offload
removed) for the comparison.  Without them these tests skip and say so.

The workload is the issue's: boot, `ls /libc-test/src/math`, end the run with SIGTERM once
the listing's last name is out (the fork's offloaded `exit` returns ENOSYS, so the shell's
children never end and the harts never idle: the run has to be stopped).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from emu.trace.analysis import analyse
from tests.conftest import emu_cmd
from tests.zcore import local_build
from tests.trace.test_survive import read_until

BASELINE = os.environ.get("EMU_ZCORE_BASELINE_KERNEL")
REASON = ("zCore offload trace tests SKIPPED: set EMU_ZCORE_OFFLOAD_KERNEL and EMU_ZCORE_INITRD to a local build "
          "of the offload fork (riscv64 ELF with debug info) and its SFS image")
(KERNEL, INITRD), pytestmark = local_build("EMU_ZCORE_OFFLOAD_KERNEL", "EMU_ZCORE_INITRD", reason=REASON)

STAGES = ["submit", "pickup", "execute", "complete", "wake", "resume"]
HARTS = [0, 1, 1, 1, 1, 0]  # the client hart, the serving hart (event_loop), back
LAST_NAME = b"ynf.exe"  # libc-test's math directory ends with it
LS_CALLS = ("getdents64 (61)", "newfstatat (79)", "writev (66)", "openat (56)")


def traced_session(run_args: list[str], trace: Path, profile: str, steps: list[tuple[bytes, bytes]],
                   label: str) -> tuple[bytes, dict]:
    """Boots `emu run run_args` traced with `profile`, types each step's command and reads up to
    its marker, stops the run with SIGTERM; the console read and the trace's `emu` section."""
    proc = subprocess.Popen(emu_cmd("run", *run_args, "--timeout", "300", "--trace", str(trace),
                                    "--trace-profile", profile),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    start = time.monotonic()
    try:
        read_until(proc, b"/ # ", 240)
        out = b""
        for command, marker in steps:
            proc.stdin.write(command)
            proc.stdin.flush()
            out += read_until(proc, marker, 240)
        proc.send_signal(signal.SIGTERM)
        _rest, err = proc.communicate(timeout=240)
    finally:
        proc.kill()
    print(f"{label} --trace-profile {profile}: {time.monotonic() - start:.1f} host s")
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()[-2000:]
    assert b"panicked" not in out
    return out, json.loads(trace.read_text())["emu"]


def traced_ls(kernel: str, trace: Path, profile: str) -> dict:
    """Boots `kernel`, lists /libc-test/src/math, stops the run; the trace's `emu` section."""
    out, emu = traced_session(["--smp", "2", "-m", "512M", "--kernel", kernel, "--initrd", str(INITRD),
                               "--append", "LOG=warn"], trace, profile,
                              [(b"ls /libc-test/src/math\n", LAST_NAME)], kernel)
    assert b"acos.exe" in out
    return emu


def report(trace: Path, *extra: str) -> subprocess.CompletedProcess:
    res = subprocess.run(emu_cmd("trace", "report", *extra, str(trace)), capture_output=True, text=True, timeout=240)
    assert res.returncode == 0, res.stderr
    return res


@pytest.fixture(scope="module")
def offload_trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zcore-offload") / "offload.json"
    emu = traced_ls(str(KERNEL), path, "zcore-offload")
    assert emu["profile"]["name"] == "zcore-offload"
    return path


def test_every_offloaded_call_has_all_six_stages(offload_trace):
    emu = json.loads(offload_trace.read_text())["emu"]
    spans = [s for s in analyse(tuple(e) for e in emu["events"]).spans if s.end is not None]
    assert len(spans) > 300  # the shell's and ls's calls (~440)
    for s in spans:  # every call the fork makes is offloaded, and each got the six stages, once
        assert [name for name, _t, _h in s.stages] == STAGES, (s.num, s.stages)
        assert [h for _n, _t, h in s.stages] == HARTS, (s.num, s.stages)
        assert s.end >= s.stages[-1][1] >= s.stages[0][1] >= s.start
    summary = json.loads(report(offload_trace, "--json").stdout)
    o = summary["offload"]
    assert o["stages"] == STAGES and o["calls"] == o["of"] == o["all_stages"] == len(spans) and not o["missing"]
    assert o["coverage"] >= 0.95, o["coverage"]
    names = {r["name"] for r in o["per_syscall"].values()}
    assert set(LS_CALLS) <= names, names
    for r in o["per_syscall"].values():
        assert r["coverage"] >= 0.95 and r["all_stages"] == r["count"], r
    text = report(offload_trace).stdout
    assert f"{len(spans)} of {len(spans)} calls, {len(spans)} with all 6 stages" in text
    assert "the stages explain" in text
    for k in ("submit->pickup", "pickup->execute", "execute->complete", "complete->wake", "wake->resume"):
        assert k in text, k
    assert "wait ended by its timer" in text  # the fork wakes the client without an IPI


def test_auto_picks_the_zcore_offload_profile(tmp_path):
    emu = traced_ls(str(KERNEL), tmp_path / "auto.json", "auto")
    assert emu["profile"]["name"] == "zcore-offload"
    o = json.loads(report(tmp_path / "auto.json", "--json").stdout)["offload"]
    assert o["calls"] > 300 and o["all_stages"] == o["calls"] and o["coverage"] >= 0.95


@pytest.mark.skipif(not BASELINE, reason=REASON if not (KERNEL and INITRD) else
                    "set EMU_ZCORE_BASELINE_KERNEL (the fork with offload removed) to compare with it")
def test_compare_with_the_baseline_kernel_per_call(offload_trace, tmp_path):
    base = tmp_path / "baseline.json"
    emu = traced_ls(str(BASELINE), base, "auto")
    assert emu["profile"] is None  # no offload: no profile matches, spans are syscall -> return
    res = report(offload_trace, "--compare", str(base))
    lines = res.stdout.splitlines()
    for name in LS_CALLS:
        row = next(ln for ln in lines if ln.strip().startswith(name + " "))
        cols = row.split()[2:]  # calls and mean ns on each kernel, the difference, the ratio
        assert len(cols) == 6 and int(cols[0]) > 0 and int(cols[2]) > 0 and float(cols[5]) > 0, row
    explain = next(ln for ln in lines if "stages explain:" in ln)
    assert "offload.json" in explain and "baseline.json no stages" in explain
    assert any(ln.strip().startswith("syscall->return ") for ln in lines)  # the baseline's only interval
    print(res.stdout)
