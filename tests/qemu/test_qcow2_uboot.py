"""Debian's U-Boot reads the same bytes from a qcow2 drive as from the raw image, and its
`virtio write` to a writable qcow2 drive persists (through qemu-img, never parsed by emu)."""
from __future__ import annotations

import shutil
import subprocess

import pexpect
import pytest

from tests.conftest import emu_cmd, marked_disk

QEMU_IMG = shutil.which("qemu-img")
pytestmark = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img missing: apt-get install qemu-utils")
MAGIC = b"EMU-QCOW2-BLOCK-TEST-0123456789"


@pytest.fixture
def images(tmp_path):
    raw = marked_disk(tmp_path / "disk.img", MAGIC)
    qcow = tmp_path / "disk.qcow2"
    subprocess.run([QEMU_IMG, "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow)], check=True)
    return raw, qcow


def boot_uboot(uboot_bin, drive: str) -> pexpect.spawn:
    cmd = emu_cmd("qemu-system-riscv64", "-machine", "virt", "-m", "256M", "-smp", "2", "-nographic",
                  "-bios", "default", "-kernel", str(uboot_bin), "-drive", drive,
                  "-device", "virtio-blk-device,drive=d0")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=60)
    child.expect("Hit any key to stop autoboot")
    child.send("\r")
    child.expect("=> ")
    return child


def command(child: pexpect.spawn, line: str) -> str:
    child.sendline(line)
    child.expect("=> ")
    return child.before.decode(errors="replace")


def read_sector1(child: pexpect.spawn) -> str:
    command(child, "virtio scan")
    info = command(child, "virtio info")
    assert "QEMU VirtIO Block Device" in info and "(2048 x 512)" in info, info
    command(child, "virtio read 0x84000000 1 1")
    return command(child, "md.b 0x84000000 0x40").split("\n", 1)[1]  # drop the echoed command


def finish(child: pexpect.spawn) -> int:
    child.sendline("poweroff")
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


def test_uboot_reads_the_same_bytes_from_qcow2_as_from_raw_and_writes_persist(uboot, images, tmp_path):
    raw, qcow = images
    child = boot_uboot(uboot, f"file={raw},format=raw,if=none,id=d0")
    try:
        from_raw = read_sector1(child)
        assert finish(child) == 0
    finally:
        child.close(force=True)
    child = boot_uboot(uboot, f"file={qcow},format=qcow2,if=none,id=d0")
    try:
        from_qcow = read_sector1(child)
        command(child, "mw.b 0x85000000 0x5a 0x200")
        out = command(child, "virtio write 0x85000000 2 1")
        assert "1 blocks written: OK" in out, out
        assert finish(child) == 0
    finally:
        child.close(force=True)
    assert "EMU-QCOW2-BLOCK" in from_raw.replace("\r\n", "")
    assert from_qcow == from_raw
    back = tmp_path / "back.raw"
    subprocess.run([QEMU_IMG, "convert", "-q", "-f", "qcow2", "-O", "raw", str(qcow), str(back)], check=True)
    data = back.read_bytes()
    assert data[1024:1536] == b"\x5a" * 512  # U-Boot's write, in the qcow2 image
    assert data[512:512 + len(MAGIC)] == MAGIC and len(data) == 1 << 20
