"""Acceptance tests of the reference guest (issue 4), run on emu.

The guest is built once per session from images/refguest into a temporary directory
(never into the shared images/build), then booted with `python -m emu run --kernel ...`
in each offload mode and driven through its shell with pexpect.  Every emu process gets
`--timeout`, so a hung guest ends the process instead of the test run.

Acceptance (issue 4):
1. each mode: hello, bench 100, sleep 50, spin beside the shell, read-based echo, ps,
   getcpu (hart 1 with offload, hart 0 with off), poweroff -> exit status 0;
   `--smp 1` with offload=poll|ipi refuses with the guest's message and exit status 1;
2. two runs with the same input give byte-identical console output;
4. the sources build with -Wall -Wextra and no warning.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect", reason="pexpect missing: pip install pexpect")

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "images" / "refguest"
GCC = "riscv64-unknown-elf-gcc"
PROMPT = "ref> "
MODES = ("poll", "ipi", "off")
EXEC_HART = {"poll": 1, "ipi": 1, "off": 0}
EMU_TIMEOUT = 90  # host seconds: emu's own --timeout, so no emu outlives its test
EXPECT_TIMEOUT = 30  # host seconds per expected output
EXIT_SYSTEM_FAILURE = 1  # emu's exit status for SBI SRST shutdown with reason "system failure"


@dataclass
class Build:
    elf: Path
    log: str  # make's stdout + stderr


@pytest.fixture(scope="session")
def refguest(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """Build the guest once, from a clean output directory of our own."""
    missing = [tool for tool in (GCC, "make") if shutil.which(tool) is None]
    if missing:
        reason = (f"reference guest tests SKIPPED: {' and '.join(missing)} not found "
                  "(apt-get install gcc-riscv64-unknown-elf make)")
        warnings.warn(reason)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("refguest") / "build"
    res = subprocess.run(["make", "-C", str(SRC), f"OUT={out}", "clean", "all"],
                         capture_output=True, text=True, timeout=600)
    log = res.stdout + res.stderr
    assert res.returncode == 0, f"building the reference guest failed:\n{log}"
    elf = out / "refguest.elf"
    assert elf.is_file(), log
    return Build(elf, log)


def emu_cmd(elf: Path | None, append: str | None, smp: int = 2, *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "emu", "run", "--smp", str(smp), "--timeout", str(EMU_TIMEOUT)]
    if elf is not None:
        cmd += ["--kernel", str(elf)]
    if append is not None:
        cmd += ["--append", append]
    return cmd + list(extra)


class Guest:
    """One emu process on a pty, driven line by line through the guest's shell."""

    def __init__(self, cmd: list[str]) -> None:
        self.transcript = ""
        self.child = pexpect.spawn(cmd[0], cmd[1:], cwd=str(REPO), encoding="utf-8",
                                   codec_errors="replace", timeout=EXPECT_TIMEOUT)

    def expect(self, pattern: str) -> str:
        """Wait for `pattern` (exact); return what came before it."""
        self.child.expect_exact(pattern)
        self.transcript += self.child.before + pattern
        return self.child.before

    def boot(self) -> str:
        return self.expect(PROMPT)

    def send_line(self, line: str) -> None:
        self.child.send(line + "\r")

    def run(self, line: str) -> str:
        """Type a command; return its output (without the echoed line) up to the next prompt."""
        self.send_line(line)
        out = self.expect(PROMPT)
        # readline() echoes every character it read()s, then a newline
        assert out.startswith(line + "\r\n"), f"command line not echoed: {out!r}"
        return out[len(line) + 2:]

    def poweroff(self) -> int:
        """`poweroff` at the prompt; return emu's exit status."""
        self.send_line("poweroff")
        self.expect("refguest: poweroff")
        return self.wait_exit()

    def wait_exit(self) -> int:
        self.child.expect(pexpect.EOF)
        self.transcript += self.child.before
        self.child.close()
        assert self.child.signalstatus is None, f"emu killed by signal {self.child.signalstatus}"
        return self.child.exitstatus

    def close(self) -> None:
        if self.child.isalive():
            self.child.close(force=True)


@pytest.fixture
def boot(refguest: Build):
    """boot(mode) -> Guest at its first prompt (smp 2, --append offload=MODE)."""
    guests: list[Guest] = []

    def start(mode: str) -> Guest:
        g = Guest(emu_cmd(refguest.elf, f"offload={mode}"))
        guests.append(g)
        banner = g.boot()
        assert f"refguest: offload={mode}\r\n" in banner, banner
        return g

    yield start
    for g in guests:
        g.close()


modes = pytest.mark.parametrize("mode", MODES)


# -- acceptance 1: each mode ---------------------------------------------------------------

@modes
def test_boot_banner_help_and_poweroff(boot, mode: str) -> None:
    g = boot(mode)
    banner = g.transcript
    assert "refguest: reference offload guest" in banner
    assert "refguest: 2 hart(s), RAM 0x80000000+" in banner
    assert f'refguest: bootargs "offload={mode}"' in banner
    if mode == "off":
        assert "executes system calls" not in banner
    else:
        assert f"refguest: hart 1 executes system calls (offload={mode})" in banner
    out = g.run("help")
    for cmd in ("hello", "echo", "getcpu", "bench", "sleep", "spin", "ps", "wait", "poweroff"):
        assert re.search(rf"^\s+{cmd}\b", out, re.M), f"help lacks {cmd}: {out!r}"
    assert g.poweroff() == 0


@modes
def test_hello(boot, mode: str) -> None:
    g = boot(mode)
    assert g.run("hello") == "hello, world! (pid 2)\r\n"
    assert g.run("hello") == "hello, world! (pid 3)\r\n"
    assert g.poweroff() == 0


@modes
def test_getcpu(boot, mode: str) -> None:
    g = boot(mode)
    assert g.run("getcpu") == f"getcpu: system calls executed on hart {EXEC_HART[mode]}\r\n"
    assert g.poweroff() == 0


@modes
def test_bench_100(boot, mode: str) -> None:
    g = boot(mode)
    out = g.run("bench 100")
    m = re.fullmatch(r"bench: (\d+) calls, mean (\d+) ticks, executed on hart (\d+)\r\n", out)
    assert m, out
    calls, ticks, hart = (int(x) for x in m.groups())
    assert calls == 100
    assert ticks > 0
    assert hart == EXEC_HART[mode]
    assert g.poweroff() == 0


def _bench_ticks(refguest: Build, mode: str, *extra: str) -> int:
    g = Guest(emu_cmd(refguest.elf, f"offload={mode}", 2, *extra))
    g.boot()
    m = re.search(r"mean (\d+) ticks", g.run("bench 1000"))
    assert m, g.transcript
    assert g.poweroff() == 0
    return int(m.group(1))


@pytest.mark.parametrize("mips", ["1000", "100"])
def test_offloaded_call_latency_follows_the_work_not_the_scheduler(refguest: Build, mips: str) -> None:
    """A null system call handed to hart 1 costs what the guest does, whatever the clock rate:
    a polling hart sees the other's store within one spin detection (not a scheduling round,
    which was 2000 ticks at the default quantum), and an IPI wakes its target at once."""
    off, ipi, poll = (_bench_ticks(refguest, mode, "--mips", mips) for mode in ("off", "ipi", "poll"))
    # the guest prints whole ticks (100 instructions at --mips 1000): allow one of rounding
    assert poll <= 2 * off + 1, f"--mips {mips}: poll {poll} ticks per call, off {off}"
    assert ipi <= off, f"--mips {mips}: ipi {ipi} ticks per call, off {off}"
    # a local null call is a few hundred instructions (a tick is mips / 10 of them); a poll
    # wrongly seen in the shell's pending wait once cost ~10,000 (time skipped, not run)
    assert off * int(mips) // 10 <= 2000, f"--mips {mips}: off {off} ticks per call"


@modes
def test_sleep_50(boot, mode: str) -> None:
    g = boot(mode)
    # the program itself checks with gettime that at least 50 ms passed
    assert g.run("sleep 50") == "sleep: slept 50 ms\r\n"
    assert g.poweroff() == 0


@modes
def test_read_echo(boot, mode: str) -> None:
    """`echo` with no words read()s a line from the console (a pending read on the executing hart)."""
    g = boot(mode)
    g.send_line("echo")
    g.expect("echo: type a line\r\n")
    g.send_line("the quick brown fox")
    # the line is echoed character by character as read() returns them, then printed back
    g.expect("the quick brown fox\r\n")
    g.expect('echo: you typed "the quick brown fox"\r\n')
    g.expect(PROMPT)
    assert g.run("echo two words") == "two words\r\n"
    assert g.poweroff() == 0


@modes
def test_ps(boot, mode: str) -> None:
    g = boot(mode)
    out = g.run("ps")
    lines = out.splitlines()
    assert lines[0].split() == ["PID", "PPID", "STATE", "NAME"], out
    rows = [line.split(None, 2) for line in lines[1:]]
    table = {int(pid): (int(ppid), rest.rsplit(None, 1)) for pid, ppid, rest in rows}
    assert table[1] == (0, ["syscall wait", "shell"]), out
    # with offload, ps is parked in its own ps call; with off, hart 0 runs it in the task's stead
    state = "running" if mode == "off" else "syscall ps"
    assert table[2] == (1, [state, "ps"]), out
    assert len(table) == 2, out
    assert g.poweroff() == 0


@modes
def test_spin_beside_the_shell(boot, mode: str) -> None:
    """A CPU-bound task in the background; timer preemption keeps the shell answering."""
    g = boot(mode)
    out = g.run("spin 300 &")
    m = re.fullmatch(r"\[(\d+)\] spin 300\r\n", out)
    assert m, out
    spin = int(m.group(1))
    assert g.run("hello") == f"hello, world! (pid {spin + 1})\r\n"
    out = g.run("ps")
    listed_at = len(g.transcript)
    assert re.search(rf"^\s*{spin}\s+1\s+(running|ready|syscall \w+)\s+spin\s*$", out, re.M), out
    assert re.search(r"^\s*1\s+0\s+syscall wait\s+shell\s*$", out, re.M), out
    assert "spin: done" not in g.transcript, "spin ended before the shell answered"
    # typed at host times: spin may finish while `wait` is echoed, its message in between
    g.send_line("wait")
    g.expect(f"[{spin}] done, exit 0\r\n")
    g.expect(PROMPT)
    assert "spin: done after 300 ms\r\n" in g.transcript
    assert f"[{spin}] done, exit 0\r\n" in g.transcript
    # right after ps's prompt is after ps listed it (seen in CI: nothing typed in between)
    assert g.transcript.index("spin: done") >= listed_at, "spin finished before ps listed it"
    assert g.poweroff() == 0


@modes
def test_unknown_command(boot, mode: str) -> None:
    g = boot(mode)
    assert g.run("nosuch") == "ref: nosuch: unknown command (try help)\r\n"
    assert g.poweroff() == 0


@pytest.mark.parametrize("mode", ("poll", "ipi"))
def test_smp1_refuses_offload(refguest: Build, mode: str) -> None:
    g = Guest(emu_cmd(refguest.elf, f"offload={mode}", smp=1))
    try:
        g.expect(f"refguest: offload={mode} needs 2 harts (found 1)")
        status = g.wait_exit()
    finally:
        g.close()
    assert PROMPT not in g.transcript, g.transcript
    assert status == EXIT_SYSTEM_FAILURE, g.transcript


def test_smp1_defaults_to_off(refguest: Build) -> None:
    g = Guest(emu_cmd(refguest.elf, None, smp=1))
    try:
        g.boot()
        assert "refguest: offload=off\r\n" in g.transcript
        assert g.run("getcpu") == "getcpu: system calls executed on hart 0\r\n"
        assert g.poweroff() == 0
    finally:
        g.close()


def test_emu_run_linux_boots_the_reference_guest() -> None:
    """The README's main-job command: no --kernel; emu builds images/build/refguest if missing."""
    if shutil.which(GCC) is None and not (REPO / "images/build/refguest/refguest.elf").exists():
        pytest.skip(f"{GCC} missing and the reference guest is not built")
    g = Guest(emu_cmd(None, None, 2, "--linux"))
    try:
        g.boot()
        assert "refguest: hart 1 executes system calls (offload=poll)" in g.transcript
        assert g.poweroff() == 0
    finally:
        g.close()


# -- acceptance 2: determinism --------------------------------------------------------------

# Typed ahead in one piece (well under the guest's 256-byte input buffer); emu reads it all
# at its first input poll, before the guest runs, so arrival time is fixed in virtual time.
SCRIPT = (
    "hello\n"
    "getcpu\n"
    "bench 100\n"
    "sleep 50\n"
    "echo\n"
    "typed ahead\n"
    "spin 300 &\n"
    "hello\n"
    "ps\n"
    "wait\n"
    "poweroff\n"
)


@modes
def test_same_input_same_output(refguest: Build, mode: str, tmp_path: Path) -> None:
    script = tmp_path / "input.txt"
    script.write_text(SCRIPT)
    outputs = []
    for _ in range(2):
        with script.open("rb") as stdin:
            res = subprocess.run(emu_cmd(refguest.elf, f"offload={mode}"), stdin=stdin,
                                 capture_output=True, cwd=REPO, timeout=EMU_TIMEOUT + 30)
        assert res.returncode == 0, (res.returncode, res.stdout.decode(errors="replace"),
                                     res.stderr.decode(errors="replace"))
        outputs.append(res.stdout)
    text = outputs[0].decode()
    # no typed-ahead input was lost: every command ran
    for expected in ("hello, world! (pid 2)", f"executed on hart {EXEC_HART[mode]}", "bench: 100 calls",
                     "sleep: slept 50 ms", 'echo: you typed "typed ahead"', "spin: done after 300 ms",
                     "done, exit 0", "refguest: poweroff"):
        assert expected in text, f"{expected!r} missing from:\n{text}"
    assert outputs[0] == outputs[1], "console output differs between two runs with the same input"


@modes
def test_long_typed_ahead_input_is_not_lost(refguest: Build, mode: str, tmp_path: Path) -> None:
    """Five times the guest's 256-byte input buffer, typed ahead: its flow control keeps it all."""
    lines = [f"echo typed-ahead line {i:02d} of forty" for i in range(40)]
    script = tmp_path / "input.txt"
    script.write_text("".join(line + "\n" for line in lines) + "poweroff\n")
    assert script.stat().st_size > 5 * 256
    with script.open("rb") as stdin:
        res = subprocess.run(emu_cmd(refguest.elf, f"offload={mode}"), stdin=stdin,
                             capture_output=True, cwd=REPO, timeout=EMU_TIMEOUT + 30)
    text = res.stdout.decode(errors="replace")
    assert res.returncode == 0, (res.returncode, text, res.stderr.decode(errors="replace"))
    printed = [line[len("ref> "):] for line in text.splitlines() if line.startswith("ref> echo ")]
    assert printed == lines, text
    for line in lines:
        assert f"\r\n{line[len('echo '):]}\r\n" in text, line


# -- acceptance 4: warning-free build -------------------------------------------------------

def test_build_is_warning_free_with_wall_wextra(refguest: Build) -> None:
    compiles = [line for line in refguest.log.splitlines() if GCC in line and " -c " in line]
    assert compiles, refguest.log
    for line in compiles:
        flags = line.split()
        assert "-Wall" in flags and "-Wextra" in flags, line
    assert "warning:" not in refguest.log.lower(), refguest.log
