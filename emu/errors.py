"""Errors and exit codes shared by the CLI and the machine."""
from __future__ import annotations

# Exit codes of `emu run` besides the guest's own (test finisher / SBI SRST).
EXIT_BAD_INPUT = 2
EXIT_GUEST_PANIC = 120  # the guest printed a kernel panic
EXIT_GUEST_HANG = 121  # every hart parked with nothing that can wake it
EXIT_FAULT_LOOP = 122  # the same trap taken again and again without progress
EXIT_HOST_FAULT = 123  # the CPU model stopped on something it cannot emulate
EXIT_TIMEOUT = 124  # --timeout expired (as coreutils `timeout`)
EXIT_IDLE_EOF = 125  # piped console input ended and the guest then stayed idle (--on-idle-eof exit)
EXIT_REPLAY_DIVERGED = 119  # --replay: the run did not reach a recorded input where it was recorded
# A host signal (SIGINT, SIGTERM, SIGHUP) ends the run with 128 + its number, as shells report it.


class EmuError(Exception):
    """Bad input or configuration: reported as one line, exit code 2."""


class ReplayDiverged(Exception):
    """The replay does not reach a recorded input at its recorded position (emu/record.py).

    Here rather than in emu/record.py so that a run with no recording never imports it."""

    exit_code = EXIT_REPLAY_DIVERGED
