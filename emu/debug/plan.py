"""What a restored process is asked to do (a plan), the segments of a debugged run, and
the gate that keeps re-executed console output from being shown twice (emu/debug/reverse.py).

Plans travel as JSON through the snapshot's pipe (emu/snapshot.py): plain fields only.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutputGate:
    """Console bytes a re-execution produces again are not shown twice."""

    written: int = 0  # console bytes this run has produced
    shown: int = 0  # bytes the host has already been given (the high-water mark)

    def console(self, data: bytes) -> bytes:
        start = self.written
        self.written += len(data)
        if self.written <= self.shown:
            return b""
        skip = max(0, self.shown - start)
        self.shown = self.written
        return data[skip:]


@dataclass
class Segment:
    kind: str  # "continue" or "step"
    hart: int  # the stepped hart (steps)
    end: list[int] | None = None  # where it stopped (Position.as_list)


@dataclass
class Plan:
    op: str  # goto, scan, rstep, rstep-turn
    snap: int  # the snapshot restored
    end: list[int]  # where this pass stops (goto: the target)
    reply: str = "stop"  # stop (a stop reply) or monitor (a qRcmd answer)
    extra: str = ""  # the stop reply's reason (goto)
    thread: int = 0  # hart to report if the target names none
    before: list[int] | None = None  # scan/rstep: the position we go back from
    hart: int = -1  # rstep: the hart stepped back
    turn: list[int] | None = None  # rstep-turn: (round, hart) re-executed by instruction
    turns: list[list[int]] = field(default_factory=list)  # rstep-turn: earlier candidate turns
    points: list[list[int]] = field(default_factory=list)  # the user's break/watch points
    console_shown: int = 0
    trace_written: int = 0
    journal: list[dict] = field(default_factory=list)  # the console input taken (emu/debug/journal.py)
    pending_input: str = ""  # typed-ahead bytes not in the UART yet (base64)
    gdb_threads: list[int] = field(default_factory=list)  # the stub's Hg and Hc threads (GDB's session)
    nth: int = 0  # hit: which of the watchpoint's hits in the block of `end`
    origin: list[int] | None = None  # where GDB stopped before a reverse step-over (ReverseDebugger.reverse_step)
