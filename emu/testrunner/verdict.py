"""Verdicts as zcore-tests gives them, and the run-until conditions that feed them.

- FAILED when the case's output holds one of the failure patterns (plain substrings:
  `failed`, `ERROR`, `Error`, `panicked`, `Hangup`, `Unknown signal` by default), or when
  the guest ended the machine in a shell case (power-off, reset: the shell is gone), or,
  when the case boots the machine itself, when the machine's exit status is not 0;
- PANIC, FAULT-LOOP, HANG when one of emu's detectors stopped the guest (a kernel panic
  on the console, the same trap taken again and again, every hart waiting with nothing
  to wake it).  On QEMU such a guest spins until zcore-tests' time limit, which records
  TIMEOUT: these verdicts match a TIMEOUT in the list (and PANIC also a FAILED when the
  output holds a failure pattern: on QEMU another hart may bring the prompt back after
  one hart panicked, and the panic message then fails the case);
- TIMEOUT when the prompt (shell case) or the power-off (boot case) did not come within
  the guest-time limit, or the host-time guard fired first;
- otherwise OK.
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from emu.reports import hart_pc
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
        self.seen = 0
        self.last_output_s = t0  # guest time of the console's last output (the idle check)

    def __call__(self, m: Machine) -> bool:
        n = len(m.console.log) if m.console.log is not None else 0
        if n != self.seen:
            self.seen = n
            self.last_output_s = m.clock.seconds()
        if self.timeout is not None and m.clock.seconds() - self.t0 >= self.timeout:
            self.timed_out = True
            return True
        return False


# -- emu's detectors ---------------------------------------------------------------------------
_DETECTOR_REASONS = {"guest panic": Status.PANIC, "fault loop": Status.FAULT_LOOP, "hang": Status.HANG}
_ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
_PANIC_LINE = re.compile(rb"(Kernel panic - not syncing|panicked at)[^\r\n]*")
REASON_MAX = 160  # characters of a panic message kept in a reason


def detector_status(reason: str) -> Status | None:
    """The verdict for a machine that one of emu's detectors stopped (RunResult.reason)."""
    return _DETECTOR_REASONS.get(reason)


def _where(m: Machine, pc: int | None, user: bool = False) -> str:
    if pc is None:
        return "pc ?"
    text = f"pc {pc:#x}"
    sym = None if user else m.kernel.symbols.describe(pc)
    return f"{text} <{sym}>" if sym else text


def _running_harts(m: Machine) -> str:
    parts = []
    for h in m.harts:
        if h.parked:
            continue
        pc = hart_pc(m, h)  # the same view emu's own hang/panic report prints
        if pc is not None:
            parts.append(f"hart {h.id} {_where(m, pc)}")
    return ", ".join(parts) or "every hart parked"


def detector_detail(m: Machine, status: Status, log: bytes, t0: float = 0.0) -> str:
    """Why the detector stopped the guest, in one line: what, when, hart, pc and symbol.

    When: guest seconds into the case (from `t0`, as the case's own time is counted),
    then the machine's virtual time (the guest's log timestamps, emu's report).
    """
    now = m.clock.seconds()
    t = f"{now - t0:.3f} s into the case (virtual time {now:.3f} s)" if t0 else f"at {now:.3f} s"
    if status == Status.PANIC:
        mo = _PANIC_LINE.search(_ANSI.sub(b"", log))
        what = mo.group(0).decode("utf-8", "replace").strip() if mo else "a kernel panic on the console"
        if len(what) > REASON_MAX:
            what = what[:REASON_MAX - 3] + "..."
        return f"guest panic {t}: {what} ({_running_harts(m)})"
    if status == Status.FAULT_LOOP:
        from emu.trace.names import trap_name

        h = max(m.harts, key=lambda h: h.fault_repeats)
        if h.fault_repeats == 0:
            return f"fault loop {t}"
        cause, epc, tval = h.last_fault
        user = _trap_from_user(m, h.id)
        mode = " in user mode" if user else ""
        return (f"fault loop {t}: {trap_name(cause, m.cpu.trace.syscall_abi)} ({cause}) at {_where(m, epc, user)}{mode} "
                f"(tval {tval:#x}) {h.fault_repeats} times in a row on hart {h.id}")
    if status == Status.HANG:
        return f"guest hang {t}: every hart waits with no timer armed and no input to come ({_where_all(m)})"
    return ""


def _trap_from_user(m: Machine, hart: int) -> bool:
    """The last trap recorded on `hart` came from U-mode (its pc is then no kernel symbol)."""
    for e in reversed(m.events):
        if e[0] == "trap" and e[1] == hart:
            return len(e) > 6 and e[6] == 0
    return False


def _where_all(m: Machine) -> str:
    return ", ".join(f"hart {h.id} {_where(m, hart_pc(m, h))}" for h in m.harts)
