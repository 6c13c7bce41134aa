"""The Linux guest and the busybox + musl rootfs, built once per session by their Makefiles (cached
under images/build/: a no-op when up to date)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

LIST = ROOT / "tests" / "lists" / "rootfs.txt"
IMAGE = ROOT / "images" / "build" / "linux" / "Image"
OUT = ROOT / "images" / "build" / "rootfs"
INITRD = OUT / "initramfs.cpio.gz"
SOURCES = ROOT / "images" / "build" / "cache" / "rootfs" / "src" / ".emu-fetched"


def make(target_dir: str, **variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(ROOT / "images" / target_dir),
                           *(f"{k}={v}" for k, v in variables.items())],
                          capture_output=True, text=True, timeout=3600)


@pytest.fixture(scope="session")
def rootfs() -> dict[str, float]:
    """Builds the Linux guest and the rootfs (cached: a no-op when up to date); the build times."""
    if shutil.which("riscv64-linux-gnu-gcc") is None:
        pytest.skip("riscv64-linux-gnu-gcc missing: scripts/setup.sh installs it")
    times = {}
    t0 = time.monotonic()
    res = make("linux")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    times["linux"] = time.monotonic() - t0
    t0 = time.monotonic()
    res = make("rootfs", PYTHON=sys.executable)
    if res.returncode != 0 and not SOURCES.exists():
        pytest.skip("Debian's musl/busybox sources are unavailable (apt-get source failed): "
                    + (res.stderr.strip().splitlines() or ["?"])[-1])
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    times["rootfs"] = time.monotonic() - t0
    return times


