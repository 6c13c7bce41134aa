"""Traces survive the end of a run: signals end it cleanly; SIGKILL leaves a readable prefix;
piped input that ends lets a scripted run end by itself (issue 16, items 5 and 6)."""
from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from emu.errors import EXIT_IDLE_EOF
from tests.conftest import emu_cmd

BENCH_SYSCALL = 172  # getpid: what the reference guest's bench loop calls


def read_until(proc: subprocess.Popen, marker: bytes, limit: float = 120.0) -> bytes:
    """Console output up to and including `marker` (a host-time guard only against a stuck run)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    seen = b""
    deadline = time.monotonic() + limit
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in console output: {seen[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            assert chunk, f"emu ended before {marker!r}: {seen[-400:]!r}"
            seen += chunk
    return seen


def start(elf: Path, trace: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(emu_cmd("run", "--smp", "2", "--kernel", str(elf), "--append", "offload=ipi",
                                    "--timeout", "120", "--trace", str(trace), *extra),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def spans_of(trace: Path) -> tuple[dict, subprocess.CompletedProcess]:
    rep = subprocess.run(emu_cmd("trace", "report", "--json", str(trace)), capture_output=True, text=True, timeout=120)
    assert rep.returncode == 0, rep.stderr
    return json.loads(rep.stdout), rep


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_mid_run_writes_the_whole_trace_and_stats(refguest_elf, tmp_path, sig):
    trace = tmp_path / "t.json"
    proc = start(refguest_elf, trace, "--stats")
    try:
        proc.stdin.write(b"bench 100\n")
        proc.stdin.flush()
        read_until(proc, b"bench: 100 calls")
        proc.stdin.write(b"spin 100000\n")  # busy when the signal comes (stdin stays open)
        proc.stdin.flush()
        read_until(proc, b"spin 100000")
        proc.send_signal(sig)
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    err_text = err.decode()
    assert proc.returncode == 128 + sig, err_text
    assert f"{signal.Signals(sig).name} received" in err_text and "Traceback" not in err_text
    stats = json.loads(err_text.strip().splitlines()[-1])  # --stats is still printed
    assert stats["exit_code"] == 128 + sig and stats["reason"] == f"signal {signal.Signals(sig).name}"
    doc = json.loads(trace.read_text())  # complete, valid JSON (Perfetto reads it)
    assert doc["emu"]["complete"] is True and doc["traceEvents"]
    assert doc["emu"]["stats"]["vtime_s"] > 0
    summary, rep = spans_of(trace)
    assert "warning" not in rep.stderr
    assert summary["per_syscall"][str(BENCH_SYSCALL)]["count"] >= 100


def test_sigkill_leaves_a_truncated_trace_that_reports_with_a_warning(refguest_elf, tmp_path):
    trace = tmp_path / "t.json"
    proc = start(refguest_elf, trace)
    try:
        proc.stdin.write(b"bench 100\n")
        proc.stdin.flush()
        read_until(proc, b"bench: 100 calls")  # the trace on disk covers what the console showed
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with pytest.raises(json.JSONDecodeError):
        json.loads(trace.read_text())
    summary, rep = spans_of(trace)
    warning = [ln for ln in rep.stderr.splitlines() if ln.startswith("emu: warning:")]
    assert len(warning) == 1 and "truncated" in warning[0], rep.stderr
    assert summary["per_syscall"][str(BENCH_SYSCALL)]["count"] >= 100
    text = subprocess.run(emu_cmd("trace", "report", str(trace)), capture_output=True, text=True, timeout=120)
    assert text.returncode == 0 and "system calls" in text.stdout


@pytest.mark.parametrize("cut", [0.999, 0.7, 0.3])
def test_any_cut_after_the_first_line_is_readable(refguest_elf, tmp_path, cut):
    """A file cut anywhere (a full disk, a crash mid-write) reads as the events before the cut."""
    trace = tmp_path / "t.json"
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi",
                                 "--timeout", "120", "--trace", str(trace)),
                         input=b"bench 20\npoweroff\n", capture_output=True, timeout=180)
    assert res.returncode == 0, res.stderr.decode()
    full = json.loads(trace.read_text())["emu"]["events"]
    data = trace.read_bytes()
    part = tmp_path / "cut.json"
    part.write_bytes(data[:int(len(data) * cut)])
    from emu.trace.output import read_trace

    emu = read_trace(part)
    assert emu["truncated"] is True
    assert emu["events"] == full[:len(emu["events"])]
    assert 0 < len(emu["events"]) <= len(full)


def test_piped_input_then_idle_exits_by_itself(refguest_elf, tmp_path):
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi",
                                 "--timeout", "120", "--stats"),
                         input=b"bench 10\n", capture_output=True, timeout=180)
    err = res.stderr.decode()
    assert res.returncode == EXIT_IDLE_EOF, err
    assert b"bench: 10 calls" in res.stdout and res.stdout.rstrip().endswith(b"ref>")
    reason = [ln for ln in err.splitlines() if ln.startswith("emu:")]
    assert len(reason) == 1 and "input ended" in reason[0]
    stats = json.loads(err.strip().splitlines()[-1])
    assert stats["reason"] == "idle after end of input"
    again = subprocess.run(res.args, input=b"bench 10\n", capture_output=True, timeout=180)
    assert again.returncode == EXIT_IDLE_EOF
    # deterministic: the same console, and the exit at the same virtual time
    assert again.stdout.replace(b"\r", b"").split(b"bench: ")[0] == res.stdout.replace(b"\r", b"").split(b"bench: ")[0]
    assert json.loads(again.stderr.decode().strip().splitlines()[-1])["vtime_s"] == stats["vtime_s"]


def test_on_idle_eof_wait_keeps_running_and_bad_values_are_bad_input(refguest_elf):
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi",
                                 "--timeout", "3", "--on-idle-eof", "wait"),
                         input=b"help\n", capture_output=True, timeout=120)
    assert res.returncode == 124, res.stderr.decode()  # only --timeout ends it
    bad = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--on-idle-eof", "later"),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("emu: error: --on-idle-eof later")


def test_idle_grace_is_configurable_and_counts_only_idle_time(refguest_elf):
    """`sleep 1500` idles the guest 1.5 s: with exit=3 the run sees its output, then ends."""
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--append", "offload=ipi",
                                 "--timeout", "120", "--on-idle-eof", "exit=3", "--stats"),
                         input=b"sleep 1500\n", capture_output=True, timeout=180)
    assert res.returncode == EXIT_IDLE_EOF, res.stderr.decode()
    assert b"sleep: slept 1500 ms" in res.stdout
    assert json.loads(res.stderr.decode().strip().splitlines()[-1])["vtime_s"] >= 4.5
