"""The zcore-offload-x86_64 trace profile on the offload fork's x86_64 build (issue 18).

Needs a local build (never part of the repository): EMU_ZCORE_X86_OFFLOAD_KERNEL (wyfcyx/zCore
async-modules c0cfdfb8 built for x86_64, release ELF with debug info) and EMU_ZCORE_X86_INITRD
(the x86_64 SFS rootfs with busybox).  Without them these tests skip and say so.

The workload: boot with --smp 2, `ls /` and `busybox echo`, then SIGTERM (hart 1 polls the
offload queue and the fork's offloaded `exit` returns ENOSYS, so ls's `_Exit` calls it again
and again: the run never idles and has to be stopped).
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from emu.trace.analysis import analyse
from tests.conftest import emu_cmd
from tests.zcore import local_build
from tests.zcore.test_offload_trace import HARTS, STAGES, report, traced_session

REASON = ("zCore x86_64 offload trace tests SKIPPED: set EMU_ZCORE_X86_OFFLOAD_KERNEL and EMU_ZCORE_X86_INITRD "
          "to a local x86_64 build of the offload fork (ELF with debug info) and its SFS image")
(KERNEL, INITRD), pytestmark = local_build("EMU_ZCORE_X86_OFFLOAD_KERNEL", "EMU_ZCORE_X86_INITRD", reason=REASON)

LS_CALLS = ("getdents64 (217)", "writev (20)", "ioctl (16)", "open (2)")  # x86_64 numbers


def traced_run(trace: Path, profile: str) -> dict:
    """Boots the fork, runs `ls /` and `busybox echo`, stops the run; the trace's `emu` section."""
    _out, emu = traced_session(["--arch", "x86_64", "--smp", "2", "-m", "1G", "--kernel", str(KERNEL),
                                "--initrd", str(INITRD), "--append", "LOG=warn"], trace, profile,
                               [(b"ls /\n", b"libc-test"), (b"busybox echo offload-$((6*7))\n", b"offload-42")],
                               "fork x86_64")
    return emu


@pytest.fixture(scope="module")
def offload_trace(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zcore-offload-x86") / "offload.json"
    emu = traced_run(path, "auto")  # auto must pick the x86_64 profile, not riscv's zcore-offload
    assert emu["profile"]["name"] == "zcore-offload-x86_64"
    assert emu["syscall_abi"] == "linux-x86_64"
    return path


def test_every_offloaded_call_has_all_six_stages_on_the_right_cpus(offload_trace):
    emu = json.loads(offload_trace.read_text())["emu"]
    spans = [s for s in analyse(tuple(e) for e in emu["events"]).spans if s.end is not None]
    assert len(spans) > 150  # the shell's, ls's and echo's calls
    for s in spans:  # every call the fork makes is offloaded, and each got the six stages, once
        assert [name for name, _t, _h in s.stages] == STAGES, (s.num, s.stages)
        assert [h for _n, _t, h in s.stages] == HARTS, (s.num, s.stages)
        assert s.end >= s.stages[-1][1] >= s.stages[0][1] >= s.start
        times = [t for _n, t, _h in s.stages]
        assert times[1:5] == sorted(times[1:5]), s.stages  # on the server; pickup may precede submit (polling)
    # only `execute` fires again: a call that blocks on the server (the shell's poll of the console)
    # is polled anew after its wake-up
    assert all(set(s.repeats) <= {"execute"} for s in spans), [(s.num, s.repeats) for s in spans if s.repeats]


def test_one_key_ties_each_call_across_the_cpus(offload_trace):
    """Independently of the analysis: per key (the client future's &completed), the stage events
    come in whole submit, pickup, execute (again while the call blocks), complete, wake, resume
    cycles, in order and on the right CPUs, and a cycle's submit, pickup and execute read the
    same system call number (a key comes back as the allocator reuses the future's memory)."""
    events = [e for e in json.loads(offload_trace.read_text())["emu"]["events"] if e[2] == "stage"]
    by_key: dict[int, list[tuple[str, int, int | None]]] = defaultdict(list)
    for _t, hart, _kind, f in events:
        assert isinstance(f.get("key"), int) and f["key"] > 0xFFFF_FF00_0000_0000, f  # a kernel heap address
        by_key[f["key"]].append((f["stage"], hart, f.get("num")))
    cycles = 0
    for key, evs in by_key.items():
        text = " ".join(f"{stage}@{hart}" for stage, hart, _num in evs)
        cycle = r"submit@0 pickup@1 (?:execute@1 )+complete@1 wake@1 resume@0"
        assert re.fullmatch(rf"(?:{cycle} ?)*(?:submit@0.*)?", text), (hex(key), text)  # the run stops mid-call
        nums = [num for stage, _h, num in evs if stage in ("submit", "pickup", "execute")]
        runs = re.findall(cycle, text)
        cycles += len(runs)
        i = 0
        for run in runs:
            n = 2 + run.count("execute@1")
            assert len(set(nums[i:i + n])) == 1, (hex(key), nums[i:i + n])
            i += n
    assert cycles > 150


def test_report_names_x86_64_calls_and_the_offload_split(offload_trace):
    summary = json.loads(report(offload_trace, "--json").stdout)
    o = summary["offload"]
    assert o["stages"] == STAGES and o["calls"] == o["of"] == o["all_stages"] and not o["missing"]
    assert o["coverage"] >= 0.95, o["coverage"]
    names = {r["name"] for r in o["per_syscall"].values()}
    assert set(LS_CALLS) <= names, names
    text = report(offload_trace).stdout
    assert f"{o['calls']} of {o['calls']} calls, {o['calls']} with all 6 stages" in text
    for k in ("submit->pickup", "pickup->execute", "execute->complete", "complete->wake", "wake->resume"):
        assert k in text, k
    assert "wait ended by its timer" in text  # the fork wakes the client without an IPI
    print(text)


def test_an_explicit_riscv_profile_on_x86_is_one_line_and_exit_2(tmp_path):
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--smp", "2", "-m", "1G", "--kernel", str(KERNEL),
                                 "--initrd", str(INITRD), "--timeout", "30", "--trace", str(tmp_path / "t.json"),
                                 "--trace-profile", "zcore-offload"),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "written for riscv64" in res.stderr and len(res.stderr.splitlines()) == 1, \
        res.stderr
