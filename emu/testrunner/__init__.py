"""`emu test`: zcore-tests lists run on the console, one fork of the booted machine per case.

- cases.py: the list format (parse, rewrite statuses)
- verdict.py: failure patterns, prompt and time-limit conditions for Machine.run(until=...)
- runner.py: the boot, the pool of forked children, per-case results
- report.py: summary table, JUnit XML
- cli.py: the click command `test`
"""
from emu.testrunner.cases import Case, Status, parse_list
from emu.testrunner.runner import CaseResult, RunConfig, Runner, RunOutcome

__all__ = ["Case", "CaseResult", "RunConfig", "RunOutcome", "Runner", "Status", "parse_list"]
