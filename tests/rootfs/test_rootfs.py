"""The busybox + musl rootfs (images/rootfs, from Debian source packages) on the Linux guest:
tests/lists/rootfs.txt run by `emu test`, then the same list on real QEMU (tests/rootfs/qemu_runner.py),
verdicts compared case by case."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from emu.testrunner.cases import Status, parse_list
from tests.conftest import emu_cmd
from tests.rootfs.conftest import IMAGE, INITRD, LIST, OUT, make

PROGRESS = re.compile(r"^\[\d+/\d+\] (\w+)\s+(\S+) \(", re.M)


def test_rootfs_layout(rootfs):
    res = subprocess.run(emu_cmd("image", "ls", str(OUT / "riscv64.img"), "/"), capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    for name in ("bin", "lib", "tests"):
        assert re.search(rf"\b{name}\b", res.stdout), res.stdout
    res = subprocess.run(emu_cmd("image", "ls", str(OUT / "riscv64.img"), "/lib"), capture_output=True, text=True)
    assert "ld-musl-riscv64.so.1" in res.stdout, res.stdout
    elf = subprocess.run(["riscv64-linux-gnu-readelf", "-l", str(OUT / "busybox")], capture_output=True, text=True)
    assert "[Requesting program interpreter: /lib/ld-musl-riscv64.so.1]" in elf.stdout
    elf = subprocess.run(["riscv64-linux-gnu-readelf", "-l", str(OUT / "busybox-static")], capture_output=True, text=True)
    assert "INTERP" not in elf.stdout
    # a second make with nothing changed runs no recipe (make only enters and leaves the directory)
    res = make("rootfs", PYTHON=sys.executable)
    assert res.returncode == 0, res.stderr
    assert all(line.startswith("make") for line in res.stdout.splitlines()), res.stdout


@pytest.fixture(scope="module")
def emu_run(rootfs, tmp_path_factory) -> dict:
    junit = tmp_path_factory.mktemp("rootfs") / "junit.xml"
    t0 = time.monotonic()
    res = subprocess.run(emu_cmd("test", "--kernel", str(IMAGE), "--initrd", str(INITRD), "--smp", "2",
                                 "-m", "256M", "--jobs", "2", "--list", str(LIST), "--junit", str(junit)),
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=1200)
    seconds = time.monotonic() - t0
    # the progress lines ("[i/n] STATUS  PATH (s)") go to standard error
    verdicts = {path: Status(status) for status, path in PROGRESS.findall(res.stderr)}
    outputs = {tc.get("name"): (tc.findtext("system-out") or "") for tc in ET.parse(junit).iter("testcase")} \
        if junit.exists() else {}
    return {"res": res, "verdicts": verdicts, "outputs": outputs, "seconds": seconds}


def test_list_passes_on_emu(emu_run):
    res = emu_run["res"]
    cases = parse_list(LIST)
    assert res.returncode == 0, res.stdout[-5000:] + res.stderr[-3000:]
    assert len(emu_run["verdicts"]) == len(cases), res.stderr
    for c in cases:
        assert emu_run["verdicts"][c.path] is c.expected, (c.path, res.stderr)
    print(f"emu test --jobs 2: {len(cases)} cases in {emu_run['seconds']:.1f} s")


def test_qemu_gives_the_same_verdicts(emu_run):
    if shutil.which("qemu-system-riscv64") is None:
        pytest.skip("qemu-system-riscv64 missing: apt-get install qemu-system-misc opensbi")
    from tests.rootfs.qemu_runner import run_list
    cases = parse_list(LIST)
    t0 = time.monotonic()
    results, boot = run_list(cases, str(IMAGE), str(INITRD), smp=2, memory="256M", timeout=10.0)
    qemu_seconds = time.monotonic() - t0
    diffs = []
    for r in results:
        mine = emu_run["verdicts"].get(r.case.path)
        if mine is not r.status:
            diffs.append(f"--- {r.case.path}: emu {mine}, QEMU {r.status.value}\n"
                         f"emu output:\n{emu_run['outputs'].get(r.case.path, '?')}\nQEMU output:\n{r.output}")
    print(f"QEMU runner: {len(results)} cases in {qemu_seconds:.1f} s (boot {boot:.1f} s); "
          f"emu test --jobs 2: {emu_run['seconds']:.1f} s")
    assert len(results) == len(cases)
    assert not diffs, "\n".join(diffs)
