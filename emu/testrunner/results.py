"""What a test run gives: a verdict per case and the run's outcome (emu/testrunner/runner.py)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emu.testrunner.cases import Case, Status


@dataclass
class CaseResult:
    case: Case
    status: Status
    detail: str = ""
    output: bytes = b""  # the case's console (echo, output, prompt), or the whole boot
    report: str = ""  # what the machine reported (hang, panic, timeout) while it ran
    guest_s: float = 0.0
    host_s: float = 0.0
    ran: bool = True
    log_path: str | None = None
    trace_path: str | None = None
    pattern: str = ""  # the failure pattern the case's output holds, if any

    @property
    def expected(self) -> Status:
        return self.case.expected if self.case.expected is not None else Status.OK

    @property
    def recorded(self) -> tuple[Status, ...]:
        """What zcore-tests on QEMU records for this verdict (a list's statuses).

        A guest stopped by one of emu's detectors spins on under QEMU until the time
        limit: TIMEOUT.  After a panic, another hart may still bring the prompt back on
        QEMU; the output then holds the panic message, a failure pattern: FAILED.
        """
        if self.status == Status.PANIC and self.pattern:
            return (Status.TIMEOUT, Status.FAILED)
        if self.status.detected:
            return (Status.TIMEOUT,)
        return (self.status,)

    @property
    def matches(self) -> bool:
        """The verdict agrees with the list's (a detector's verdict with what QEMU records)."""
        return self.expected in self.recorded

    @property
    def differs(self) -> bool:
        return self.ran and not self.matches

    @property
    def list_status(self) -> Status:
        """The status --update-list writes: the list's own when it matches, else as QEMU records it."""
        return self.expected if self.matches else self.recorded[0]

    @property
    def regression(self) -> bool:
        """A case expected OK that did not pass: the run's exit status is non-zero."""
        return self.ran and self.expected == Status.OK and self.status != Status.OK


@dataclass
class RunOutcome:
    results: list[CaseResult]
    wall_s: float
    boot_host_s: float = 0.0
    boot_guest_s: float = 0.0
    boot_failed: str = ""
    boot_log: bytes = b""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_status(self) -> int:
        return 1 if any(r.regression for r in self.results) or self.boot_failed else 0
