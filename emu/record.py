"""Record and replay of a run's nondeterministic inputs (`emu run --record FILE` / `--replay FILE`).

With the virtual clock, a run is a function of its inputs; what is not known in advance is
what arrives from the host at host times.  The recorder writes each such input with the
position at which the guest took it; the replayer feeds the same inputs at the same
positions, so console, trace and --stats come out byte for byte, and it stops at the first
divergence, saying where.

Inputs recorded (version 2; version 1 files, which have no `rx` events, still replay):
- `input`: console bytes moved into the UART (the only way typed input reaches the guest);
- `rx`: network frames a NIC took from its backend (slirp, TAP) for the guest, with where
  it took them: between rounds, or inside a hart's transmit MMIO write (slirp answers ARP
  and ping at once) — then also `hart` and `turn_bytes` (the code bytes of that hart's turn
  so far), which name the write exactly; `tx` and `tx_hash` are how many frames the guest
  had sent by then and a hash chained over them (emu/netrecord.py): on replay no backend
  runs, frames come from the file and what the guest sends is only checked;
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
`{"format": "emu-record", "version": 2, "kernel": SHA256, "initrd": SHA256, "bootargs": ..., "harts": N,
"mips": M, "quantum": Q, "ram": BYTES, "arch": A, "net": BACKEND, "nic": MODEL, "interactive": BOOL,
"idle_realtime": BOOL, "exact_stops": BOOL}` (version 1 had no arch, net, nic, exact_stops: riscv64,
none, none, false); each further line is one event
`{"round": R, "ticks": T, "bytes": B, "kind": "input"|"rx"|"idle"|"eof"|"end", ...}` with `data`
(base64) for input, `nic` (its MMIO region), `frames` (a list of base64 frames), `tx`,
`tx_hash` and, inside a write, `hart` and `turn_bytes` for rx, `ticks_skipped` for idle, and
`exit_code`, `reason`, `host` for end.  Lines are flushed as written: a run killed with
SIGKILL leaves a replayable prefix.

Under a debugger (`--replay` with `--gdb`) a stop in the middle of a round ends that round
early, and exact stops (watchpoints, `--snapshot-every`; `exact_stops` in the header says
whether the recording had them, `emu run --exact-stops`) move where a device's stop request
lands, so from the first such change on the run cannot reach the recorded positions; the
replayer is then *loose*: each event is given at the first round boundary whose virtual time
has reached the recorded one (idle waits stop there), in order, without position checks.
Reverse execution stays exact (it re-executes the same run from snapshots).  The same
classes journal console input in memory during a live `--gdb` run with snapshots, so that
re-execution from a snapshot taken before an input gives it again where it was taken.
"""
from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from emu.errors import EmuError, ReplayDiverged  # noqa: F401 - ReplayDiverged is part of this module's interface

FORMAT = "emu-record"
VERSION = 2
READS = (1, 2)  # format versions this emu replays
V1_DEFAULTS = {"arch": "riscv64", "net": None, "nic": None}  # header keys version 2 added


@dataclass(frozen=True)
class Position:
    round: int
    ticks: int
    bytes: int

    def describe(self) -> str:
        return f"round {self.round}, virtual tick {self.ticks}, {self.bytes} code bytes executed"


@dataclass(frozen=True)
class RxPlace:
    """Where a NIC takes frames: between rounds (hart -1) or in `hart`'s MMIO write after
    `turn_bytes` code bytes of its turn."""

    pos: Position
    hart: int = -1
    turn_bytes: int = 0

    def describe(self) -> str:
        inside = f" in an MMIO write of hart {self.hart} after {self.turn_bytes} code bytes of its turn"
        return self.pos.describe() + (inside if self.hart >= 0 else "")



def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Recorder:
    """Writes events to `path` (flushed line by line) and/or keeps them in `events`
    (journal=True: a debugged run's inputs, for re-execution from snapshots)."""

    def __init__(self, path: str | None, header: dict[str, Any], journal: bool = False) -> None:
        self._f: IO[str] | None = None
        self.events: list[dict[str, Any]] | None = [] if journal else None
        self.header = {"format": FORMAT, "version": VERSION, **header}
        if path is not None:
            try:
                self._f = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
            except OSError as err:
                raise EmuError(f"--record {path}: {err.strerror}") from None
            self._write(self.header)

    def _write(self, obj: dict[str, Any]) -> None:
        if self._f is not None:
            self._f.write(json.dumps(obj, sort_keys=True) + "\n")
            self._f.flush()

    def _event(self, pos: Position, kind: str, **fields: Any) -> None:
        ev = {"round": pos.round, "ticks": pos.ticks, "bytes": pos.bytes, "kind": kind, **fields}
        if self.events is not None:
            self.events.append(ev)
        self._write(ev)

    def input(self, pos: Position, data: bytes) -> None:
        self._event(pos, "input", data=_b64(data))

    def rx(self, place: RxPlace, nic: str, frames: list[bytes], tx: int, tx_hash: str) -> None:
        where = {"hart": place.hart, "turn_bytes": place.turn_bytes} if place.hart >= 0 else {}
        self._event(place.pos, "rx", nic=nic, frames=[_b64(f) for f in frames], tx=tx, tx_hash=tx_hash, **where)

    def idle(self, pos: Position, skipped: int) -> None:
        self._event(pos, "idle", ticks_skipped=skipped)

    def eof(self, pos: Position) -> None:
        self._event(pos, "eof")

    def end(self, pos: Position, exit_code: int, reason: str, host: bool) -> None:
        self._event(pos, "end", exit_code=exit_code, reason=reason, host=host)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class Replayer:
    def __init__(self, path: str, header: dict[str, Any]) -> None:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except OSError as err:
            raise EmuError(f"--replay {path}: {err.strerror}") from None
        try:
            head = json.loads(lines[0]) if lines else {}
            events = [json.loads(line) for line in lines[1:] if line.strip()]
        except json.JSONDecodeError:
            raise EmuError(f"--replay {path}: not an emu recording (bad JSON)") from None
        if not isinstance(head, dict) or head.get("format") != FORMAT:
            raise EmuError(f"--replay {path}: not an emu recording")
        if head.get("version") not in READS:
            raise EmuError(f"--replay {path}: recording format version {head.get('version')}, "
                           f"this emu reads versions {', '.join(map(str, READS))}")
        for key, value in header.items():
            recorded = head.get(key, V1_DEFAULTS.get(key) if head.get("version") == 1 else None)
            if recorded != value:
                raise EmuError(f"--replay {path}: recorded with {key} = {head.get(key)!r}, this run has {value!r}")
        self.path = path
        self.header = head
        self.events = events
        self._next = 0
        self.loose = False  # a debugger stop cut a round: events go by virtual time (see above)

    @classmethod
    def of_journal(cls, header: dict[str, Any], events: list[dict[str, Any]], start: int) -> "Replayer":
        """Re-execution in a restored process: the debugged run's journal from event `start`."""
        self = cls.__new__(cls)
        self.path, self.header, self.events, self._next, self.loose = "the input journal", header, events, start, False
        return self

    def _peek(self) -> dict[str, Any] | None:
        return self.events[self._next] if self._next < len(self.events) else None

    def _due(self, ev: dict[str, Any] | None, kind: str, pos: Position) -> bool:
        if ev is None or ev["kind"] != kind:
            return False
        return ev["ticks"] <= pos.ticks if self.loose else ev["round"] == pos.round

    def _check(self, ev: dict[str, Any], kind: str, here: tuple, there: tuple, describe: str) -> None:
        if not self.loose and here != there:
            raise ReplayDiverged(f"replay diverged at the {kind} event #{self._next + 1} of {self.path}: "
                                 f"this run is at {describe}; the recording was at "
                                 f"{Position(ev['round'], ev['ticks'], ev['bytes']).describe()}"
                                 + (f" in hart {ev['hart']}'s MMIO write after {ev['turn_bytes']} code bytes "
                                    "of its turn" if "hart" in ev else ""))

    def _take(self, kind: str, pos: Position) -> dict[str, Any] | None:
        """The next event if it is of `kind` and due at this round; checks its position."""
        ev = self._peek()
        if not self._due(ev, kind, pos):
            return None
        assert ev is not None
        self._check(ev, kind, (pos.ticks, pos.bytes), (ev["ticks"], ev["bytes"]), pos.describe())
        self._next += 1
        return ev

    def check_not_passed(self, pos: Position) -> None:
        """Between rounds: an event due at an earlier round was never consumed."""
        ev = self._peek()
        if ev is not None and ev["round"] < pos.round and not self.loose:
            raise ReplayDiverged(f"replay diverged: the recording's {ev['kind']} event #{self._next + 1} at round "
                                 f"{ev['round']} was not reached (this run is at {pos.describe()})")

    def next_ticks(self) -> int | None:
        """Loose replay: the virtual time of the next event (an idle wait stops there)."""
        ev = self._peek()
        return None if ev is None or not self.loose else int(ev["ticks"])

    def input(self, pos: Position) -> bytes | None:
        ev = self._take("input", pos)
        return None if ev is None else base64.b64decode(ev["data"])

    def rx(self, place: RxPlace, nic: str, tx: int, tx_hash: str) -> list[bytes]:
        """Frames recorded for `nic` at exactly this place (all of them, if several polls
        found frames there in a row)."""
        frames: list[bytes] = []
        while True:
            ev = self._peek()
            if not self._due(ev, "rx", place.pos) or ev is None or ev["nic"] != nic:
                return frames
            if self.loose and place.hart >= 0:
                return frames  # loose: between rounds only
            if not self.loose and (ev.get("hart", -1) != place.hart or place.turn_bytes < ev.get("turn_bytes", 0)):
                return frames  # taken later or elsewhere in this round (checked when the round is over)
            self._check(ev, "rx", (place.pos.ticks, place.pos.bytes, place.turn_bytes),
                        (ev["ticks"], ev["bytes"], ev.get("turn_bytes", 0)), place.describe())
            if not self.loose and (ev["tx"], ev["tx_hash"]) != (tx, tx_hash):
                raise ReplayDiverged(
                    f"replay diverged at the rx event #{self._next + 1} of {self.path} ({place.describe()}): "
                    f"the guest has sent {tx} frames (hash {tx_hash}), the recording's guest had sent "
                    f"{ev['tx']} (hash {ev['tx_hash']})")
            self._next += 1
            frames += [base64.b64decode(f) for f in ev["frames"]]

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
        if not left or self.loose:
            return  # a recording cut short (SIGKILL): replayed as far as it goes
        if len(left) == 1 and left[0]["kind"] == "end" and left[0]["exit_code"] == exit_code:
            if (left[0]["round"], left[0]["ticks"], left[0]["bytes"]) == (pos.round, pos.ticks, pos.bytes):
                return
        what = (f"the recording ends with {left[0]['kind']} at round {left[0]['round']}" if left
                else "the recording has no end")
        raise ReplayDiverged(f"replay diverged: the run ended (exit {exit_code}) at {pos.describe()}, {what}")

    def rest(self) -> list[dict[str, Any]]:
        """The events not given yet."""
        return self.events[self._next:]

    @property
    def pending(self) -> bool:
        return self._peek() is not None
