"""Drive preparation for the QEMU front end: qcow2 through qemu-img, write-back, snapshots."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from emu.errors import EmuError
from emu.qemu_compat.config import DrivePlan
from emu.qemu_compat.disks import DiskSet

QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img missing: apt-get install qemu-utils")
MAGIC = b"EMU-QCOW2-TEST"


def make_images(tmp_path: Path) -> tuple[Path, Path]:
    raw = tmp_path / "disk.img"
    data = bytearray(1 << 20)
    data[512:512 + len(MAGIC)] = MAGIC
    raw.write_bytes(bytes(data))
    qcow = tmp_path / "disk.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)], check=True)
    return raw, qcow


def qcow2_bytes(qcow: Path, tmp_path: Path) -> bytes:
    out = tmp_path / "check.raw"
    subprocess.run([QEMU_IMG, "convert", "-q", "-f", "qcow2", "-O", "raw", str(qcow), str(out)], check=True)
    return out.read_bytes()


def spec_path(spec: str) -> Path:
    return Path(spec.split(",")[0].removeprefix("file="))


@needs_qemu_img
@pytest.mark.parametrize("fmt", ["qcow2", None])  # given, or probed with qemu-img info
def test_qcow2_is_served_raw_and_guest_writes_are_written_back(tmp_path, fmt):
    raw, qcow = make_images(tmp_path)
    with DiskSet([DrivePlan(str(qcow), fmt)]) as disks:
        served = spec_path(disks.specs[0])
        assert served.read_bytes() == raw.read_bytes()
        with open(served, "r+b") as f:  # what the guest's virtio write does
            f.seek(2048)
            f.write(b"written by the guest")
    assert not served.exists()  # the temporary copy is gone
    data = qcow2_bytes(qcow, tmp_path)
    assert data[2048:2068] == b"written by the guest" and data[512:512 + len(MAGIC)] == MAGIC
    assert subprocess.run([QEMU_IMG, "info", str(qcow)], capture_output=True, text=True).stdout.count("qcow2")


@needs_qemu_img
@pytest.mark.parametrize("readonly,snapshot", [(True, False), (False, True)])
def test_readonly_or_snapshot_qcow2_is_never_written_back(tmp_path, readonly, snapshot):
    _, qcow = make_images(tmp_path)
    before = qcow.read_bytes()
    with DiskSet([DrivePlan(str(qcow), "qcow2", readonly, snapshot)]) as disks:
        assert disks.specs[0].endswith(",readonly=on") == readonly
        if not readonly:
            spec_path(disks.specs[0]).write_bytes(bytes(1 << 20))
    assert qcow.read_bytes() == before


@needs_qemu_img
def test_untouched_qcow2_is_left_alone(tmp_path):
    _, qcow = make_images(tmp_path)
    stamp = qcow.stat().st_mtime_ns
    with DiskSet([DrivePlan(str(qcow), "qcow2")]):
        pass
    assert qcow.stat().st_mtime_ns == stamp


def test_raw_snapshot_runs_on_a_copy_and_commas_go_through_a_link(tmp_path):
    raw = tmp_path / "a,b.img"
    raw.write_bytes(b"x" * 4096)
    with DiskSet([DrivePlan(str(raw), "raw", snapshot=True), DrivePlan(str(raw), "raw")]) as disks:
        copy, link = (spec_path(s) for s in disks.specs)
        copy.write_bytes(b"y" * 4096)
        assert "," not in str(link) and link.resolve() == raw.resolve()
    assert raw.read_bytes() == b"x" * 4096


def test_bad_drives_are_one_line_errors(tmp_path):
    with pytest.raises(EmuError, match="no such file"):
        DiskSet([DrivePlan(str(tmp_path / "none.qcow2"), "qcow2")]).__enter__()
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"not a qcow2 image" * 100)
    if QEMU_IMG is not None:
        with pytest.raises(EmuError, match="junk.qcow2"):
            DiskSet([DrivePlan(str(junk), "qcow2")]).__enter__()
