"""`emu test` as a zCore developer reads it (issue 19, item 6).

- PANIC, FAULT-LOOP and HANG: a guest that emu's detectors stop gets its own verdict with
  the reason (hart, pc, symbol), matching a TIMEOUT in a list recorded on QEMU (and, for a
  PANIC whose output holds a failure pattern, a FAILED); the mini shell of
  tests/testrunner/minishell.py panics, loops on a fault and hangs on command.
- Guest seconds per case in the progress lines, the summary and JUnit; the boot's time.
- `--linux` as in `emu run`; a boot-per-case kernel that never powers off is named after
  the first case.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from emu.testrunner.cases import Case, Status
from emu.testrunner.results import CaseResult
from tests.guest import AS, LD
from tests.testrunner.conftest import REFGUEST_ARGS, run_emu_test
from tests.testrunner.minishell import PROMPT, build_minishell
from tests.testrunner.test_refguest_list import LINE, check_junit_schema, verdicts

MINI_ARGS = ("-m", "64M", "--prompt", PROMPT, "--timeout", "2")


@pytest.fixture(scope="module")
def minishell(tmp_path_factory):
    if AS is None or LD is None:
        pytest.skip("riscv64 binutils missing: apt-get install binutils-riscv64-unknown-elf")
    return build_minishell(tmp_path_factory.mktemp("minishell"))


def lines_by_case(stderr: str) -> dict[str, str]:
    return {m.group(4): line for line in stderr.splitlines() if (m := LINE.match(line))}


# -- the comparison rules ---------------------------------------------------------------------
@pytest.mark.parametrize("status, pattern, expected, matches, written", [
    (Status.PANIC, "", Status.TIMEOUT, True, Status.TIMEOUT),
    (Status.PANIC, "panicked", Status.FAILED, True, Status.FAILED),
    (Status.PANIC, "", Status.FAILED, False, Status.TIMEOUT),
    (Status.PANIC, "panicked", Status.OK, False, Status.TIMEOUT),
    (Status.FAULT_LOOP, "", Status.TIMEOUT, True, Status.TIMEOUT),
    (Status.FAULT_LOOP, "Error", Status.FAILED, False, Status.TIMEOUT),
    (Status.HANG, "", Status.TIMEOUT, True, Status.TIMEOUT),
    (Status.FAILED, "", Status.TIMEOUT, False, Status.FAILED),
    (Status.TIMEOUT, "", Status.TIMEOUT, True, Status.TIMEOUT),
])
def test_detector_verdicts_match_what_qemu_records(status, pattern, expected, matches, written):
    r = CaseResult(Case("/x", expected), status, pattern=pattern)
    assert r.matches is matches and r.differs is not matches
    assert r.list_status == written  # what --update-list writes: a status zcore-tests reads
    assert r.regression is (expected == Status.OK)


# -- the mini shell: one case per detector ------------------------------------------------------
def test_panic_fault_loop_and_hang_get_their_own_verdicts(minishell, tmp_path):
    lst = tmp_path / "qemu.txt"
    lst.write_text("o   OK\np   TIMEOUT\nf   TIMEOUT\nh   TIMEOUT\npanic-again   FAILED\n")
    out = tmp_path / "j.xml"
    res = run_emu_test("--kernel", str(minishell), *MINI_ARGS, "--list", str(lst), "--junit", str(out),
                       "--trace-failed", str(tmp_path / "f"), "--no-trace")
    assert res.returncode == 0, res.stdout + res.stderr
    assert verdicts(res.stderr) == {"o": "OK", "p": "PANIC", "f": "FAULT-LOOP", "h": "HANG", "panic-again": "PANIC"}
    lines = lines_by_case(res.stderr)
    # the reason, on the progress line: what, hart, pc, symbol
    assert re.search(r"\(matches the list's TIMEOUT\): guest panic 0\.1\d\d s into the case "
                     r"\(virtual time [\d.]+ s\): ", lines["p"]), lines["p"]
    assert "panicked at 'minishell: told to panic'" in lines["p"] and "hart 0 pc 0x" in lines["p"]
    assert "<panic_spin>" in lines["p"]
    assert re.search(r"fault loop [\d.]+ s into the case \(virtual time [\d.]+ s\): load access fault \(5\) at pc 0x[0-9a-f]+ <fault_here> "
                     r"\(tval 0x40000000\) 1000 times in a row on hart 0", lines["f"]), lines["f"]
    assert "guest hang 0.000 s into the case" in lines["h"] and "<hang_wfi" in lines["h"]
    # a panic whose output fails the case matches a FAILED recorded on QEMU as well
    assert "(matches the list's FAILED)" in lines["panic-again"]
    # the summary: counts, and the stand-ins with their reasons; nothing differs
    assert "1 OK, 0 FAILED, 0 TIMEOUT, 2 PANIC, 1 FAULT-LOOP, 1 HANG, 0 SKIPPED" in res.stdout
    assert "4 case(s) stopped by emu's detectors, as the list records them" in res.stdout
    assert re.search(r"\n  f\s+FAULT-LOOP = TIMEOUT\s+fault loop [\d.]+ s into the case", res.stdout), res.stdout
    assert "gave the status the list expects" in res.stdout
    assert "the guest ended the machine" not in res.stdout + res.stderr
    # the log keeps emu's own report
    log = (tmp_path / "f" / "f.log").read_text()
    assert "expected TIMEOUT, got FAULT-LOOP" in log and "emu: fault loop: cause 5" in log
    # JUnit: a reproduced TIMEOUT, with the verdict and its reason
    root = ET.parse(out).getroot()
    check_junit_schema(root)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    sk = cases["p"].find("skipped")
    assert sk.get("type") == "expected TIMEOUT" and "got PANIC: guest panic" in sk.get("message")
    assert cases["p"].find("system-err").text.startswith("emu test: PANIC after 0.1")
    assert root.find("testsuite").get("failures") == "0"


def test_a_detector_verdict_where_the_list_expects_ok_fails_the_run(minishell, tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("p   OK\nf   FAILED\nh   TIMEOUT\n")
    res = run_emu_test("--kernel", str(minishell), *MINI_ARGS, "--list", str(lst), "--update-list")
    assert res.returncode == 1, res.stdout + res.stderr
    assert re.search(r"\n  p\s+OK\s+PANIC\s+[\d.]+\s+new failure: guest panic", res.stdout), res.stdout
    assert re.search(r"\n  f\s+FAILED\s+FAULT-LOOP\s+[\d.]+\s+changed: fault loop", res.stdout), res.stdout
    # --update-list writes what QEMU would record, a status zcore-tests reads
    assert lst.read_text() == "p   TIMEOUT\nf   TIMEOUT\nh   TIMEOUT\n"


def test_a_list_cannot_hold_emus_own_verdicts(tmp_path):
    lst = tmp_path / "l.txt"
    lst.write_text("/x   PANIC\n")
    res = run_emu_test("--kernel", "/nonexistent", "--list", str(lst))
    assert res.returncode == 2
    assert f"{lst}:1: unknown status 'PANIC' (emu's own verdict; a list records TIMEOUT for it)" in res.stderr


# -- guest seconds --------------------------------------------------------------------------------
def test_guest_seconds_per_case_boot_summary_and_junit(refguest_elf, tmp_path):
    out = tmp_path / "j.xml"
    res = run_emu_test("--kernel", str(refguest_elf), *REFGUEST_ARGS, "--case", "hello", "--case", "echo",
                       "--list", "tests/lists/refguest.txt", "--junit", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    m = {mo.group(4): mo for line in res.stderr.splitlines() if (mo := LINE.match(line))}
    # the case that waits for input idles to its 2 s budget of guest time, at little host cost
    assert float(m["echo"].group(5)) >= 2.0
    assert float(m["hello"].group(5)) < 1.0
    boot = re.search(r"^emu test: boot to the prompt: ([\d.]+) s guest \(([\d.]+) s host\)$", res.stderr, re.M)
    assert boot, res.stderr
    assert res.stderr.index("boot to the prompt") < res.stderr.index("[1/2]")
    summary = re.search(r"guest time: ([\d.]+) s in the cases; boot ([\d.]+) s guest \(([\d.]+) s host\)", res.stdout)
    assert summary and float(summary.group(1)) >= 2.0, res.stdout
    root = ET.parse(out).getroot()
    check_junit_schema(root)
    suite = root.find("testsuite")
    times = {c.get("name"): float(c.get("time")) for c in suite.iter("testcase")}
    assert times["echo"] >= 2.0 and times["hello"] < 1.0
    assert float(suite.get("time")) == pytest.approx(sum(times.values()), abs=0.01)
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["time_unit"] == "guest (virtual) seconds"
    assert {"host_wall_s", "boot_guest_s", "boot_host_s"} <= set(props)
    err = {c.get("name"): c.find("system-err").text for c in suite.iter("testcase")}
    assert re.match(r"emu test: TIMEOUT after 2\.\d+ s guest \([\d.]+ s host\): no prompt", err["echo"])


# -- --linux and the kernel that never powers off -------------------------------------------------
def test_linux_option_means_log_warn_as_in_emu_run(refguest_elf, tmp_path):
    out = tmp_path / "j.xml"
    res = run_emu_test("--kernel", str(refguest_elf), "--linux", "--smp", "2", "-m", "256M", "--prompt", "ref> ",
                       "--case", "hello", "--junit", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    props = {p.get("name"): p.get("value") for p in ET.parse(out).getroot().iter("property")}
    assert props["bootargs"] == "LOG=warn"
    res = run_emu_test("--kernel", str(refguest_elf), "--linux", *REFGUEST_ARGS, "--case", "hello", "--junit", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    props = {p.get("name"): p.get("value") for p in ET.parse(out).getroot().iter("property")}
    assert props["bootargs"] == "offload=ipi"  # --append wins, as in emu run


def test_boot_per_case_says_when_the_kernel_never_powers_off(refguest_elf):
    """The reference guest, given its case in the bootargs, boots to its shell and waits
    there for ever, as zCore without its baremetal-test feature does: said once, after the
    first case, and in the summary."""
    res = run_emu_test("--kernel", str(refguest_elf), "--smp", "2", "-m", "256M", "--boot-per-case",
                       "--boot-append-template", "offload={case}", "--case", "ipi", "--case", "poll",
                       "--timeout", "1")
    assert res.returncode == 1, res.stdout + res.stderr  # --case: expected OK
    assert verdicts(res.stderr) == {"ipi": "TIMEOUT", "poll": "TIMEOUT"}
    err = res.stderr.splitlines()
    warn = [i for i, line in enumerate(err) if line.startswith("emu test: warning: ipi: TIMEOUT: no power-off")]
    assert len(warn) == 1, res.stderr
    assert err[warn[0] - 1].startswith("[1/2] ")  # right after the first case
    assert "the kernel does not power off after its root process" in err[warn[0]]
    assert "idle at its shell prompt" in err[warn[0]] and "baremetal-test" in err[warn[0]]
    assert "every case will time out the same way" in err[warn[0]]
    assert "emu test: 2 TIMEOUT(s): the kernel does not power off" in res.stdout
