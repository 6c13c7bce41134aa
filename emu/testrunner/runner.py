"""The test runner: one boot, then one fork of the whole emulator per case.

Fork-per-case (the default): the parent builds the machine (its guest RAM is a private
mapping, so copy-on-write across fork), boots to the shell prompt and stops there
(`Machine.run(until=...)`).  For each case it forks a child that types the case on the
UART, runs until the prompt comes back or the guest-time limit passes, judges the
output, reports through a pipe and exits.  The parent never runs the guest again, so
every case starts from the same booted state, whatever the cases before it did (hang,
crash, power-off).  Up to `jobs` children are alive at once.

Boot-per-case (`boot_per_case`): each child boots a fresh machine.  With
`case_via="bootargs"` (the default in this mode, for zcore-tests' "bare" lists) the
case goes into the bootargs through `boot_append_template` and the machine runs until
the guest powers it off; with `case_via="console"` the child boots to the prompt and
types the case as in fork mode (for guests such as the reference guest that take no
program from the bootargs).

Guest time is `Machine.clock.seconds()`, from the case's start (its fork, or the boot in
boot-per-case mode); a host-time guard ends a case whose guest time does not advance
(the machine's own `timeout`, and the parent kills a child that outlives it).
"""
from __future__ import annotations

import io
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from emu.errors import EmuError
from emu.testrunner.cases import Case, Status
from emu.testrunner.forking import run_forked
from emu.testrunner.progress import Progress
from emu.testrunner.results import CaseResult, RunOutcome
from emu.testrunner.verdict import (
    DEFAULT_FAIL_PATTERNS,
    DEFAULT_PROMPT,
    UntilPrompt,
    UntilTime,
    detector_detail,
    detector_status,
    find_pattern,
    judge_output,
)

if TYPE_CHECKING:
    import mmap

    from emu.machine import Machine
    from loader.image import KernelImage

DEFAULT_TIMEOUT = 10.0  # guest seconds per case (zcore-tests: 10 s)
DEFAULT_BOOT_TIMEOUT = 60.0  # guest seconds to reach the first prompt
DEFAULT_TEMPLATE = "ROOTPROC={case}"
KILL_GRACE = 10.0  # host seconds past the guard before the parent kills a child


def default_host_timeout(timeout: float) -> float:
    """Host seconds a case may take: generous, it only catches a guest clock that stalls."""
    return max(60.0, 10.0 * timeout)


@dataclass
class RunConfig:
    kernel: str
    arch: str = "riscv64"  # the board: riscv64 (virt) or x86_64 (pc)
    initrd: str | None = None
    append: str = ""
    smp: int = 1
    ram_size: int = 2 << 30
    prompt: str = DEFAULT_PROMPT
    timeout: float = DEFAULT_TIMEOUT
    host_timeout: float | None = None  # None: default_host_timeout(timeout)
    boot_timeout: float = DEFAULT_BOOT_TIMEOUT
    jobs: int = 1  # 0: one per CPU
    fail_patterns: tuple[str, ...] = DEFAULT_FAIL_PATTERNS
    boot_per_case: bool = False
    case_via: str | None = None  # "console" or "bootargs"; None: bootargs with boot_per_case
    boot_append_template: str = DEFAULT_TEMPLATE
    trace_failed: str | None = None  # directory for logs (and traces) of failing cases
    trace: bool = True  # with trace_failed: also a trace of each failing case
    quantum: int = 20_000
    progress: TextIO | None = None  # live progress (stderr in the CLI)
    net: str | None = None  # a NIC's backend (`emu run --net`); None: no NIC
    nic: str = "virtio"  # its model (`emu run --nic`)

    def __post_init__(self) -> None:
        if self.case_via is None:
            self.case_via = "bootargs" if self.boot_per_case else "console"
        if self.case_via not in ("console", "bootargs"):
            raise EmuError(f"--case-via {self.case_via}: use console or bootargs")
        if self.case_via == "bootargs" and not self.boot_per_case:
            raise EmuError("--case-via bootargs needs --boot-per-case (a booted machine cannot take new bootargs)")
        if self.timeout <= 0:
            raise EmuError(f"--timeout {self.timeout:g}: must be positive")
        if self.host_timeout is not None and self.host_timeout <= 0:
            raise EmuError(f"--host-timeout {self.host_timeout:g}: must be positive")
        if self.jobs < 0:
            raise EmuError(f"--jobs {self.jobs}: must be 0 (one per CPU) or more")
        try:
            self.prompt_re = re.compile(self.prompt.encode("utf-8"))
        except re.error as err:
            raise EmuError(f"--prompt {self.prompt!r}: bad regular expression: {err}") from None
        if self.prompt_re.search(b"") is not None:
            raise EmuError(f"--prompt {self.prompt!r}: matches the empty string")
        if self.case_via == "bootargs":
            try:
                self.boot_append_template.format(case="x", argv="x", append="x")
            except (KeyError, IndexError, ValueError) as err:
                raise EmuError(f"--boot-append-template {self.boot_append_template!r}: {err} "
                               "(placeholders: {case}, {argv}, {append})") from None

    @property
    def host_guard(self) -> float:
        return self.host_timeout if self.host_timeout is not None else default_host_timeout(self.timeout)

    @property
    def patterns(self) -> list[bytes]:
        return [p.encode("utf-8") for p in self.fail_patterns if p]

    @property
    def job_count(self) -> int:
        return self.jobs or os.cpu_count() or 1

    @property
    def tracing(self) -> bool:
        return bool(self.trace_failed and self.trace)

    def bootargs_for(self, case: Case) -> str:
        """Bootargs of a boot-per-case run: --append, then the rendered template, ':'-joined.

        With `{append}` in the template, the template alone decides where --append goes.
        """
        if self.case_via != "bootargs":
            return self.append
        tpl = self.boot_append_template
        rendered = tpl.format(case=case.path, argv=case.command, append=self.append)
        if "{append}" in tpl or not self.append:
            return rendered
        return f"{self.append}:{rendered}" if rendered else self.append


# -- building machines ------------------------------------------------------------------------
class _Parts:
    """What every machine of a run shares: the board shape, the kernel, the initrd."""

    def __init__(self, config: RunConfig) -> None:
        from emu.board import BoardSpec
        from loader.image import load_kernel

        self.config = config
        probe = BoardSpec(harts=config.smp, ram_size=config.ram_size, bootargs="", arch=config.arch)
        self.kernel: KernelImage = load_kernel(config.kernel, probe.ram.base, probe.ram.size, config.arch)
        self.initrd: "bytes | mmap.mmap | None" = None
        if config.initrd is not None:
            from emu.cli import read_initrd

            self.initrd = read_initrd(config.initrd)  # the same reader (and errors) as emu run

    def machine(self, bootargs: str) -> Machine:
        from emu.board import BoardSpec
        from emu.machine import Machine, MachineOptions

        c = self.config
        board = BoardSpec(harts=c.smp, ram_size=c.ram_size, bootargs=bootargs, arch=c.arch)
        opts = MachineOptions(quantum=c.quantum, timeout=c.host_guard, stdin=None, stdout=None,
                              capture=True, report=io.StringIO(),
                              trace="-" if c.tracing else None, net=c.net, nic=c.nic)
        m = Machine(board, self.kernel, self.initrd, opts)
        m.opts.trace = None  # the tracer runs; the runner writes a case's trace itself
        return m


def _fresh_trace_log(m: Machine) -> None:
    """In a child: its own event log (the parent's temporary file is shared across forks)."""
    from emu.trace.events import EventLog

    if m.tracer is None or m.trace_log is None:
        return
    log = EventLog(set(m.trace_log.groups))
    m.trace_log = log
    m.tracer.log = log


def _write_trace(m: Machine, path: str | None) -> str | None:
    from emu.trace.output import write_trace

    if path is None or m.trace_log is None:
        return None
    write_trace(Path(path), m.trace_log, m.trace_profile, len(m.harts), m.stats(), m.cpu.trace.syscall_abi)
    return path


def _boot_to_prompt(m: Machine, config: RunConfig) -> tuple[bool, str]:
    until = UntilPrompt(config.prompt_re, 0.0, config.boot_timeout, skip_echo=False)
    r = m.run(until=until)
    if r.reason == "paused" and until.match is not None:
        return True, ""
    if r.reason == "paused":
        return False, f"no prompt ({config.prompt!r}) within {config.boot_timeout:g} s of guest time"
    found = detector_status(r.reason)
    if found is not None:
        assert m.console.log is not None
        return False, f"{found.value}: {detector_detail(m, found, bytes(m.console.log))}"
    return False, f"the machine ended before the prompt: {r.reason or 'stopped'} (exit {r.exit_code})"


def _shell_case(m: Machine, case: Case, config: RunConfig, trace_path: str | None) -> dict[str, Any]:
    """Type the case on the booted machine's shell and judge what comes back."""
    m.attach_console(None, None, True)
    m.opts.report = io.StringIO()
    m.opts.timeout = config.host_guard
    _fresh_trace_log(m)
    t0 = m.clock.seconds()
    m.type_input(case.command.encode("utf-8") + b"\n")
    until = UntilPrompt(config.prompt_re, t0, config.timeout)
    r = m.run(until=until)
    assert m.console.log is not None
    log = bytes(m.console.log)
    if r.reason == "paused":
        if until.timed_out:
            status, detail = Status.TIMEOUT, f"no prompt within {config.timeout:g} s of guest time"
        else:
            status, detail = judge_output(until.output(log), config.patterns)
    elif r.reason == "timeout":
        status, detail = Status.TIMEOUT, f"host-time guard: {config.host_guard:g} s"
    elif (found := detector_status(r.reason)) is not None:
        status, detail = found, detector_detail(m, found, log, t0)
    else:
        status, detail = Status.FAILED, f"the guest ended the machine: {r.reason or 'stopped'} (exit {r.exit_code})"
    output = until.output(log) if until.match is not None else log
    return _child_result(m, status, detail, log, m.clock.seconds() - t0, trace_path,
                         pattern=find_pattern(output, config.patterns))


def _boot_case(parts: _Parts, case: Case, config: RunConfig, trace_path: str | None) -> dict[str, Any]:
    m = parts.machine(config.bootargs_for(case))
    if config.case_via == "console":
        ok, why = _boot_to_prompt(m, config)
        if not ok:
            assert m.console.log is not None
            return _child_result(m, Status.FAILED, f"boot failed: {why}", bytes(m.console.log),
                                 m.clock.seconds(), trace_path)
        return _shell_case(m, case, config, trace_path)
    until = UntilTime(0.0, config.timeout)
    r = m.run(until=until)
    assert m.console.log is not None
    log = bytes(m.console.log)
    if r.reason == "paused":
        status, detail = Status.TIMEOUT, f"no power-off within {config.timeout:g} s of guest time"
        idle = _idle_after_boot(m, until, log, config)
        if idle:
            detail += f"; {idle}"
    elif r.reason == "timeout":
        status, detail = Status.TIMEOUT, f"host-time guard: {config.host_guard:g} s"
    elif (found := detector_status(r.reason)) is not None:
        status, detail = found, detector_detail(m, found, log)
    elif r.exit_code != 0:
        status, detail = Status.FAILED, f"exit status {r.exit_code}: {r.reason}"
    else:
        status, detail = judge_output(log, config.patterns)
    return _child_result(m, status, detail, log, m.clock.seconds(), trace_path,
                         pattern=find_pattern(log, config.patterns))


NO_POWEROFF = "the kernel does not power off after its root process"
NO_POWEROFF_FIX = ("a zCore kernel powers off after ROOTPROC only when built with its baremetal-test feature; "
                   "without it, drop --boot-per-case")


def _idle_after_boot(m: Machine, until: UntilTime, log: bytes, config: RunConfig) -> str:
    """A boot-per-case run that reached its time limit: did the guest just sit idle?

    A kernel that never powers off (zCore built without its `baremetal-test` feature)
    runs the case, then waits for ever (or shows its shell prompt): the console was
    quiet and every hart waiting for most of the budget.  Returns why, or "".
    """
    quiet_from = until.last_output_s
    prompt = config.prompt_re.search(log) is not None
    quiet = config.timeout - (quiet_from - until.t0)
    if not prompt and (quiet < config.timeout / 2 or not all(h.parked for h in m.harts)):
        return ""
    shown = " at its shell prompt" if prompt else ""
    return f"the guest sat idle{shown} from {quiet_from:.2f} s on: {NO_POWEROFF}"


def _child_result(m: Machine, status: Status, detail: str, log: bytes, guest_s: float,
                  trace_path: str | None, pattern: bytes | None = None) -> dict[str, Any]:
    report = m.opts.report.getvalue() if isinstance(m.opts.report, io.StringIO) else ""
    trace = None
    if status != Status.OK and trace_path is not None:
        try:
            trace = _write_trace(m, trace_path)
        except EmuError as err:
            report += f"emu test: {err}\n"
    return {"status": status.value, "detail": detail, "output": log.decode("latin-1"),
            "report": report, "guest_s": guest_s, "trace": trace,
            "pattern": pattern.decode("utf-8", "replace") if pattern else ""}


# -- the pool of forked children --------------------------------------------------------------
# -- the run -----------------------------------------------------------------------------------
def _safe_name(path: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._+-]+", "_", path).strip("._") or "case"
    return name[:120]


class Runner:
    def __init__(self, config: RunConfig, cases: list[Case]) -> None:
        self.config = config
        self.cases = cases
        self.parts = _Parts(config)
        self.names: dict[int, str] = {}
        if config.trace_failed:
            self.out_dir = Path(config.trace_failed)
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise EmuError(f"--trace-failed {config.trace_failed}: {err.strerror}") from None
            used: set[str] = set()
            for i, case in enumerate(cases):
                base = name = _safe_name(case.path)
                n = 2
                while name in used:
                    name, n = f"{base}-{n}", n + 1
                used.add(name)
                self.names[i] = name

    def _trace_path(self, index: int) -> str | None:
        if not self.config.tracing:
            return None
        return str(self.out_dir / f"{self.names[index]}.trace.json")

    def run(self) -> RunOutcome:
        config = self.config
        t_start = time.monotonic()
        results: list[CaseResult | None] = [None] * len(self.cases)
        to_run: list[int] = []
        for i, case in enumerate(self.cases):
            if case.expected == Status.SKIPPED:
                results[i] = CaseResult(case, Status.SKIPPED, "SKIPPED in the list", ran=False)
            else:
                to_run.append(i)
        progress = Progress(len(to_run), config.progress)
        outcome = RunOutcome([], 0.0)

        if not config.boot_per_case and to_run:
            m = self.parts.machine(config.append)
            h0 = time.monotonic()
            ok, why = _boot_to_prompt(m, config)
            outcome.boot_host_s = time.monotonic() - h0
            outcome.boot_guest_s = m.clock.seconds()
            assert m.console.log is not None
            outcome.boot_log = bytes(m.console.log)
            progress.note(f"boot {'to the prompt' if ok else 'FAILED'}: {outcome.boot_guest_s:.2f} s guest "
                          f"({outcome.boot_host_s:.2f} s host){'' if ok else ': ' + why}")
            if not ok:
                report = m.opts.report.getvalue() if isinstance(m.opts.report, io.StringIO) else ""
                outcome.boot_failed = why
                for i in to_run:
                    results[i] = CaseResult(self.cases[i], Status.FAILED, f"boot failed: {why}",
                                            outcome.boot_log, report)
                to_run = []
                self._save_boot_log(outcome, report)
            else:
                def child_fn(i: int) -> dict[str, Any]:
                    return _shell_case(m, self.cases[i], config, self._trace_path(i))
        else:
            def child_fn(i: int) -> dict[str, Any]:
                return _boot_case(self.parts, self.cases[i], config, self._trace_path(i))

        def on_done(k: int, res: dict[str, Any], host_s: float) -> None:
            i = to_run[k]
            result = self._result(i, res, host_s)
            results[i] = result
            progress.done(result)
            if config.case_via == "bootargs" and "first" not in outcome.extra:
                outcome.extra["first"] = result.case.path
                if result.status == Status.TIMEOUT and NO_POWEROFF in result.detail:
                    outcome.extra["no_poweroff"] = f"{NO_POWEROFF} ({NO_POWEROFF_FIX})"
                    progress.note(f"warning: {result.case.path}: TIMEOUT: {result.detail} ({NO_POWEROFF_FIX}); "
                                  "every case will time out the same way")

        if to_run:
            kill_after = config.host_guard + KILL_GRACE
            if config.boot_per_case and config.case_via == "console":
                kill_after += config.host_guard  # the boot has its own guard
            run_forked(to_run, child_fn, config.job_count, kill_after, on_done, progress.tick)
        progress.finish()
        outcome.results = [r for r in results if r is not None]
        outcome.wall_s = time.monotonic() - t_start
        if config.trace_failed and any(r.ran and r.status != Status.OK for r in outcome.results) \
                and outcome.boot_log and not outcome.boot_failed:
            self._save_boot_log(outcome, "")
        return outcome

    def _result(self, index: int, res: dict[str, Any], host_s: float) -> CaseResult:
        config = self.config
        case = self.cases[index]
        if res.get("killed"):
            result = CaseResult(case, Status.TIMEOUT, f"host-time guard: killed after {host_s:.0f} s", host_s=host_s)
        elif "error" in res:
            result = CaseResult(case, Status.FAILED, f"runner error: {res['error'].strip().splitlines()[-1]}",
                                report=res["error"], host_s=host_s)
        else:
            result = CaseResult(case, Status(res["status"]), res["detail"], res["output"].encode("latin-1"),
                                res.get("report", ""), float(res["guest_s"]), host_s,
                                trace_path=res.get("trace"), pattern=res.get("pattern", ""))
        if config.trace_failed and result.status != Status.OK:
            path = self.out_dir / f"{self.names[index]}.log"
            header = (f"# emu test: {case.path}: expected {result.expected}, got {result.status}"
                      f"{': ' + result.detail if result.detail else ''}\n")
            body = result.output
            if result.report:
                body += b"\n# emu:\n" + result.report.encode("utf-8", "replace")
            try:
                path.write_bytes(header.encode("utf-8") + body)
                result.log_path = str(path)
            except OSError as err:
                raise EmuError(f"cannot write {path}: {err.strerror}") from None
        return result

    def _save_boot_log(self, outcome: RunOutcome, report: str) -> None:
        if not self.config.trace_failed:
            return
        path = self.out_dir / "_boot.log"
        data = outcome.boot_log + (b"\n# emu:\n" + report.encode("utf-8", "replace") if report else b"")
        path.write_bytes(data)
