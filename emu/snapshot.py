"""Snapshots of the whole emulator by fork (copy-on-write), for reverse debugging.

Why fork: a snapshot must bring back every hart context, the engine's translation cache
and TLB sets, the native budget and clock structures, the devices and the scheduler
exactly; a forked process holds all of that frozen at no copying cost (pages are copied
only when the running process writes them).  Measured against copying guest RAM and
state per snapshot in scripts/bench_reverse.py and the README ("How it works").

Processes:
- The root (the process the user started) becomes a supervisor at the first snapshot:
  it forks once and from then on only waits.  It learns which process is the active one,
  forwards SIGINT/SIGTERM/SIGHUP to it, and when the active process ends it kills every
  snapshot, reaps everything (it is a child subreaper: orphans come to it) and exits with
  the active process's status.  Exit codes are what they would be without snapshots.
- Taking a snapshot forks: the parent freezes (it waits for commands on its own pipe),
  the child goes on as the active process.
- Restoring: the active process sends a plan to the snapshot's pipe and exits; the
  snapshot forks a child that returns from `take()` with that plan.  The snapshot stays
  frozen, so it can be restored again.
- Lifetimes: frozen processes watch a lifeline pipe whose only writer is the root, so they
  exit when it dies (SIGKILL included); the active process has PR_SET_PDEATHSIG bound to
  its snapshot parent.  Nothing is left behind, no zombies, on any way out.
"""
from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NoReturn

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
HOST_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class SnapshotInfo:
    """One frozen process and where in the run it was taken."""

    ident: int
    pid: int
    cmd_w: int  # write end of its command pipe
    key: tuple[int, ...]  # the position it holds (see emu.debug.reverse.Position)
    ticks: int  # virtual time
    label: str  # periodic, resume, on demand


@dataclass
class SnapshotCosts:
    """What snapshots cost the host: fork latency (ms) per snapshot."""

    fork_ms: list[float] = field(default_factory=list)


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, value, 0, 0, 0)


def _write_msg(fd: int, obj: dict[str, Any]) -> None:
    data = json.dumps(obj).encode()
    data = struct.pack("<I", len(data)) + data
    while data:
        data = data[os.write(fd, data):]


def _read_exact(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def _read_msg(fd: int) -> dict[str, Any] | None:
    head = _read_exact(fd, 4)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<I", head)[0])
    return None if body is None else json.loads(body)


def _ended_children() -> Iterator[tuple[int, int]]:
    """(pid, wait status) of each child that has ended, reaped without waiting for the others."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class ForkSnapshots:
    """The snapshots of one run, as the active process sees them (inherited by forks)."""

    def __init__(self, keep: int, prepare: Callable[[], None],
                 host_signal: Callable[[], int | None]) -> None:
        self.keep = keep
        self.prepare = prepare  # flush console, trace: nothing buffered may be copied
        self.host_signal = host_signal  # a signal the root received (and forgets), or None
        self.snaps: list[SnapshotInfo] = []
        self.next_id = 0
        self.costs = SnapshotCosts()
        self._ctl_w: int | None = None
        self._lifeline_r: int | None = None

    # -- the active process --------------------------------------------------------
    def take(self, key: tuple[int, ...], ticks: int, label: str) -> dict[str, Any] | None:
        """Freeze the machine as it is.  Returns None in the process that goes on, or,
        in a process restored from this snapshot later, the plan it was restored with."""
        self._ensure_supervisor()
        self.prepare()
        r, w = os.pipe()
        info = SnapshotInfo(self.next_id, os.getpid(), w, key, ticks, label)
        self.next_id += 1
        self.snaps.append(info)
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            self._become_active(info.pid)
            self.costs.fork_ms.append((time.perf_counter() - start) * 1000)
            self._ctl({"snap": info.ident, "pid": info.pid})
            self._prune(info)
            return None
        return self._frozen(r, info)

    def restore(self, info: SnapshotInfo, plan: dict[str, Any]) -> NoReturn:
        """Hand the run over to a copy of snapshot `info` (which gets `plan`) and exit."""
        self.prepare()
        self._ctl({"handover": os.getpid()})
        _write_msg(info.cmd_w, {"plan": plan})
        os._exit(0)

    def truncate(self, info: SnapshotInfo) -> None:
        """The run goes on from `info`: snapshots taken after it (another future) go."""
        self.snaps = [s for s in self.snaps if s.ident <= info.ident]
        self.next_id = info.ident + 1
        self._ctl({"truncate": info.ident})

    def alive(self, info: SnapshotInfo) -> bool:
        try:
            with open(f"/proc/{info.pid}/stat", encoding="ascii") as f:
                return f.read().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False

    def memory_kib(self) -> int:
        """Private dirty memory of the live snapshots: what they cost beyond the run."""
        total = 0
        for s in self.snaps:
            try:
                with open(f"/proc/{s.pid}/smaps_rollup", encoding="ascii") as f:
                    for line in f:
                        if line.startswith("Private_Dirty:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total

    def _prune(self, newest: SnapshotInfo) -> None:
        """Keep at most `keep` snapshots: the oldest go first (never my own parent)."""
        parent = os.getppid()
        while len(self.snaps) > self.keep:
            victim = next((s for s in self.snaps if s.pid != parent and s is not newest), None)
            if victim is None:
                return
            self.snaps.remove(victim)
            self._ctl({"drop": victim.ident})

    def _ctl(self, msg: dict[str, Any]) -> None:
        if self._ctl_w is not None:
            os.write(self._ctl_w, (json.dumps(msg) + "\n").encode())  # < PIPE_BUF: atomic

    def _become_active(self, parent: int) -> None:
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the line above
            os._exit(0)
        self._ctl({"active": os.getpid()})

    # -- a frozen snapshot -----------------------------------------------------------
    def _frozen(self, cmd_r: int, info: SnapshotInfo) -> dict[str, Any]:
        """Wait for a restore; a restore forks the process that returns from take()."""
        _prctl(PR_SET_PDEATHSIG, 0)  # an older snapshot may go before this one
        saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in HOST_SIGNALS}
        assert self._lifeline_r is not None
        while True:
            ready, _, _ = select.select([cmd_r, self._lifeline_r], [], [], 0.1)
            self._reap_children()
            if self._lifeline_r in ready:
                os._exit(0)  # the root is gone
            if cmd_r not in ready:
                continue
            msg = _read_msg(cmd_r)
            if msg is None:
                os._exit(0)
            pid = os.fork()
            if pid == 0:
                os.close(cmd_r)
                for sig, handler in saved.items():
                    signal.signal(sig, handler)
                self.snaps = [s for s in self.snaps if s.ident <= info.ident]
                self.next_id = info.ident + 1
                self._become_active(info.pid)
                return msg["plan"]

    def _reap_children(self) -> None:
        for pid, status in _ended_children():
            self._ctl({"exited": pid, "status": status})

    # -- the root --------------------------------------------------------------------
    def _ensure_supervisor(self) -> None:
        if self._ctl_w is not None:
            return
        self.prepare()
        ctl_r, ctl_w = os.pipe()
        life_r, life_w = os.pipe()
        root = os.getpid()
        pid = os.fork()
        if pid != 0:
            os.close(ctl_w)
            os.close(life_r)
            self._supervise(ctl_r, pid)
        os.close(ctl_r)
        os.close(life_w)
        self._ctl_w, self._lifeline_r = ctl_w, life_r
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != root:
            os._exit(0)

    def _supervise(self, ctl_r: int, active: int) -> NoReturn:
        """The root's life from the first snapshot on: wait for the active process's end."""
        _prctl(PR_SET_CHILD_SUBREAPER, 1)
        pids: dict[int, int] = {}
        current: int | None = active
        buf = b""
        last_status = 0
        while True:
            ready, _, _ = select.select([ctl_r], [], [], 0.2)
            if ready:
                data = os.read(ctl_r, 1 << 16)
                if not data:  # every writer is gone: nobody runs any more
                    self._finish(pids, last_status)
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    msg = json.loads(line)
                    if "active" in msg:
                        current = msg["active"]
                    elif "handover" in msg:
                        if current == msg["handover"]:
                            current = None
                    elif "snap" in msg:
                        pids[msg["snap"]] = msg["pid"]
                    elif "drop" in msg:
                        self._kill(pids.pop(msg["drop"], None))
                    elif "truncate" in msg:
                        for ident in [i for i in pids if i > msg["truncate"]]:
                            self._kill(pids.pop(ident))
                    elif "exited" in msg and msg["exited"] == current:
                        self._finish(pids, msg["status"])
            for pid, status in _ended_children():
                last_status = status
                if pid == current:
                    self._finish(pids, status)
            sig = self.host_signal()
            if sig is not None and current is not None:
                try:
                    os.kill(current, sig)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _kill(pid: int | None) -> None:
        if pid is not None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _finish(self, pids: dict[int, int], status: int) -> NoReturn:
        for pid in pids.values():
            self._kill(pid)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # everything left comes to this subreaper
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.01)
        os._exit(_exit_code(status))
