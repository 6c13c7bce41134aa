"""The list format (zcore-tests' testcases/*/*.txt), the verdict rules and --update-list."""
from __future__ import annotations

import re

import pytest

from emu.errors import EmuError
from emu.testrunner.cases import (
    Case,
    Status,
    parse_list,
    parse_list_text,
    rewrite_list_text,
    update_list,
)
from emu.testrunner.runner import RunConfig
from emu.testrunner.verdict import DEFAULT_FAIL_PATTERNS, UntilPrompt, judge_output
from tests.testrunner.conftest import REFGUEST_LIST

GOOD = """\
# a comment
/libc-test/src/functional/argv.exe                                              OK

/bin/busybox?sh?-c?ls                                                           FAILED
   /oscomp/yield    PARTIAL   # trailing comment
/x TIMEOUT
/y\tSKIPPED
"""


def test_parses_paths_statuses_and_argv():
    cases = parse_list_text(GOOD, "good.txt")
    assert [(c.path, c.expected, c.line) for c in cases] == [
        ("/libc-test/src/functional/argv.exe", Status.OK, 2),
        ("/bin/busybox?sh?-c?ls", Status.FAILED, 4),
        ("/oscomp/yield", Status.PARTIAL, 5),
        ("/x", Status.TIMEOUT, 6),
        ("/y", Status.SKIPPED, 7),
    ]
    assert cases[1].argv == ["/bin/busybox", "sh", "-c", "ls"]
    assert cases[1].command == "/bin/busybox sh -c ls"


def test_the_reference_list_parses():
    cases = parse_list(REFGUEST_LIST)
    statuses = {c.expected for c in cases}
    assert {Status.OK, Status.FAILED, Status.TIMEOUT} <= statuses


@pytest.mark.parametrize("line, what", [
    ("/bin/ls", "a path without a status"),
    ("/bin/ls OK extra", "3 fields"),
    ("/bin/ls ok", "unknown status 'ok'"),
    ("/bin/ls PASS", "unknown status 'PASS'"),
    ("/a OK\n/a FAILED", "listed twice (first at line 3)"),
])
def test_a_bad_line_names_file_and_line(line, what):
    text = "# header\n\n" + line + "\n"
    with pytest.raises(EmuError) as exc:
        parse_list_text(text, "lists/x.txt")
    msg = str(exc.value)
    lineno = 3 + line.count("\n")
    assert msg.startswith(f"lists/x.txt:{lineno}: "), msg
    assert what in msg
    assert "\n" not in msg


def test_missing_list_is_one_line_error(tmp_path):
    with pytest.raises(EmuError, match="test list not found"):
        parse_list(tmp_path / "nope.txt")


def test_rewrite_keeps_layout_and_comments():
    text = GOOD.replace("\n", "\r\n", 1)  # one CRLF line end must survive
    new = rewrite_list_text(text, {"/libc-test/src/functional/argv.exe": Status.TIMEOUT,
                                   "/oscomp/yield": Status.OK, "/x": Status.TIMEOUT})
    lines = new.splitlines(keepends=True)
    assert lines[0] == "# a comment\r\n"
    assert lines[1] == "/libc-test/src/functional/argv.exe" + " " * 46 + "TIMEOUT\n"
    assert lines[3] == GOOD.splitlines(keepends=True)[3]  # not in the map: untouched
    assert lines[4] == "   /oscomp/yield    OK        # trailing comment\n"  # comment keeps its column
    assert lines[5] == "/x TIMEOUT\n"
    first = parse_list_text(new, "n")[0]
    assert (first.path, first.expected) == ("/libc-test/src/functional/argv.exe", Status.TIMEOUT)


def test_update_list_rewrites_the_file(tmp_path):
    p = tmp_path / "l.txt"
    p.write_text(GOOD)
    assert update_list(p, {"/x": Status.OK, "/y": Status.SKIPPED}) == 1
    assert "/x OK\n" in p.read_text()


@pytest.mark.parametrize("pattern", DEFAULT_FAIL_PATTERNS)
def test_each_default_pattern_fails_a_case(pattern):
    status, detail = judge_output(b"some output\r\n" + pattern.encode() + b" here\r\n", [p.encode() for p in DEFAULT_FAIL_PATTERNS])
    assert status == Status.FAILED and pattern in detail


def test_clean_output_is_ok():
    assert judge_output(b"hello, world!\r\n", [b"ERROR"]) == (Status.OK, "")


class _FakeConsole:
    def __init__(self) -> None:
        self.log = bytearray()


class _FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def seconds(self) -> float:
        return self.t


class _FakeMachine:
    def __init__(self) -> None:
        self.console = _FakeConsole()
        self.clock = _FakeClock()


def test_until_prompt_skips_the_echo_and_stops_at_the_prompt():
    m = _FakeMachine()
    until = UntilPrompt(re.compile(rb"/ # "), 0.0, 10.0)
    m.console.log += b"echo '/ # ' ERROR"  # the echo, still being typed: never a prompt
    assert not until(m)
    m.console.log += b"\r\n/ # ERROR\r\nmore"
    assert until(m)
    assert until.output(bytes(m.console.log)) == b""
    m2 = _FakeMachine()
    until2 = UntilPrompt(re.compile(rb"/ # "), 0.0, 10.0)
    m2.console.log += b"cmd\r\n" + b"x" * 1000
    assert not until2(m2)
    m2.console.log += b"out ERROR\r\n/ "
    assert not until2(m2)
    m2.console.log += b"# "  # a prompt split across two checks is found
    assert until2(m2)
    assert until2.output(bytes(m2.console.log)).endswith(b"out ERROR\r\n")


def test_until_prompt_times_out_on_guest_time():
    m = _FakeMachine()
    m.clock.t = 5.0
    until = UntilPrompt(re.compile(rb"ref> "), 5.0, 2.0)
    assert not until(m)
    m.clock.t = 6.9
    assert not until(m)
    m.clock.t = 7.0
    assert until(m) and until.timed_out


def test_bootargs_template():
    c = Case("/bin/busybox?sh?-c?ls", Status.OK)
    cfg = RunConfig(kernel="k", boot_per_case=True)
    assert cfg.case_via == "bootargs"
    assert cfg.bootargs_for(c) == "ROOTPROC=/bin/busybox?sh?-c?ls"
    cfg = RunConfig(kernel="k", boot_per_case=True, append="LOG=warn")
    assert cfg.bootargs_for(c) == "LOG=warn:ROOTPROC=/bin/busybox?sh?-c?ls"
    cfg = RunConfig(kernel="k", boot_per_case=True, append="LOG=warn", boot_append_template="run={argv} {append}")
    assert cfg.bootargs_for(c) == "run=/bin/busybox sh -c ls LOG=warn"
    cfg = RunConfig(kernel="k", boot_per_case=True, case_via="console", append="offload=ipi")
    assert cfg.bootargs_for(c) == "offload=ipi"


@pytest.mark.parametrize("kwargs, msg", [
    ({"case_via": "bootargs"}, "needs --boot-per-case"),
    ({"boot_per_case": True, "boot_append_template": "{nope}"}, "placeholders"),
    ({"prompt": "("}, "bad regular expression"),
    ({"prompt": "x*"}, "matches the empty string"),
    ({"timeout": 0}, "must be positive"),
])
def test_bad_config_is_an_emu_error(kwargs, msg):
    with pytest.raises(EmuError, match=msg):
        RunConfig(kernel="k", **kwargs)
