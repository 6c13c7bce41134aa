"""Trace events: `(vtime_ns, hart, kind, fields)` into a ring buffer and a stream on disk.

The ring keeps the latest events for reports of a hang or for the debugger; the stream
keeps everything without growing memory.  With `emu run --trace FILE` the stream *is*
FILE: events go there in batches as the run goes (one JSON array element per line, see
`emu.trace.output`), so a run that is killed (SIGKILL, a host crash) leaves a file that
`emu trace report` can still read up to the last batch written.  A batch is written when
it is full or when it has waited `STALE_S` host seconds, so what a kill loses is bounded
in both events and time.  Without a file (the debugger, `emu test`) the stream is a
temporary file.  Times are virtual nanoseconds read without side effects on the
guest-visible clock, so a trace never changes what the guest sees and two runs give
byte-identical traces: batch boundaries do not show in the bytes.
"""
from __future__ import annotations

import json
import tempfile
from collections import deque
from pathlib import Path
from typing import IO, Any, Iterator

# Event kinds and the --trace-events groups that select them.
KINDS = {
    "trap": "trap", "syscall": "syscall", "sysret": "syscall", "sbi": "sbi", "ipi": "ipi",
    "irq": "irq", "hart": "hart", "stage": "stage",
}
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
BATCH = 4096  # events held in memory before they are written to the stream
STALE_S = 0.5  # host seconds a non-empty batch may wait before it is written anyway
SEPARATOR = ",\n"  # between two events on disk: one event per line
GROUPS = {"all", "syscall", "trap", "sbi", "ipi", "irq", "hart", "stage"}


def parse_groups(text: str) -> set[str]:
    groups = {g.strip() for g in text.split(",") if g.strip()}
    unknown = groups - GROUPS
    if unknown:
        from emu.errors import EmuError

        raise EmuError(f"--trace-events: unknown group(s) {', '.join(sorted(unknown))} "
                       f"(choose from {', '.join(sorted(GROUPS))})")
    if "all" in groups:
        return set(GROUPS) - {"all"}
    if "stage" in groups:
        groups |= {"syscall"}
    return groups


def parse_event_line(line: str) -> list | None:
    """One event line of the stream (`[t,h,"kind",{...}],`), or None if it is not one."""
    text = line.strip().rstrip(",")
    if not text.startswith("["):
        return None
    try:
        ev = json.loads(text)
    except json.JSONDecodeError:
        return None
    return ev if isinstance(ev, list) else None


class EventLog:
    """Collects events; `wants(kind)` lets sources skip work for unselected kinds.

    `path` and `header`: stream into that file after `header` (the trace file's opening,
    from `emu.trace.output.trace_header`); without them, into a temporary file.
    """

    def __init__(self, groups: set[str], ring: int = 4096, path: Path | None = None, header: str = "") -> None:
        self.groups = groups
        self.ring: deque[tuple] = deque(maxlen=ring)
        self.count = 0
        self.path = path
        if path is None:
            self._stream: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        else:
            self._stream = open(path, "w+", encoding="utf-8")  # noqa: SIM115 - open for the whole run
        self._stream.write(header)
        self._stream.flush()
        self._data_start = self._stream.tell()
        self._batch: list[tuple] = []
        self._written = 0  # events already in the stream
        self.skip_until = 0  # events before this index are in the stream already (reverse re-execution)
        self._last_spill = 0.0

    def wants(self, kind: str) -> bool:
        return KINDS.get(kind, kind) in self.groups

    def emit(self, t_ns: int, hart: int, kind: str, fields: dict[str, Any]) -> None:
        ev = (t_ns, hart, kind, fields)
        self.ring.append(ev)
        self.count += 1
        self._batch.append(ev)
        if len(self._batch) >= BATCH:
            self._spill()

    def tick(self, now: float) -> None:
        """Between rounds (host monotonic time `now`): write a batch that has waited too long."""
        if self._batch and now - self._last_spill >= STALE_S:
            self._spill()
            self._last_spill = now

    def sync(self) -> None:
        """Write the pending events now (before console output reaches the host)."""
        self._spill()

    def _spill(self) -> None:
        """Write the pending events in one go (one C-encoder call per batch, not per event)
        and hand them to the OS, so they survive the process being killed."""
        if self._batch:
            first = self.count - len(self._batch)  # the batch's index among the run's events
            fresh = self._batch[max(0, self.skip_until - first):]
            if fresh:
                text = SEPARATOR.join(map(_ENCODER.encode, fresh))
                self._stream.write((SEPARATOR if self.count - len(fresh) else "") + text)
                self._stream.flush()
            self._written += len(self._batch)
            self._batch.clear()

    def events(self) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
        self._spill()
        self._stream.flush()
        self._stream.seek(self._data_start)
        for line in self._stream:
            ev = parse_event_line(line)
            if ev is not None:
                t, h, k, f = ev
                yield t, h, k, f
        self._stream.seek(0, 2)

    def finish(self, tail: str) -> None:
        """Append the trace file's closing part (after the last event) and close it."""
        self._spill()
        self._stream.seek(0, 2)
        self._stream.write(tail)
        self._stream.flush()
        self._stream.close()

    def close(self) -> None:
        if not self._stream.closed:
            self._stream.close()
