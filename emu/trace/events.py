"""Trace events: `(vtime_ns, hart, kind, fields)` into a ring buffer and a stream on disk.

The ring keeps the latest events for reports of a hang or for the debugger; the stream
(JSON lines in a temporary file) keeps everything without growing memory, and is turned
into the output file when the run ends.  Times are virtual nanoseconds read without side
effects on the guest-visible clock, so a trace never changes what the guest sees and
two runs give byte-identical traces.
"""
from __future__ import annotations

import json
import tempfile
from collections import deque
from typing import IO, Any, Iterator

# Event kinds and the --trace-events groups that select them.
KINDS = {
    "trap": "trap", "syscall": "syscall", "sysret": "syscall", "sbi": "sbi", "ipi": "ipi",
    "irq": "irq", "hart": "hart", "stage": "stage",
}
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))
BATCH = 4096  # events held in memory before they are written to the stream
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


class EventLog:
    """Collects events; `wants(kind)` lets sources skip work for unselected kinds."""

    def __init__(self, groups: set[str], ring: int = 4096) -> None:
        self.groups = groups
        self.ring: deque[tuple] = deque(maxlen=ring)
        self.count = 0
        self._stream: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self._batch: list[tuple] = []

    def wants(self, kind: str) -> bool:
        return KINDS.get(kind, kind) in self.groups

    def emit(self, t_ns: int, hart: int, kind: str, fields: dict[str, Any]) -> None:
        ev = (t_ns, hart, kind, fields)
        self.ring.append(ev)
        self.count += 1
        self._batch.append(ev)
        if len(self._batch) >= BATCH:
            self._spill()

    def _spill(self) -> None:
        """Write the pending events in one go (one C-encoder call per batch, not per event)."""
        if self._batch:
            self._stream.write("\n".join(map(_ENCODER.encode, self._batch)) + "\n")
            self._batch.clear()

    def events(self) -> Iterator[tuple[int, int, str, dict[str, Any]]]:
        self._spill()
        self._stream.flush()
        self._stream.seek(0)
        for line in self._stream:
            t, h, k, f = json.loads(line)
            yield t, h, k, f
        self._stream.seek(0, 2)

    def close(self) -> None:
        self._stream.close()
