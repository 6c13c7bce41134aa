"""A pool of forked children, each running one function and answering through a pipe.

`emu test` forks the whole emulator per case (copy-on-write guest RAM); this is the
process side of it, with nothing of the emulator in it.
"""
from __future__ import annotations

import json
import os
import select
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Child:
    pid: int
    index: int
    started: float
    buf: bytearray = field(default_factory=bytearray)
    killed: bool = False


def run_forked(items: list[Any], child_fn: Callable[[Any], dict[str, Any]], jobs: int,
               kill_after: float | None, on_done: Callable[[int, dict[str, Any], float], None],
               on_tick: Callable[[], None] | None = None) -> None:
    """Run child_fn(item) in a forked child per item, at most `jobs` alive at once.

    Each child sends child_fn's dict back as JSON through a pipe and leaves with
    os._exit.  A child that dies without answering gives {"error": ...}; one alive
    `kill_after` host seconds after its fork is killed ({"killed": True}).
    """
    pending = list(enumerate(items))
    pending.reverse()
    active: dict[int, _Child] = {}
    try:
        while pending or active:
            while pending and len(active) < max(1, jobs):
                index, item = pending.pop()
                sys.stdout.flush()
                sys.stderr.flush()
                r, w = os.pipe()
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    code = 0
                    try:
                        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                            signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: just go
                        os.close(r)
                        for fd in active:
                            os.close(fd)
                        try:
                            res = child_fn(item)
                        except BaseException:  # noqa: BLE001 - reported to the parent
                            res = {"error": traceback.format_exc(limit=8)}
                            code = 1
                        data = json.dumps(res).encode("utf-8")
                        while data:
                            data = data[os.write(w, data):]
                    finally:
                        os._exit(code)
                os.close(w)
                active[r] = _Child(pid, index, time.monotonic())
            ready, _, _ = select.select(list(active), [], [], 0.25)
            for fd in ready:
                child = active[fd]
                data = os.read(fd, 1 << 16)
                if data:
                    child.buf += data
                    continue
                os.close(fd)
                del active[fd]
                _, status = os.waitpid(child.pid, 0)
                host_s = time.monotonic() - child.started
                on_done(child.index, _decode(child, status), host_s)
            if kill_after is not None:
                now = time.monotonic()
                for child in active.values():
                    if not child.killed and now - child.started > kill_after:
                        child.killed = True
                        os.kill(child.pid, signal.SIGKILL)
            if on_tick is not None:
                on_tick()
    finally:
        for fd, child in list(active.items()):  # interrupted: end our children, nothing else
            try:
                os.kill(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(child.pid, 0)
            os.close(fd)


def _decode(child: _Child, wait_status: int) -> dict[str, Any]:
    if child.killed:
        return {"killed": True}
    try:
        res = json.loads(child.buf.decode("utf-8"))
        if isinstance(res, dict):
            return res
    except (UnicodeDecodeError, json.JSONDecodeError):
        pass
    if os.WIFSIGNALED(wait_status):
        return {"error": f"runner child died with signal {os.WTERMSIG(wait_status)}"}
    return {"error": f"runner child exited with status {os.waitstatus_to_exitcode(wait_status)} without a result"}
