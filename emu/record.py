"""Record and replay of a run's nondeterministic inputs (`emu run --record FILE` / `--replay FILE`).

With the virtual clock, a run is a function of its inputs; what is not known in advance is
what arrives from the host at host times.  The recorder writes each such input with the
position at which the guest took it; the replayer feeds the same inputs at the same
positions, so console, trace and --stats come out byte for byte, and it stops at the first
divergence, saying where.

Inputs recorded (version 1):
- `input`: console bytes moved into the UART (the only way typed input reaches the guest);
- `idle`: the ticks the clock skipped while every hart waited on an interactive terminal
  (there idle time follows the host clock; from pipes and files it is already deterministic);
- `eof`: where piped console input ended (scripted runs end when the guest then idles);
- `end`: how the run ended; when the host ended it (Ctrl-A x, a signal, --timeout: `host`
  true) a replay stops at the same position, otherwise the replay must reach the same end.

A position is (round, ticks, bytes): scheduling rounds completed, the virtual clock in
timebase ticks, and the code bytes all harts have executed.  Rounds alone identify where the
input is consumed (inputs act only between rounds); ticks and bytes check that the replay
has run the same code to get there.

File format: JSON lines.  The first line is the header
`{"format": "emu-record", "version": 1, "kernel": SHA256, "bootargs": ..., "harts": N, "mips": M,
"quantum": Q}`; each further line is one event
`{"round": R, "ticks": T, "bytes": B, "kind": "input"|"idle"|"eof"|"end", ...}` with `data`
(base64) for input, `ticks_skipped` for idle, and `exit_code`, `reason`, `host` for end.  Lines are
flushed as written: a run killed with SIGKILL leaves a replayable prefix.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from emu.errors import EXIT_REPLAY_DIVERGED, EmuError

FORMAT = "emu-record"
VERSION = 1


@dataclass(frozen=True)
class Position:
    round: int
    ticks: int
    bytes: int

    def describe(self) -> str:
        return f"round {self.round}, virtual tick {self.ticks}, {self.bytes} code bytes executed"


class ReplayDiverged(Exception):
    """The replay does not reach a recorded input at its recorded position."""

    exit_code = EXIT_REPLAY_DIVERGED


class Recorder:
    def __init__(self, path: str, header: dict[str, Any]) -> None:
        try:
            self._f: IO[str] = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        except OSError as err:
            raise EmuError(f"--record {path}: {err.strerror}") from None
        self._write({"format": FORMAT, "version": VERSION, **header})

    def _write(self, obj: dict[str, Any]) -> None:
        self._f.write(json.dumps(obj, sort_keys=True) + "\n")
        self._f.flush()

    def _event(self, pos: Position, kind: str, **fields: Any) -> None:
        self._write({"round": pos.round, "ticks": pos.ticks, "bytes": pos.bytes, "kind": kind, **fields})

    def input(self, pos: Position, data: bytes) -> None:
        self._event(pos, "input", data=base64.b64encode(data).decode("ascii"))

    def idle(self, pos: Position, skipped: int) -> None:
        self._event(pos, "idle", ticks_skipped=skipped)

    def eof(self, pos: Position) -> None:
        self._event(pos, "eof")

    def end(self, pos: Position, exit_code: int, reason: str, host: bool) -> None:
        self._event(pos, "end", exit_code=exit_code, reason=reason, host=host)

    def close(self) -> None:
        self._f.close()


class Replayer:
    def __init__(self, path: str, header: dict[str, Any]) -> None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise EmuError(f"--replay {path}: {err.strerror}") from None
        try:
            head = json.loads(lines[0]) if lines else {}
            self.events = [json.loads(line) for line in lines[1:] if line.strip()]
        except json.JSONDecodeError:
            raise EmuError(f"--replay {path}: not an emu recording (bad JSON)") from None
        if head.get("format") != FORMAT:
            raise EmuError(f"--replay {path}: not an emu recording")
        if head.get("version") != VERSION:
            raise EmuError(f"--replay {path}: recording format version {head.get('version')}, "
                           f"this emu reads version {VERSION}")
        for key, value in header.items():
            if head.get(key) != value:
                raise EmuError(f"--replay {path}: recorded with {key} = {head.get(key)!r}, this run has {value!r}")
        self.path = path
        self.header = head
        self._next = 0

    def _peek(self) -> dict[str, Any] | None:
        return self.events[self._next] if self._next < len(self.events) else None

    def _take(self, kind: str, pos: Position) -> dict[str, Any] | None:
        """The next event if it is of `kind` and due at this round; checks its position."""
        ev = self._peek()
        if ev is None or ev["kind"] != kind or ev["round"] != pos.round:
            return None
        if (ev["ticks"], ev["bytes"]) != (pos.ticks, pos.bytes):
            recorded = Position(ev["round"], ev["ticks"], ev["bytes"])
            raise ReplayDiverged(f"replay diverged at the {kind} event #{self._next + 1} of {self.path}: "
                                 f"this run is at {pos.describe()}; the recording was at {recorded.describe()}")
        self._next += 1
        return ev

    def check_not_passed(self, pos: Position) -> None:
        """Between rounds: an event due at an earlier round was never consumed."""
        ev = self._peek()
        if ev is not None and ev["round"] < pos.round:
            raise ReplayDiverged(f"replay diverged: the recording's {ev['kind']} event #{self._next + 1} at round "
                                 f"{ev['round']} was not reached (this run is at {pos.describe()})")

    def input(self, pos: Position) -> bytes | None:
        ev = self._take("input", pos)
        return None if ev is None else base64.b64decode(ev["data"])

    def idle(self, pos: Position) -> int | None:
        ev = self._take("idle", pos)
        return None if ev is None else int(ev["ticks_skipped"])

    def eof(self, pos: Position) -> bool:
        return self._take("eof", pos) is not None

    def end(self, pos: Position) -> tuple[int, str] | None:
        """A host-made end (Ctrl-A x, a signal, --timeout) due here; the guest's own end is
        reached by running and checked by finish()."""
        ev = self._peek()
        if ev is None or ev["kind"] != "end" or not ev.get("host"):
            return None
        ev = self._take("end", pos)
        return None if ev is None else (int(ev["exit_code"]), str(ev["reason"]))

    def finish(self, pos: Position, exit_code: int) -> None:
        """The replay ended: nothing recorded may be left but the same end."""
        left = self.events[self._next:]
        if not left:
            return  # a recording cut short (SIGKILL): replayed as far as it goes
        if len(left) == 1 and left[0]["kind"] == "end" and left[0]["exit_code"] == exit_code:
            if (left[0]["round"], left[0]["ticks"], left[0]["bytes"]) == (pos.round, pos.ticks, pos.bytes):
                return
        what = (f"the recording ends with {left[0]['kind']} at round {left[0]['round']}" if left
                else "the recording has no end")
        raise ReplayDiverged(f"replay diverged: the run ended (exit {exit_code}) at {pos.describe()}, {what}")

    @property
    def pending(self) -> bool:
        return self._peek() is not None
