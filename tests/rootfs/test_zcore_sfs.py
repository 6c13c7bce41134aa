"""The rootfs' SFS image (images/build/rootfs/riscv64.img, built from Debian packages) boots upstream
zCore to busybox's `/ # ` and runs busybox and our test programs, from `--initrd` and from `--drive`
(zCore's fallback when no initrd is given). Needs a local zCore build: EMU_ZCORE_KERNEL (no zCore
binary is part of the repository or of CI; without it these tests skip and say so)."""
from __future__ import annotations

import re
import shutil

import pexpect
import pytest

from tests.conftest import emu_cmd
from tests.rootfs.conftest import OUT
from tests.zcore import local_build

REASON = "zCore rootfs tests SKIPPED: set EMU_ZCORE_KERNEL to a local zCore riscv64 build"
(KERNEL,), pytestmark = local_build("EMU_ZCORE_KERNEL", reason=REASON)
PROMPT = "/ # "
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def shell(child: pexpect.spawn, command: str) -> str:
    child.sendline(command)
    child.expect_exact(PROMPT)
    return ANSI.sub("", child.before).replace("\r", "")


@pytest.mark.parametrize("how", ["initrd", "drive"])
def test_zcore_boots_the_sfs_image(rootfs, tmp_path, how):
    image = tmp_path / "riscv64.img"
    shutil.copy(OUT / "riscv64.img", image)  # zCore may write to it
    where = ["--initrd", str(image)] if how == "initrd" else ["--drive", f"file={image}"]
    cmd = emu_cmd("run", "--smp", "2", "-m", "1G", "--linux", "--kernel", KERNEL, *where, "--timeout", "240")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=120, encoding="utf-8", codec_errors="replace")
    try:
        child.expect_exact(PROMPT)
        out = shell(child, "busybox ls /bin/busybox /lib /tests")
        assert "ld-musl-riscv64.so.1" in out and "threads-static" in out, out
        out = shell(child, "busybox echo hi from busybox")
        assert re.search(r"^hi from busybox$", out, re.M), out
        for prog in ("/tests/threads", "/tests/threads-static"):
            out = shell(child, prog)
            assert "PASS threads" in out, out
    finally:
        child.close(force=True)
