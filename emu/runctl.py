"""How an `emu run` ends besides the guest's own exit: host signals, input that ran out.

Both are checked by the machine between scheduling rounds, never inside a hook, so the
run ends at an instruction boundary and everything recorded (the trace, `--stats`) is
written on the way out, as for any other exit.
"""
from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field
from typing import Any

from emu.board import TIMEBASE_HZ

# SIGINT (a terminal's Ctrl-C when the console is not raw, or `kill -INT`), SIGTERM (kill,
# CI timeouts), SIGHUP (the terminal went away).  SIGKILL cannot be caught: the trace
# format is what survives that (see emu.trace.output).
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
DEFAULT_IDLE_EOF_S = 1.0  # virtual seconds of idleness after console EOF before `emu run` exits


def signal_exit_code(signum: int) -> int:
    """128 + signal number, as shells report a process killed by that signal."""
    return 128 + signum


@dataclass
class SignalGuard:
    """While entered, SIGINT/SIGTERM/SIGHUP only set `received`; the run loop acts on it.

    A Python signal handler runs between bytecodes, possibly inside a Unicorn hook; it
    must not unwind the CPU model, so it records the signal and returns.  Only the main
    thread can install handlers: elsewhere (or when disabled) this does nothing.
    """

    enabled: bool = True
    received: int | None = None
    _saved: dict[int, Any] = field(default_factory=dict)

    def __enter__(self) -> "SignalGuard":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._saved[sig] = signal.signal(sig, self._on_signal)
        return self

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.received is None:
            self.received = signum

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        self._saved.clear()


def parse_on_idle_eof(text: str) -> float | None:
    """`--on-idle-eof exit[=SECONDS]|wait` -> seconds of virtual idleness, or None (wait)."""
    from emu.errors import EmuError

    word, _, value = text.partition("=")
    if word == "wait" and not value:
        return None
    if word == "exit":
        if not value:
            return DEFAULT_IDLE_EOF_S
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if seconds > 0:
            return seconds
    raise EmuError(f"--on-idle-eof {text}: use exit, exit=SECONDS (virtual, > 0) or wait")


@dataclass
class IdleAfterEof:
    """Counts virtual time the guest spends idle (every hart in WFI) after console input ended.

    `quiet` grows only while the machine skips idle time with nothing left to read
    (`Machine.idle_wait`) and restarts at zero whenever the guest prints or input is
    still on its way.  A guest with a periodic timer tick (the reference guest at its
    prompt) is idle between ticks: its short tick handlers do not reset the count, which
    is the point.  `grace` None: never end the run this way.
    """

    grace: float | None
    quiet: int = 0  # ticks

    @property
    def grace_ticks(self) -> int | None:
        return None if self.grace is None else max(1, int(self.grace * TIMEBASE_HZ))

    def activity(self) -> None:
        self.quiet = 0

    def step(self, ticks: int) -> tuple[int, bool]:
        """Idle for up to `ticks`: (ticks the clock may skip, whether the grace is used up)."""
        limit = self.grace_ticks
        if limit is None:
            return ticks, False
        take = min(ticks, limit - self.quiet)
        self.quiet += take
        return take, self.quiet >= limit
