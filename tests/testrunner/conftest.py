"""The `emu test` command line and the reference list's arguments (the reference guest
comes from tests/conftest.py's `refguest_elf`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[2]
REFGUEST_LIST = REPO / "tests" / "lists" / "refguest.txt"
# How the reference list is run (as its header says): ipi mode lets idle harts sleep,
# so the case that waits for input reaches the guest-time limit fast.
REFGUEST_ARGS = ("--smp", "2", "-m", "256M", "--append", "offload=ipi", "--prompt", "ref> ", "--timeout", "2")
HOST_TIMEOUT = 120  # host seconds for one emu test process


def emu_test_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "emu", "test", *args]


def run_emu_test(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(emu_test_cmd(*args), check=False, capture_output=True, text=True, timeout=HOST_TIMEOUT, cwd=cwd)
