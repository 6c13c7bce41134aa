"""Fixtures of the `emu test` tests: the reference guest, built once per session into a
temporary directory (never into the shared images/build), and the command line."""
from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
REFGUEST_SRC = REPO / "images" / "refguest"
REFGUEST_LIST = REPO / "tests" / "lists" / "refguest.txt"
# How the reference list is run (as its header says): ipi mode lets idle harts sleep,
# so the case that waits for input reaches the guest-time limit fast.
REFGUEST_ARGS = ("--smp", "2", "-m", "256M", "--append", "offload=ipi", "--prompt", "ref> ", "--timeout", "2")
HOST_TIMEOUT = 120  # host seconds for one emu test process


def emu_test_cmd(*args: str) -> list[str]:
    """`emu test ARGS` once emu/cli.py registers the command, else `python -m emu.testrunner`."""
    from emu.cli import main

    if "test" in main.commands:
        return [sys.executable, "-m", "emu", "test", *args]
    return [sys.executable, "-m", "emu.testrunner", *args]


def run_emu_test(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(emu_test_cmd(*args), check=False, capture_output=True, text=True, timeout=HOST_TIMEOUT, cwd=cwd)


@pytest.fixture(scope="session")
def refguest_elf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [t for t in ("riscv64-unknown-elf-gcc", "make") if shutil.which(t) is None]
    if missing:
        reason = (f"emu test tests SKIPPED: {' and '.join(missing)} not found "
                  "(apt-get install gcc-riscv64-unknown-elf make)")
        warnings.warn(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("refguest-for-testrunner") / "build"
    res = subprocess.run(["make", "-C", str(REFGUEST_SRC), f"OUT={out}", "all"], check=False,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"building the reference guest failed:\n{res.stdout}{res.stderr}"
    return out / "refguest.elf"
