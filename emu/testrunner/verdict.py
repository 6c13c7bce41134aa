"""Verdicts as zcore-tests gives them, and the run-until conditions that feed them.

- FAILED when the case's output holds one of the failure patterns (plain substrings:
  `failed`, `ERROR`, `Error`, `panicked`, `Hangup`, `Unknown signal` by default), or when
  the guest ended the machine in a shell case (the shell is gone), or, when the case
  boots the machine itself, when the machine's exit status is not 0;
- TIMEOUT when the prompt (shell case) or the power-off (boot case) did not come within
  the guest-time limit, or the host-time guard fired first;
- otherwise OK.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from emu.testrunner.cases import Status

if TYPE_CHECKING:
    from emu.machine import Machine

DEFAULT_FAIL_PATTERNS = ("failed", "ERROR", "Error", "panicked", "Hangup", "Unknown signal")
DEFAULT_PROMPT = r"/ # |ref> "  # zCore's busybox shell, the reference guest's shell
PROMPT_SPAN = 256  # bytes a prompt match may span (how far back each scan restarts)


def find_pattern(output: bytes, patterns: Iterable[bytes]) -> bytes | None:
    for p in patterns:
        if p and p in output:
            return p
    return None


def judge_output(output: bytes, patterns: Iterable[bytes]) -> tuple[Status, str]:
    hit = find_pattern(output, patterns)
    if hit is not None:
        return Status.FAILED, f"output holds {hit.decode('utf-8', 'replace')!r}"
    return Status.OK, ""


class UntilPrompt:
    """`Machine.run(until=...)` condition: the prompt after the case's output, or timeout.

    The console log of a shell case starts with the shell's echo of the typed command;
    the case's output is what follows the first newline, up to the prompt.  Checked
    between scheduling rounds, so it only rescans what is new.
    """

    def __init__(self, prompt: re.Pattern[bytes], t0: float, timeout: float | None,
                 skip_echo: bool = True) -> None:
        self.prompt = prompt
        self.t0 = t0
        self.timeout = timeout
        self.body_start: int | None = None if skip_echo else 0
        self.scan_from = 0
        self.seen = -1
        self.match: re.Match[bytes] | None = None
        self.timed_out = False

    def __call__(self, m: Machine) -> bool:
        log = m.console.log
        assert log is not None, "the console must capture (attach_console(..., capture=True))"
        n = len(log)
        if n != self.seen:
            self.seen = n
            if self.body_start is None:
                nl = log.find(b"\n")
                if nl >= 0:
                    self.body_start = self.scan_from = nl + 1
            if self.body_start is not None:
                mo = self.prompt.search(log, self.scan_from)
                if mo is not None:
                    self.match = mo
                    return True
                self.scan_from = max(self.body_start, n - PROMPT_SPAN)
        if self.timeout is not None and m.clock.seconds() - self.t0 >= self.timeout:
            self.timed_out = True
            return True
        return False

    def output(self, log: bytes) -> bytes:
        """The case's output: after the echoed command, before the prompt."""
        start = self.body_start if self.body_start is not None else len(log)
        end = self.match.start() if self.match is not None else len(log)
        return bytes(log[start:end])


class UntilTime:
    """`Machine.run(until=...)` condition for a case that boots: guest-time limit only."""

    def __init__(self, t0: float, timeout: float | None) -> None:
        self.t0 = t0
        self.timeout = timeout
        self.timed_out = False

    def __call__(self, m: Machine) -> bool:
        if self.timeout is not None and m.clock.seconds() - self.t0 >= self.timeout:
            self.timed_out = True
            return True
        return False
