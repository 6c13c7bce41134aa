"""Console input of a live reverse-debuggable run, journaled so that re-execution gives it again.

A snapshot is a forked process: it holds the machine as it was, but not what arrived from
the host after it.  Without this journal, a snapshot taken before typed input could not be
re-executed past it, so reverse history started after the last input.  Now every host input
the run takes (console bytes moved into the UART, the idle time a terminal let pass, the end
of piped input) is written, with its position, by the record module's Recorder into memory;
a restore sends the whole journal with its plan (emu/debug/plan.py), and the restored process
replays the events after its own (the snapshot's) from the journal, exactly where they were
taken, as `--replay` does from a file (emu/record.py).  When the plan is done the process is
live again; the events after its position stay in the journal while it stands there (a
`monitor goto` further into the same segment takes them again), and when it resumes they
are the abandoned future: their console bytes go back in front of the typed-ahead input, so
nothing typed is lost, and they leave the journal.

A `--replay` run needs no journal: its inputs come from the file, and the replayer's place
in it is part of every snapshot.
"""
from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from emu.record import Recorder, Replayer

if TYPE_CHECKING:
    from emu.machine import Machine


class InputJournal:
    def __init__(self, machine: "Machine") -> None:
        self.m = machine
        # what decides how idle time passes, as a recording's header says it
        self.header = {"interactive": machine.console.interactive,
                       "idle_realtime": machine.console.interactive or machine.opts.realtime}
        self.recorder = Recorder(None, {}, journal=True)
        machine.recorder = self.recorder
        self._left: Replayer | None = None  # after a plan: the journal's events not taken yet
        self._pending = b""  # while a plan runs: the typed-ahead bytes of the process it came from

    @property
    def events(self) -> list[dict[str, Any]]:
        assert self.recorder.events is not None
        return self.recorder.events

    def plan_fields(self) -> dict[str, Any]:
        """What a restored process needs: every input taken, and the typed-ahead bytes."""
        pending = self._pending if self.m.replayer is not None else bytes(self.m.pending_input)
        return {"journal": self.events, "pending_input": base64.b64encode(pending).decode()}

    def begin(self, journal: list[dict[str, Any]], pending: str) -> None:
        """In a restored process: replay the journal from where this snapshot stood."""
        m = self.m
        start = len(self.events)
        self.recorder.events = list(journal)
        self._pending = base64.b64decode(pending)
        m.replayer = Replayer.of_journal(self.header, self.recorder.events, start)
        m._replay_interactive = bool(self.header["interactive"])
        m._replay_idle = bool(self.header["idle_realtime"])
        m._replay_eof = m.console.eof
        self._left = None

    def finish(self) -> None:
        """The plan is done: live again, the host's console input as it was before the restore."""
        m = self.m
        if m.replayer is None:
            return
        if m._replay_eof:
            m.console.eof = True
        self._left = m.replayer
        m.replayer = None
        m.pending_input = bytearray(self._pending)

    def on_resume(self) -> None:
        """The run goes on from here: the journal's later events are another future."""
        left, self._left = self._left, None
        if left is None or not left.pending:
            return
        rest = left.rest()  # the tail of self.events (the same list)
        del self.events[len(self.events) - len(rest):]
        typed = b"".join(base64.b64decode(ev["data"]) for ev in rest if ev["kind"] == "input")
        self.m.pending_input[:0] = typed
