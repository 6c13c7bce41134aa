"""Every `emu test` example in README.md and emu/testrunner/README.md runs as written:
its options parse (the zCore one needs a local build and zcore-tests, run by hand), and the
reference guest's one runs here with only the kernel's path swapped for the test build."""
from __future__ import annotations

import re
import shlex

import click
import pytest

from emu.testrunner.cli import test as emu_test_command
from tests.testrunner.conftest import REPO, run_emu_test


def examples() -> list[tuple[str, list[str]]]:
    found = []
    for doc in ("README.md", "emu/testrunner/README.md"):
        text = (REPO / doc).read_text()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" # ", 1)[0].strip()
                if line.startswith("emu test "):
                    found.append((doc, shlex.split(line)[2:]))
    return found


def test_the_readme_has_a_zcore_and_a_reference_guest_example():
    args = [a for _, a in examples()]
    assert any("--linux" in a and "riscv64_qemu.txt" in " ".join(a) for a in args), args
    assert any("tests/lists/refguest.txt" in a for a in args), args


@pytest.mark.parametrize("doc, args", examples(), ids=lambda v: v if isinstance(v, str) else " ".join(v)[:60])
def test_readme_example_options_parse(doc, args):
    try:
        emu_test_command.make_context("test", list(args))
    except click.UsageError as err:
        pytest.fail(f"{doc}: `emu test {' '.join(args)}`: {err.format_message()}")


def test_readme_reference_guest_example_runs(refguest_elf, tmp_path):
    (args,) = [a for _, a in examples() if "tests/lists/refguest.txt" in a]
    args = [str(refguest_elf) if a.endswith("refguest.elf") else a for a in args]
    args = [str(tmp_path / a) if a.endswith(".xml") else a for a in args]
    res = run_emu_test(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "gave the status the list expects" in res.stdout
