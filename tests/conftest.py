import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UBOOT = Path("/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin")


def emu_cmd(*args: str) -> list[str]:
    """The emu command line as a user types it (same interpreter as the tests)."""
    return [sys.executable, "-m", "emu", *args]


@pytest.fixture(scope="session")
def uboot() -> Path:
    if not UBOOT.exists():
        pytest.skip("Debian's U-Boot is missing: apt-get install u-boot-qemu")
    return UBOOT
