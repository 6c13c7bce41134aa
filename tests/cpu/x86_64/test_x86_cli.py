"""`emu run --arch x86_64`: a guest writes to COM1 (port 0x3F8) and powers off through
the ACPI PM port (0x604), through the command line as a user runs it."""
from __future__ import annotations

import subprocess

from tests.conftest import emu_cmd
from tests.cpu.x86_64.x86guest import build, needs_x86

pytestmark = needs_x86


def test_emu_run_arch_x86_64_console_and_power_off(tmp_path):
    elf = build("""
main:
    lea rsi, [rip + msg]
    mov dx, 0x3F8
1:  lodsb
    test al, al
    jz 2f
    out dx, al
    jmp 1b
2:  POWER_OFF
    .data
msg: .asciz "hello from x86_64\\n"
""", tmp_path)
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--smp", "2", "--kernel", str(elf), "--timeout", "30"),
                         capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout == b"hello from x86_64\n"


def test_emu_run_arch_x86_64_drive_errors_are_one_line(tmp_path):
    """--drive and --net reach the PC's PCI devices: a bad one is one line and exit 2."""
    elf = build("main:\n    POWER_OFF\n", tmp_path)
    for extra, message in (((("--drive", f"file={tmp_path / 'missing.img'}")), b"no such file"),
                           (("--net", "bogus"), b"use user, tap,ifname=NAME or none")):
        res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--kernel", str(elf), *extra, "--timeout", "30"),
                             capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
        assert res.returncode == 2, res.stderr
        assert res.stderr.count(b"\n") == 1 and message in res.stderr, res.stderr
    disk = tmp_path / "disk.img"
    disk.write_bytes(bytes(4096))
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--kernel", str(elf), "--drive", f"file={disk}",
                                 "--net", "none", "--timeout", "30"),
                         capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr.decode()
