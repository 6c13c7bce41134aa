"""Debian's U-Boot (S-mode build) boots to its prompt and answers like on QEMU."""
from __future__ import annotations

import subprocess
import time

import pexpect

from tests.conftest import emu_cmd


def test_uboot_interactive_session(uboot):
    cmd = emu_cmd("run", "--smp", "2", "-m", "512M", "--kernel", str(uboot), "--timeout", "120", "--realtime")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=60)
    try:
        child.expect("Hit any key to stop autoboot")
        child.send("\r")
        child.expect("=> ")
        child.sendline("version")
        child.expect(r"U-Boot 20\d\d\.\d\d")
        child.expect("=> ")
        child.sendline("sbi")
        child.expect(r"SBI (\d+)\.(\d+)")
        assert (int(child.match.group(1)), int(child.match.group(2))) >= (0, 3)
        child.expect("=> ")
        listed = child.before.decode()
        for ext in ("Timer Extension", "IPI Extension", "RFENCE Extension",
                    "Hart State Management Extension", "System Reset Extension"):
            assert ext in listed
        start = time.monotonic()
        child.sendline("sleep 1")
        child.expect("=> ")
        assert time.monotonic() - start >= 0.9  # --realtime: a virtual second is a host second
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_uboot_reset_ends_the_machine(uboot):
    out = subprocess.run(emu_cmd("run", "-m", "256M", "--kernel", str(uboot), "--timeout", "60"),
                         input=b"\n        reset\n", capture_output=True, timeout=90)
    assert b"resetting ..." in out.stdout
    assert out.returncode == 0


def test_same_command_twice_gives_identical_console(uboot):
    """Determinism: the virtual clock makes the console (timestamps, countdown) repeat exactly."""
    # Leading spaces: U-Boot's ctrlc() polling eats a typed-ahead byte now and then.
    script = b"\n" + b"".join(b"    " + c + b"\n" for c in (b"version", b"sbi", b"bdinfo", b"poweroff"))
    runs = [subprocess.run(emu_cmd("run", "--smp", "2", "-m", "256M", "--kernel", str(uboot), "--timeout", "60"),
                           input=script, capture_output=True, timeout=90) for _ in range(2)]
    assert runs[0].returncode == 0 and runs[1].returncode == 0
    assert b"poweroff ..." in runs[0].stdout
    assert runs[0].stdout == runs[1].stdout
