"""The live progress line of `emu test` and the one-line summary of a finished case."""
from __future__ import annotations

import time
from typing import TextIO

from emu.testrunner.cases import Status
from emu.testrunner.results import CaseResult


class Progress:
    """The live progress line: cases done / failed / ETA (one line per case when not a tty)."""

    def __init__(self, total: int, stream: TextIO | None) -> None:
        self.total = total
        self.stream = stream
        self.tty = bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())
        self.count = 0
        self.failed = 0
        self.timeouts = 0
        self.detected = 0
        self.start = time.monotonic()
        self.last = ""
        self._shown = 0.0

    def done(self, r: CaseResult) -> None:
        self.count += 1
        self.failed += r.status == Status.FAILED
        self.timeouts += r.status == Status.TIMEOUT
        self.detected += r.status.detected
        self.last = r.case.path
        if self.stream is None:
            return
        if self.tty:
            self._draw()
            if r.differs or r.status.detected:  # keep these on screen above the live line
                self.stream.write("\r\033[K" + case_line(r, self.count, self.total) + "\n")
                self._draw()
        else:
            self.stream.write(case_line(r, self.count, self.total) + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (the boot, a warning), above the live line on a terminal."""
        if self.stream is None:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + f"emu test: {text}\n")
        self.stream.flush()

    def tick(self) -> None:
        if self.tty and time.monotonic() - self._shown > 0.5:
            self._draw()

    def _draw(self) -> None:
        assert self.stream is not None
        elapsed = time.monotonic() - self.start
        eta = "?" if not self.count else f"{elapsed / self.count * (self.total - self.count):.0f} s"
        stopped = f", panic/fault-loop/hang {self.detected}" if self.detected else ""
        line = (f"[{self.count}/{self.total}] failed {self.failed}, timeout {self.timeouts}{stopped}, "
                f"{elapsed:.0f} s host, ETA {eta}  {self.last}")
        self.stream.write("\r\033[K" + line[:200])
        self.stream.flush()
        self._shown = time.monotonic()

    def finish(self) -> None:
        if self.tty and self.stream is not None and self.total:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()


def case_line(r: CaseResult, count: int, total: int) -> str:
    """One finished case: `[n/N] VERDICT path (guest G s, host H s)`, then how it compares.

    Guest seconds are the case's virtual time (what --timeout limits); host seconds
    what it cost here.  A detector's verdict shows its reason, and the list's status it
    stands for when it matches one.
    """
    line = f"[{count}/{total}] {r.status.value:<10} {r.case.path} (guest {r.guest_s:.2f} s, host {r.host_s:.2f} s)"
    if r.differs:
        line += f"  (expected {r.expected})"
    elif r.status.detected:
        line += f"  (matches the list's {r.expected})"
    if r.status.detected and r.detail:
        line += f": {r.detail}"
    return line
