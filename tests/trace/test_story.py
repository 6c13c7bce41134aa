"""The trace tells its story: per thread, what each hand-off waited for, what was still in
flight at the end (issue 16, items 2-4), on the reference guest."""
from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from emu.errors import EXIT_IDLE_EOF
from emu.trace.plot import human_ns, log_range
from tests.conftest import emu_cmd
from tests.trace.test_survive import read_until, start


def run_traced(elf: Path, trace: Path, script: bytes, mode: str = "ipi") -> subprocess.CompletedProcess:
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(elf), "--append", f"offload={mode}",
                                 "--timeout", "120", "--trace", str(trace)),
                         input=script, capture_output=True, timeout=180)
    return res


def report_json(trace: Path, *extra: str) -> dict | list:
    rep = subprocess.run(emu_cmd("trace", "report", "--json", *extra, str(trace)), capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr
    return json.loads(rep.stdout)


@pytest.fixture(scope="module")
def several_tasks(refguest_elf, tmp_path_factory) -> Path:
    trace = tmp_path_factory.mktemp("story") / "tasks.json"
    res = run_traced(refguest_elf, trace, b"bench 60 &\nbench 30 &\nhello\nwait\npoweroff\n")
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.count(b"bench: ") == 2 and b"hello, world!" in res.stdout
    return trace


def test_report_by_thread(several_tasks):
    rows = report_json(several_tasks, "--by", "thread")
    pids = [r["pid"] for r in rows]
    assert len(rows) >= 4 and len(set(pids)) == len(pids) and None not in pids  # shell, 2 x bench, hello
    benches = sorted((r for r in rows if r["calls"][0]["name"] == "getpid (172)"), key=lambda r: -r["count"])
    assert [b["calls"][0]["count"] for b in benches] == [61, 31]  # N timed calls + the warm-up
    assert rows[0] is not None and rows[0]["count"] == max(r["count"] for r in rows)  # busiest first
    for r in rows:
        assert r["rate_per_ms"] > 0 and r["window_ns"] > 0
        lat = r["latency"]
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] and lat["count"] == r["count"]
        assert r["rate_per_ms"] == pytest.approx(r["count"] * 1e6 / r["window_ns"])
    text = subprocess.run(emu_cmd("trace", "report", "--by", "thread", str(several_tasks)), capture_output=True,
                          text=True, timeout=120)
    assert text.returncode == 0 and "per ms" in text.stdout and "getpid (172) 61" in text.stdout


def test_report_names_everything(several_tasks):
    rep = subprocess.run(emu_cmd("trace", "report", str(several_tasks)), capture_output=True, text=True, timeout=120)
    out = rep.stdout
    for name in ("getpid (172)", "write (64)", "spawn (502)", "wait (503)", "SBI TIME set_timer",
                 "SBI HSM hart_start", "SBI IPI send_ipi", "WFI park", "per thread"):
        assert name in out, name
    hart_rows = [ln for ln in out.splitlines() if ln.startswith("  hart ")]
    assert hart_rows and not any(" hart " in ln.split(":", 1)[1] and "hart start" not in ln for ln in hart_rows)
    doc = json.loads(several_tasks.read_text())
    slices = {e["name"] for e in doc["traceEvents"] if e.get("cat") == "syscall"}
    assert {"getpid (172)", "spawn (502)"} <= slices  # the same names in Perfetto
    assert any(e["name"].startswith("WFI wake (ipi") for e in doc["traceEvents"] if e.get("cat") == "hart")


def test_trace_time_is_the_guest_virtual_time(several_tasks):
    """Event times are virtual ns at the run's --mips (they once assumed 30 code bytes per
    100 ns tick, 10x too long at the default 1000 MIPS's 300)."""
    emu = json.loads(several_tasks.read_text())["emu"]
    end_ns = max(e[0] for e in emu["events"])
    vtime_ns = emu["stats"]["vtime_s"] * 1e9
    assert vtime_ns > 0 and 0.9 * vtime_ns <= end_ns <= 1.05 * vtime_ns + 100_000, (end_ns, vtime_ns)


def test_plot_on_several_tasks(several_tasks, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "p.png"
    res = subprocess.run(emu_cmd("trace", "plot", str(several_tasks), "-o", str(out)), capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_log_axis_range_and_ticks_are_readable():
    lo, hi = log_range([1273, 1273, 1274])  # the 1.2730-1.2740 us axis of old
    assert hi / lo >= 4 and lo <= 1273 and hi >= 1274
    assert human_ns(1000) == "1 µs" and human_ns(500) == "500 ns" and human_ns(2e6) == "2 ms"


@pytest.mark.parametrize("mode,expect", [("ipi", "IPI from hart 1"), ("poll", "polling (no WFI)")])
def test_what_ended_each_handoff_wait(refguest_elf, tmp_path, mode, expect):
    trace = tmp_path / "t.json"
    res = run_traced(refguest_elf, trace, b"bench 50\npoweroff\n", mode)
    assert res.returncode == 0, res.stderr.decode()
    summary = report_json(trace)
    wake = summary["handoffs"]["wake->resume"]
    ended = wake["wait_ended_by"]
    assert sum(v["count"] for v in ended.values()) == wake["latency"]["count"]
    top = max(ended, key=lambda k: ended[k]["count"])
    assert top == expect, ended
    if mode == "ipi":
        assert ended[expect]["mean_idle"] > 0  # hart 0 slept in WFI until hart 1's IPI
    else:
        assert ended[expect]["mean_idle"] == 0


def test_requests_in_flight_when_the_run_ends(refguest_elf, tmp_path):
    trace = tmp_path / "t.json"
    res = run_traced(refguest_elf, trace, b"sleep 3000\n")
    assert res.returncode == EXIT_IDLE_EOF, res.stderr.decode()
    flight = report_json(trace)["in_flight"]
    sleeps = [r for r in flight if r["name"] == "sleep_ms (501)"]
    assert len(sleeps) == 1 and sleeps[0]["last_stage"] == "execute" and sleeps[0]["stage_hart"] == 1
    assert sleeps[0]["waited_ns"] >= 900_000_000  # the idle second, at least
    rep = subprocess.run(emu_cmd("trace", "report", str(trace)), capture_output=True, text=True, timeout=120)
    assert "requests in flight" in rep.stdout and "sleep_ms (501) from pid" in rep.stdout


def test_signal_report_lists_requests_in_flight_with_symbols(refguest_elf, tmp_path):
    proc = start(refguest_elf, tmp_path / "t.json")
    try:
        proc.stdin.write(b"sleep 5000 &\nps\n")
        proc.stdin.flush()
        read_until(proc, b"syscall sleep_ms")  # ps shows the sleeper parked in its call
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    text = err.decode()
    assert proc.returncode == 128 + signal.SIGTERM, text
    line = next(ln for ln in text.splitlines() if "sleep_ms (501)" in ln)
    assert "last stage execute on hart 1" in line and "<ref_execute>" in line
    assert "requests in flight:" in text and "Traceback" not in text
