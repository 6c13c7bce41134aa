"""Linux 6.1 (built by images/linux from Debian's linux-source-6.1) on emu: the real SMP check."""
from __future__ import annotations

import re
import subprocess

import pexpect
import pytest

from emu.errors import EXIT_GUEST_PANIC
from tests.conftest import build_linux, emu_cmd



@pytest.fixture(scope="module")
def linux() -> tuple[str, str]:
    image, initrd = build_linux()
    return str(image), str(initrd)


def boot(linux, smp: int, append: str, timeout: int = 240) -> subprocess.CompletedProcess:
    image, initrd = linux
    return subprocess.run(emu_cmd("run", "--smp", str(smp), "-m", "256M", "--kernel", image, "--initrd", initrd,
                                  "--append", append, "--timeout", str(timeout)),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 30)


@pytest.mark.parametrize("smp", [1, 2, 4])
def test_selftest_passes_and_powers_off(linux, smp):
    res = boot(linux, smp, "console=ttyS0 emu.selftest=poweroff")
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-3000:] + res.stderr.decode()
    assert "SBI specification v2.0 detected" in out
    for ext in ("TIME", "IPI", "RFENCE", "SRST", "HSM"):
        assert re.search(rf"SBI {ext} extension detected", out), ext
    plural = "CPU" if smp == 1 else "CPUs"
    assert f"smp: Brought up 1 node, {smp} {plural}" in out
    assert "Run /init as init process" in out
    online = "0" if smp == 1 else f"0-{smp - 1}"
    assert f"check cpus: {smp} online ({online})" in out
    for check in ("pinned", "stress", "fp", "rdtime", "disk"):
        assert re.search(rf"^check {check}: ", out, re.M), check
    assert "selftest: ok" in out


def test_two_runs_give_identical_consoles(linux):
    runs = [boot(linux, 2, "console=ttyS0 emu.selftest=poweroff") for _ in range(2)]
    assert runs[0].returncode == 0
    assert re.search(rb"\[\s+\d+\.\d{6}\] Run /init", runs[0].stdout)  # printk timestamps included
    assert runs[0].stdout == runs[1].stdout


def test_interactive_prompt(linux):
    image, initrd = linux
    cmd = emu_cmd("run", "--smp", "2", "-m", "256M", "--kernel", image, "--initrd", initrd,
                  "--append", "console=ttyS0", "--timeout", "240")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=120)
    try:
        child.expect("linux> ")
        child.sendline("echo hello")
        child.expect(r"\nhello\r")
        child.expect("linux> ")
        child.sendline("stress 100000")
        child.expect(r"stress: (ok|FAIL)[^\r\n]*")
        assert child.match.group(1) == b"ok", child.match.group(0)
        child.expect("linux> ")
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_kernel_panic_is_reported(linux):
    res = boot(linux, 2, "console=ttyS0 rdinit=/missing", timeout=120)
    err = res.stderr.decode()
    assert res.returncode == EXIT_GUEST_PANIC, err
    assert b"Kernel panic - not syncing" in res.stdout
    assert "emu: guest panic" in err and "hart 0" in err and "hart 1" in err
    assert "Traceback" not in err


WORK_PARTS = ("pipes", "futex", "exec", "signals", "clock", "yield")


def test_work_passes_and_is_deterministic(linux):
    """The cross-CPU syscall workload (emu.work=N, scripts/bench_harts.py) at a small N: every
    part ok, and two runs give byte-identical consoles (emu runs on its virtual clock)."""
    runs = [boot(linux, 2, "console=ttyS0 emu.selftest=poweroff emu.work=1", timeout=120) for _ in range(2)]
    out = runs[0].stdout.decode(errors="replace")
    assert runs[0].returncode == 0, out[-3000:] + runs[0].stderr.decode()
    assert "selftest: ok" in out
    lines = re.findall(r"^work (\w+): (.*?)\r?$", out, re.M)
    assert [name for name, _ in lines] == list(WORK_PARTS), lines
    for name, text in lines:
        assert re.search(r", checksum [0-9a-f]{16} ok$", text), (name, text)
    assert "work pipes: 200 round trips cpu 0<->1," in out
    assert "work exec: 2 fork+exec of /init on cpus 0-1," in out
    assert "work: ok" in out
    assert out.index("selftest: ok") < out.index("work: ok") < out.index("init: powering off")
    assert runs[0].stdout == runs[1].stdout
