"""`emu test`: zcore-tests lists run on the console, one fork of the booted machine per case.

- cases.py: the list format (parse, rewrite statuses)
- verdict.py: failure patterns, prompt and time-limit conditions for Machine.run(until=...)
- runner.py: the boot, the cases in forked children, their results
- forking.py: the pool of forked children (processes only)
- results.py: a case's verdict and the run's outcome
- progress.py: the live progress line
- report.py: summary table, JUnit XML
- cli.py: the click command `test`
"""
from emu.testrunner.cases import Case, Status, parse_list
from emu.testrunner.results import CaseResult, RunOutcome
from emu.testrunner.runner import RunConfig, Runner

__all__ = ["Case", "CaseResult", "RunConfig", "RunOutcome", "Runner", "Status", "parse_list"]
