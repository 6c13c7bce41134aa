"""The pool of forked children: results, bounded parallelism, crashes and the host-time kill."""
from __future__ import annotations

import os
import time

from emu.testrunner.forking import run_forked


def _collect(items, fn, jobs=2, kill_after=None):
    got = {}
    run_forked(items, fn, jobs, kill_after, lambda i, res, host_s: got.__setitem__(i, (res, host_s)))
    return got


def test_results_come_back_in_any_order_with_their_index():
    def fn(x):
        time.sleep(0.05 * (3 - x))
        return {"x": x, "pid": os.getpid(), "big": "y" * 200_000}  # more than a pipe buffer

    got = _collect([0, 1, 2], fn)
    assert sorted(got) == [0, 1, 2]
    assert all(got[i][0]["x"] == i and len(got[i][0]["big"]) == 200_000 for i in got)
    assert len({got[i][0]["pid"] for i in got} | {os.getpid()}) == 4  # each in its own child


def test_at_most_jobs_children_at_once(tmp_path):
    def fn(x):
        mark = tmp_path / f"{x}.run"
        mark.touch()
        live = len(list(tmp_path.glob("*.run")))
        time.sleep(0.1)
        mark.unlink()
        return {"live": live}

    got = _collect(list(range(6)), fn, jobs=2)
    assert max(res["live"] for res, _ in got.values()) <= 2


def test_a_child_that_raises_or_dies_is_reported():
    def fn(x):
        if x == 0:
            raise ValueError("boom")
        os._exit(7)

    got = _collect([0, 1], fn)
    assert "ValueError: boom" in got[0][0]["error"]
    assert "status 7" in got[1][0]["error"]


def test_a_child_past_the_host_guard_is_killed():
    def fn(x):
        if x == 0:
            time.sleep(60)
        return {"ok": True}

    t0 = time.monotonic()
    got = _collect([0, 1], fn, kill_after=0.5)
    assert time.monotonic() - t0 < 10
    assert got[0][0] == {"killed": True}
    assert got[1][0] == {"ok": True}
