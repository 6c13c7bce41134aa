"""Fixtures shared by the qemu-system-riscv64 front-end tests."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import emu_cmd


@pytest.fixture(scope="module")
def shim_dir(tmp_path_factory) -> Path:
    """A directory holding the `qemu-system-riscv64` shim, written by `emu shim DIR`."""
    d = tmp_path_factory.mktemp("shim")
    res = subprocess.run(emu_cmd("shim", str(d)), capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == str(d)
    assert os.access(d / "qemu-system-riscv64", os.X_OK)
    return d
