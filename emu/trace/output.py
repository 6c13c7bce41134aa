"""The trace file: Perfetto/Chrome JSON with emu's raw events alongside.

`traceEvents` is what Perfetto and chrome://tracing read; the `emu` object keeps the raw
events, the profile's stage names and the machine's counters, so `emu trace report`
can analyse the same file.  Written deterministically (sorted keys, no host times).

The file is laid out so that any prefix of it can be read back (format version 2):

    {"displayTimeUnit":"ns","emu":{"format":"emu-trace",...,"version":2,"events":[   <- line 1
    [t,hart,"kind",{...}],                                                          <- one event a line
    ...
    ],"complete":true,"stats":{...}},"traceEvents":[...]}                           <- at the end

`emu run --trace` writes line 1 at start-up and events in batches as the run goes
(`emu.trace.events.EventLog`); the rest when the run ends, on every exit path that the
process survives (signals included).  A file cut anywhere after line 1 (SIGKILL, a host
crash, a full disk) is read as the events before the cut, marked `truncated`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from emu.errors import EmuError
from emu.trace.analysis import analyse
from emu.trace.events import SEPARATOR, EventLog, parse_event_line
from emu.trace.names import DEFAULT_ABI, syscall_table
from emu.trace.perfetto import chrome_events
from emu.trace.profile import Profile

FORMAT = "emu-trace"
VERSION = 2
_EVENTS_OPEN = '"events":['


def _dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def trace_header(profile: Profile | None, harts: int, abi: str = DEFAULT_ABI) -> str:
    """Line 1 of a trace file: everything known before the first event.  `abi`: whose system
    call numbers the events hold (the CPU adapter's `syscall_abi`), so a report names them."""
    meta = {"format": FORMAT, "version": VERSION, "harts": harts, "syscall_abi": abi,
            "profile": None if profile is None else {"name": profile.name, "stages": profile.stages,
                                                     "handoffs": [list(h) for h in profile.handoffs],
                                                     "syscalls": {str(k): v for k, v in sorted(profile.syscalls.items())}}}
    return '{"displayTimeUnit":"ns","emu":' + _dumps(meta)[:-1] + "," + _EVENTS_OPEN + "\n"


def _tail(events: list[tuple], harts: int, stats: dict[str, Any], profile: Profile | None, abi: str) -> str:
    analysis = analyse(events, abi)
    chrome = chrome_events(events, analysis, harts, syscall_table(abi, None if profile is None else profile.syscalls))
    return ('\n],"complete":true,"stats":' + _dumps(stats) + '},"traceEvents":[' +
            ",\n".join(map(_dumps, chrome)) + "]}\n")


def write_trace(path: Path, log: EventLog, profile: Profile | None, harts: int, stats: dict[str, Any],
                abi: str = DEFAULT_ABI) -> None:
    """Finish the trace at `path`: the tail of a log streaming there, or the whole file."""
    try:
        events = list(log.events())
        tail = _tail(events, harts, stats, profile, abi)
        if log.path is not None and Path(path).resolve() == log.path.resolve():
            log.finish(tail)
            return
        with open(path, "w", encoding="utf-8") as f:
            f.write(trace_header(profile, harts, abi))
            f.write(SEPARATOR.join(_dumps(list(e)) for e in events))
            f.write(tail)
    except OSError as err:
        raise EmuError(f"cannot write trace {path}: {err.strerror}") from None


def _recover(path: str | Path, text: str) -> dict[str, Any] | None:
    """The events of a trace cut short after line 1, or None if `text` is not one."""
    first, _, rest = text.partition("\n")
    if not first.endswith(_EVENTS_OPEN):
        return None
    try:
        doc = json.loads(first + "]}}")
    except json.JSONDecodeError:
        return None
    emu = doc.get("emu") if isinstance(doc, dict) else None
    if not isinstance(emu, dict) or emu.get("format") != FORMAT:
        return None
    events = []
    for line in rest.splitlines():
        ev = parse_event_line(line)
        if ev is None:
            break  # the end of the events, or the cut
        events.append(ev)
    emu["events"] = events
    emu["truncated"] = True
    emu.setdefault("stats", {})
    return emu


def read_trace(path: str | Path) -> dict[str, Any]:
    """The `emu` section of a trace file; a missing, corrupt or foreign file is an EmuError.

    A file whose end is missing (the run was killed) gives the events before the cut and
    `truncated: True`; callers say so.
    """
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise EmuError(f"trace not found: {path}") from None
    except OSError as err:
        raise EmuError(f"cannot read trace {path}: {err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        recovered = _recover(path, text)
        if recovered is None:
            raise EmuError(f"{path}: not a trace file (corrupt or truncated JSON: {err.msg} at line {err.lineno})") from None
        doc = {"emu": recovered}
    emu = doc.get("emu") if isinstance(doc, dict) else None
    if not isinstance(emu, dict) or emu.get("format") != FORMAT or not isinstance(emu.get("events"), list):
        raise EmuError(f"{path}: not an emu trace (no 'emu' section; was it written by emu run --trace?)")
    for ev in emu["events"]:
        if not (isinstance(ev, list) and len(ev) == 4 and isinstance(ev[0], int) and isinstance(ev[3], dict)):
            raise EmuError(f"{path}: malformed event {str(ev)[:60]}")
    return emu


def load_trace(path: str | Path, warn: IO[str]) -> dict[str, Any]:
    """`read_trace`, saying on `warn` in one line when the file was cut short."""
    emu = read_trace(path)
    if emu.get("truncated"):
        warn.write(f"emu: warning: {path} is truncated (the run was killed before it finished the trace): "
                   f"reporting its {len(emu['events'])} events; requests in flight at the cut are listed\n")
        warn.flush()
    return emu
