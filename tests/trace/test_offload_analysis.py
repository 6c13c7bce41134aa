"""Matching stage events to system calls when a call blocks on the serving hart, and the share
of end-to-end latency the stages explain (issue 16, item 1), on synthetic events: the shapes
zCore's offload fork produces (tests/zcore/test_offload_trace.py checks the real thing)."""
from __future__ import annotations

from emu.trace.analysis import analyse

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
