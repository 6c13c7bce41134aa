"""The trace file: Perfetto/Chrome JSON with emu's raw events alongside.

`traceEvents` is what Perfetto and chrome://tracing read; the `emu` object keeps the raw
events, the profile's stage names and the machine's counters, so `emu trace report`
can analyse the same file.  Written deterministically (sorted keys, no host times).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from emu.errors import EmuError
from emu.trace.analysis import analyse
from emu.trace.events import EventLog
from emu.trace.perfetto import chrome_events
from emu.trace.profile import Profile

FORMAT = "emu-trace"
VERSION = 1


def write_trace(path: Path, log: EventLog, profile: Profile | None, harts: int, stats: dict[str, Any]) -> None:
    events = list(log.events())
    analysis = analyse(events)
    doc = {
        "displayTimeUnit": "ns",
        "traceEvents": chrome_events(events, analysis, harts),
        "emu": {
            "format": FORMAT,
            "version": VERSION,
            "harts": harts,
            "profile": None if profile is None else {"name": profile.name, "stages": profile.stages,
                                                     "handoffs": [list(h) for h in profile.handoffs]},
            "stats": stats,
            "events": [list(e) for e in events],
        },
    }
    try:
        text = json.dumps(doc, sort_keys=True, separators=(",", ":"))  # one shot: the C encoder
        with open(path, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as err:
        raise EmuError(f"cannot write trace {path}: {err.strerror}") from None


def read_trace(path: str | Path) -> dict[str, Any]:
    """The `emu` section of a trace file; a missing, corrupt or foreign file is an EmuError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EmuError(f"trace not found: {path}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise EmuError(f"cannot read trace {path}: {err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise EmuError(f"{path}: not a trace file (corrupt or truncated JSON: {err.msg} at line {err.lineno})") from None
    emu = doc.get("emu") if isinstance(doc, dict) else None
    if not isinstance(emu, dict) or emu.get("format") != FORMAT or not isinstance(emu.get("events"), list):
        raise EmuError(f"{path}: not an emu trace (no 'emu' section; was it written by emu run --trace?)")
    for ev in emu["events"]:
        if not (isinstance(ev, list) and len(ev) == 4 and isinstance(ev[0], int) and isinstance(ev[3], dict)):
            raise EmuError(f"{path}: malformed event {str(ev)[:60]}")
    return emu
