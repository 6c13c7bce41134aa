"""Matching stage events to system calls when a call blocks on the serving hart, and the share
of end-to-end latency the stages explain (issue 16, item 1), on synthetic events: the shapes
zCore's offload fork produces (tests/zcore/test_offload_trace.py checks the real thing)."""
from __future__ import annotations

from emu.trace.analysis import analyse
from emu.trace.report import format_compare, format_report, summarise

STAGES = ["submit", "pickup", "execute", "complete", "wake", "resume"]
HARTS = {"submit": 0, "pickup": 1, "execute": 1, "complete": 1, "wake": 1, "resume": 0}


def call(events: list, thread: str, num: int, key: int, times: dict[str, int], start: int, end: int) -> None:
    events.append([start, 0, "syscall", {"num": num, "thread": thread, "args": [0] * 6}])
    for stage, t in times.items():
        events.append([t, HARTS[stage], "stage", {"stage": stage, "key": key}])
    events.append([end, 0, "sysret", {"thread": thread, "ret": 0}])


def blocked_and_quick() -> list:
    """wait4 (thread A) blocks on hart 1 and is polled again after a quick getpid (thread B)
    overtook it; the second `execute` of the wait4 must not end its match."""
    ev: list = []
    ev.append([0, 0, "syscall", {"num": 260, "thread": "A", "args": [0] * 6}])
    for stage, t in (("submit", 10), ("pickup", 20), ("execute", 30)):
        ev.append([t, HARTS[stage], "stage", {"stage": stage, "key": 0xA}])
    call(ev, "B", 172, 0xB, {"submit": 50, "pickup": 60, "execute": 70, "complete": 80, "wake": 80, "resume": 90},
         40, 100)
    for stage, t in (("execute", 110), ("complete", 120), ("wake", 120), ("resume", 130)):
        ev.append([t, HARTS[stage], "stage", {"stage": stage, "key": 0xA}])
    ev.append([140, 0, "sysret", {"thread": "A", "ret": 0}])
    # the same key again (the allocator reuses the future's address) is a new call
    call(ev, "A", 61, 0xA, {"submit": 160, "pickup": 170, "execute": 180, "complete": 190, "wake": 190,
                            "resume": 195}, 150, 200)
    return ev


def test_a_blocked_call_polled_again_keeps_its_match_and_first_execute():
    spans = analyse(tuple(e) for e in blocked_and_quick()).spans
    assert [s.num for s in spans] == [260, 172, 61]
    for s in spans:
        assert [name for name, _t, _h in s.stages] == STAGES, s
    wait4 = spans[0]
    assert dict((n, t) for n, t, _h in wait4.stages)["execute"] == 30  # the first poll counts
    assert wait4.repeats == {"execute": 1}


def test_report_states_the_share_the_stages_explain_per_call():
    emu = {"events": blocked_and_quick(), "profile": {"name": "t", "stages": STAGES,
                                                      "handoffs": [["submit", "pickup"], ["wake", "resume"]]}}
    s = summarise(emu)
    o = s["offload"]
    assert o["calls"] == o["of"] == o["all_stages"] == 3 and not o["missing"] and o["repeats"] == 1
    assert o["coverage"] == (120 + 40 + 35) / (140 + 60 + 50)
    wait4 = o["per_syscall"]["260"]
    assert wait4["name"] == "wait4 (260)" and wait4["coverage"] == 120 / 140
    assert wait4["intervals"]["syscall->submit"] == 10 and wait4["intervals"]["execute->complete"] == 90
    text = format_report(s)
    assert "the stages explain 78.0% of their end-to-end latency" in text
    assert "3 of 3 calls, 3 with all 6 stages" in text
    row = next(ln for ln in text.splitlines() if ln.strip().startswith("wait4 (260)") and "%" in ln)
    assert "85.7%" in row


def test_compare_with_a_trace_without_stages():
    staged = summarise({"events": blocked_and_quick(), "profile": {"name": "t", "stages": STAGES}})
    plain_events: list = []
    for i, num in enumerate((260, 172, 61, 61)):
        plain_events += [[i * 100, 0, "syscall", {"num": num, "thread": "A", "args": [0] * 6}],
                         [i * 100 + 20, 0, "sysret", {"thread": "A", "ret": 0}]]
    plain = summarise({"events": plain_events, "profile": None})
    assert plain["offload"] is None
    for a, b, na, nb in ((staged, plain, "off.json", "base.json"), (plain, staged, "base.json", "off.json")):
        text = format_compare(a, b, na, nb)
        row = next(ln for ln in text.splitlines() if ln.strip().startswith("getdents64 (61)"))
        assert row.split()[2:] in (["1", "50", "2", "20", "-30", "0.40"], ["2", "20", "1", "50", "+30", "2.50"]), row
        assert "stages explain:" in text and "no stages" in text and "78.0% of 3 offloaded calls" in text
        assert "execute->complete" in text


def test_a_call_that_renames_its_thread_still_ends():
    """x86_64 names a thread by (CR3, FS base): arch_prctl(ARCH_SET_FS) returns under a new name.
    Its return ends the call open on that hart in the same address space, and nothing else."""
    ev = [[0, 0, "syscall", {"num": 158, "thread": "3800000:0", "args": [0] * 6}],
          [5, 1, "syscall", {"num": 7, "thread": "3800000:77", "args": [0] * 6}],  # another CPU: stays open
          [10, 0, "sysret", {"thread": "3800000:9bb88", "ret": 0}],
          [20, 0, "syscall", {"num": 39, "thread": "4000000:0", "args": [0] * 6}],
          [30, 0, "sysret", {"thread": "5000000:1", "ret": 0}]]  # another address space: not a rename
    a = analyse(tuple(e) for e in ev)
    assert [(s.num, s.end) for s in a.spans] == [(158, 10), (7, None), (39, None)]
    assert [s.num for s in a.in_flight()] == [7, 39]


def test_compare_lines_calls_up_by_name_across_abis():
    """x86_64's read is 0, riscv64's is 63 (where x86_64 has uname): rows pair by name."""
    def summary(rows: dict[int, tuple[str, float]]) -> dict:
        return {"spans": len(rows), "per_interval": {}, "offload": None,
                "per_syscall": {str(n): {"name": f"{name} ({n})", "count": 1, "mean": mean}
                                for n, (name, mean) in rows.items()}}

    x86 = summary({0: ("read", 100.0), 63: ("uname", 300.0), 57: ("fork", 50.0)})
    rv = summary({63: ("read", 200.0), 160: ("uname", 600.0), 500: ("syscall 500", 7.0)})
    lines = format_compare(x86, rv, "x86.json", "rv.json").splitlines()
    row = {ln.split("  ")[1].strip(): ln.split() for ln in lines if ln.startswith("  ") and "(" in ln}
    assert row["read (0/63)"][-2:] == ["+100", "2.00"]
    assert row["uname (63/160)"][-2:] == ["+300", "2.00"]
    assert row["fork (57)"][-1] == "-"
    assert any(ln.strip().startswith("syscall 500 ") for ln in lines)
