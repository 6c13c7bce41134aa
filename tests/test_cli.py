"""Bad input: one line on stderr, exit code 2, never a traceback."""
from __future__ import annotations

import subprocess

import pytest

from tests.conftest import emu_cmd
from tests.guest import build, needs_binutils


def run_emu(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run(emu_cmd("run", *args), input=stdin, capture_output=True, timeout=120)


def assert_bad_input(res: subprocess.CompletedProcess, needle: str) -> None:
    err = res.stderr.decode()
    assert res.returncode == 2, err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err, err


def test_missing_kernel_file(tmp_path):
    assert_bad_input(run_emu("--kernel", str(tmp_path / "nope")), "not found")


def test_junk_kernel(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"this is not a kernel, just some text\n" * 20)
    assert_bad_input(run_emu("--kernel", str(junk)), "not a riscv64")


def test_random_bytes_kernel(tmp_path):
    junk = tmp_path / "random.bin"
    junk.write_bytes(bytes([0xFF, 0xFF, 0xFF, 0xFF]) * 64)
    assert_bad_input(run_emu("--kernel", str(junk)), "not a riscv64")


def test_elf_for_another_architecture():
    import sys

    assert_bad_input(run_emu("--kernel", sys.executable), "expected riscv64")


def test_riscv_image_with_arch_x86_64(uboot):
    assert_bad_input(run_emu("--arch", "x86_64", "--kernel", str(uboot)),
                     "expected x86_64 (run it with --arch riscv64)")


@needs_binutils
def test_riscv_elf_with_arch_x86_64(tmp_path):
    elf = build("main:\n    EXIT_PASS\n", tmp_path)
    assert_bad_input(run_emu("--arch", "x86_64", "--kernel", str(elf)),
                     "ELF for RISCV, expected x86_64 (run it with --arch riscv64)")


def test_x86_64_kernel_on_the_riscv64_board():
    import sys

    assert_bad_input(run_emu("--kernel", sys.executable), "expected riscv64 (run it with --arch x86_64)")


def test_x86_64_needs_an_elf_kernel(tmp_path):
    raw = tmp_path / "raw.bin"
    raw.write_bytes(b"this is not a kernel\n" * 50)
    assert_bad_input(run_emu("--arch", "x86_64", "--kernel", str(raw)), "not an x86_64 kernel")


def test_unknown_arch():
    assert_bad_input(run_emu("--arch", "arm64", "--kernel", "x"), "must be one of riscv64, x86_64")


def test_truncated_elf(tmp_path, uboot):
    bad = tmp_path / "trunc.elf"
    bad.write_bytes(b"\x7fELF\x02\x01\x01" + bytes(20))
    assert_bad_input(run_emu("--kernel", str(bad)), "ELF")


def test_memory_too_small_for_kernel_and_initrd(tmp_path, uboot):
    initrd = tmp_path / "big.img"
    initrd.write_bytes(bytes(20 << 20))
    assert_bad_input(run_emu("-m", "16M", "--kernel", str(uboot), "--initrd", str(initrd)), "do not fit")


@pytest.mark.parametrize("args,needle", [
    (["--smp", "0"], "--smp"),
    (["--smp", "x"], "smp"),
    (["-m", "lots"], "memory size"),
    (["-m", "1M"], "RAM must be"),
    (["--arch", "mips"], "riscv64"),
    (["--quantum", "5"], "quantum"),
    (["--timeout", "-1"], "timeout"),
    (["--frobnicate"], "frobnicate"),
    (["--nic", "e1000e"], "--net"),
    (["--nic", "rtl8139", "--net", "none"], "rtl8139"),
])
def test_bad_flag_values(args, needle, uboot):
    assert_bad_input(run_emu("--kernel", str(uboot), *args), needle)


def test_missing_initrd(tmp_path, uboot):
    assert_bad_input(run_emu("--kernel", str(uboot), "--initrd", str(tmp_path / "none")), "initrd")


def test_qemu_spellings_accepted(uboot):
    res = run_emu("-smp", "2", "-m", "256M", "-nographic", "-kernel", str(uboot), "-append", "x", "--timeout", "60",
                  stdin=b"\n        poweroff\n")  # U-Boot's ctrlc() polling may eat a typed-ahead space or two
    assert res.returncode == 0, res.stderr.decode()
    assert b"U-Boot" in res.stdout


def test_timeout_bounds_a_run(uboot):
    res = run_emu("--kernel", str(uboot), "--timeout", "1")  # stdin at EOF: U-Boot polls its console forever
    assert res.returncode == 124
    assert b"timeout" in res.stderr


def test_gdb_port_in_use_is_bad_input(uboot):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        res = run_emu("--kernel", str(uboot), "--gdb", f"127.0.0.1:{port}")
    assert_bad_input(res, "cannot listen")


def test_hang_report_names_harts_pcs_and_symbols(tmp_path):
    """A guest that parks every hart with nothing to wake it: distinct exit code and a report."""
    import shutil

    from tests.guest import build

    if shutil.which("riscv64-unknown-elf-as") is None:
        pytest.skip("riscv64 binutils missing")
    elf = build("main:\n    csrw sie, zero\n    .globl idle_forever\nidle_forever:\n    wfi\n    j idle_forever\n", tmp_path)
    res = run_emu("--smp", "2", "-m", "64M", "--kernel", str(elf), "--timeout", "60")
    err = res.stderr.decode()
    assert res.returncode == 121, err
    assert "guest hang" in err and "hart 0: parked (wfi)" in err and "<idle_forever" in err
    assert "hart 1: stopped" in err
    assert "Traceback" not in err


def test_ctrl_a_x_quits_like_qemu(refguest_elf):
    import pexpect

    cmd = emu_cmd("run", "--smp", "2", "--kernel", str(refguest_elf), "--timeout", "60")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=30)
    try:
        child.expect("ref> ")
        child.send("\x01x")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_qemu_display_and_S_spellings_do_not_break_run(refguest_elf):
    """`-display none` used to parse as `-d isplay` (issue 17)."""
    res = run_emu("-display", "none", "-nographic", "-smp", "2", "-kernel", str(refguest_elf), "--timeout", "60",
                  stdin=b"poweroff\n")
    assert res.returncode == 0, res.stderr.decode()
    assert b"ref> " in res.stdout
    assert_bad_input(run_emu("-S", "-kernel", str(refguest_elf)), "--gdb")
