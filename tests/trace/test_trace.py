"""Tracing the reference guest's offload protocol (issue 5 acceptance)."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from emu.trace.analysis import analyse
from tests.conftest import ROOT, emu_cmd

STAGES = ["submit", "pickup", "execute", "complete", "wake", "resume"]
BENCH_SYSCALL = 172  # getpid: the reference guest's bench loop makes N of them
SCRIPT = b"bench 100\npoweroff\n"


def traced(elf: Path, mode: str, path: Path, *extra: str) -> dict:
    res = subprocess.run(emu_cmd("run", "--smp", "2", "--kernel", str(elf), "--append", f"offload={mode}",
                                 "--timeout", "90", "--trace", str(path), *extra),
                         input=SCRIPT, capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr.decode()
    assert b"bench: 100 calls" in res.stdout
    return json.loads(path.read_text())


def bench_spans(doc: dict) -> list:
    spans = analyse(tuple(e) for e in doc["emu"]["events"]).spans
    return [s for s in spans if s.num == BENCH_SYSCALL and s.end is not None]


@pytest.mark.parametrize("mode", ["poll", "ipi"])
def test_every_bench_call_has_all_six_stages_across_harts(refguest_elf, tmp_path, mode):
    doc = traced(refguest_elf, mode, tmp_path / "t.json")
    spans = bench_spans(doc)
    assert len(spans) == 101  # 100 timed getpid calls + the warm-up call
    events = doc["emu"]["events"]
    for s in spans[-100:]:
        assert [name for name, _t, _h in s.stages] == STAGES
        harts = [h for _n, _t, h in s.stages]
        assert harts == [0, 1, 1, 1, 1, 0]  # hart 0 -> hart S (1) -> hart 0
        total = s.end - s.start
        assert sum(t1 - t0 for _n, t0, t1, _a, _b in s.intervals()) >= 0.95 * total
    if mode == "ipi":
        # Between submit and pickup hart 0 sends an IPI to hart 1; between wake and resume, hart 1 to hart 0.
        order = [(e[2], e[1], e[3].get("stage"), e[3].get("to")) for e in events if e[2] in ("stage", "ipi")]
        for i, (kind, hart, stage, _to) in enumerate(order):
            if kind == "stage" and stage == "submit":
                nxt = order[i + 1: i + 3]
                assert ("ipi", 0, None, 1) in nxt, nxt
            if kind == "stage" and stage == "wake":
                assert order[i + 1] == ("ipi", 1, None, 0), order[i: i + 3]


def test_chrome_trace_format_and_flows(refguest_elf, tmp_path):
    doc = traced(refguest_elf, "ipi", tmp_path / "t.json")
    evs = doc["traceEvents"]
    assert evs
    for e in evs:
        for key in ("ph", "pid", "tid", "name"):
            assert key in e, e
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
        if e["ph"] == "X":
            assert e["dur"] >= 0
    names = {e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {"hart0", "hart1 (S)"}
    outs = {e["bind_id"]: e for e in evs if e.get("flow_out")}
    ins = {e["bind_id"]: e for e in evs if e.get("flow_in")}
    assert outs and set(outs) == set(ins)
    tids = {(outs[i]["tid"], ins[i]["tid"]) for i in outs}
    assert tids == {(0, 1), (1, 0)}
    for i in outs:
        assert ins[i]["ts"] >= outs[i]["ts"] + outs[i]["dur"] - 1e-3


def test_two_runs_give_byte_identical_traces(refguest_elf, tmp_path):
    traced(refguest_elf, "ipi", tmp_path / "a.json")
    traced(refguest_elf, "ipi", tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_report_and_compare(refguest_elf, tmp_path):
    traced(refguest_elf, "off", tmp_path / "off.json")
    traced(refguest_elf, "poll", tmp_path / "poll.json")
    rep = subprocess.run(emu_cmd("trace", "report", str(tmp_path / "poll.json")), capture_output=True, text=True)
    assert rep.returncode == 0, rep.stderr
    assert f"getpid ({BENCH_SYSCALL})" in rep.stdout
    for k in ("submit->pickup", "wake->resume", "receiver idle (WFI)", "hart 0:", "hart 1:"):
        assert k in rep.stdout
    cmp = subprocess.run(emu_cmd("trace", "report", str(tmp_path / "off.json"), "--compare",
                                 str(tmp_path / "poll.json")), capture_output=True, text=True)
    assert cmp.returncode == 0, cmp.stderr
    line = next(ln for ln in cmp.stdout.splitlines() if ln.strip().startswith(f"getpid ({BENCH_SYSCALL}) "))
    cols = line.split()  # name (2 words), calls and mean ns for each trace, the difference, the ratio
    assert len(cols) == 8 and int(cols[2]) == int(cols[4]) == 101 and float(cols[3]) > 0 and float(cols[5]) > 0
    assert float(cols[6]) == pytest.approx(float(cols[5]) - float(cols[3]), abs=1)
    assert "off.json" in cmp.stdout and "poll.json" in cmp.stdout
    explain = next(ln for ln in cmp.stdout.splitlines() if "stages explain:" in ln)
    assert explain.count("% of 1") == 2  # both run the stage functions (offload=off: all on hart 0)


@pytest.mark.parametrize("content", [b"", b"{\"traceEvents\": [", b"not json at all", b"{\"traceEvents\": []}",
                                     b"{\"emu\": {\"format\": \"emu-trace\", \"events\": [[1, 2]]}}"])
def test_corrupt_trace_gives_one_line_and_exit_2(tmp_path, content):
    bad = tmp_path / "bad.json"
    bad.write_bytes(content)
    res = subprocess.run(emu_cmd("trace", "report", str(bad)), capture_output=True, text=True)
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr


def test_unknown_event_group_is_bad_input(refguest_elf, tmp_path):
    res = subprocess.run(emu_cmd("run", "--kernel", str(refguest_elf), "--trace", str(tmp_path / "t.json"),
                                 "--trace-events", "bogus"), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "bogus" in res.stderr


def test_line_inline_and_watch_points_from_dwarf(refguest_elf, tmp_path):
    """Profile points other than symbol entries: a source line, an inlined-function entry and a
    data watch (what zCore's LTO builds need)."""
    src = (ROOT / "images" / "refguest" / "kernel" / "offload.c").read_text().splitlines()
    wake_line = next(i for i, ln in enumerate(src, 1) if "struct task *t = req->task;" in ln)
    profile = tmp_path / "p.toml"
    profile.write_text(f"""
name = "dwarf-test"
stages = ["submit", "wake"]
[[point]]
stage = "submit"
inline = "ref_submit"
key = "a0"
[[point]]
stage = "wake"
line = "offload.c:{wake_line}"
key = "a0"
[[point]]
stage = "queued"
watch = "ref_sq+16"
size = 8
""")
    doc = traced(refguest_elf, "ipi", tmp_path / "t.json", "--trace-profile", str(profile))
    stages = [e[3]["stage"] for e in doc["emu"]["events"] if e[2] == "stage"]
    assert stages.count("submit") >= 100
    assert stages.count("wake") >= 100
    assert stages.count("queued") >= 100  # ref_sq.head written on every submit


def test_plot_writes_a_png(refguest_elf, tmp_path):
    pytest.importorskip("matplotlib")
    traced(refguest_elf, "ipi", tmp_path / "t.json")
    res = subprocess.run(emu_cmd("trace", "plot", str(tmp_path / "t.json"), "-o", str(tmp_path / "p.png")),
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
