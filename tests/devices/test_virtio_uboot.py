"""virtio-blk and virtio-net under Debian's U-Boot through the real CLI (issue 7 acceptance)."""
from __future__ import annotations

import ctypes.util
import os
import subprocess

import pexpect
import pytest

from tests.conftest import emu_cmd, marked_disk

MAGIC = b"EMU-VIRTIO-BLOCK-TEST-0123456789"


@pytest.fixture
def disk(tmp_path):
    return marked_disk(tmp_path / "disk.img", MAGIC)


def uboot_session(uboot, disk, *extra):
    cmd = emu_cmd("run", "--smp", "2", "-m", "256M", "--kernel", str(uboot), "--drive", f"file={disk}",
                  "--timeout", "120", "--realtime", *extra)
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=60)
    child.expect("Hit any key to stop autoboot")
    child.send("\r")
    child.expect("=> ")
    return child


def run(child, command: str) -> str:
    child.sendline(command)
    child.expect("=> ")
    return child.before.decode(errors="replace")


@pytest.mark.parametrize("layout", ["legacy", "modern"])
def test_uboot_finds_and_reads_the_disk(uboot, disk, layout):
    child = uboot_session(uboot, disk, "--virtio-mmio", layout)
    try:
        run(child, "virtio scan")
        info = run(child, "virtio info")
        assert "Device 0: QEMU VirtIO Block Device" in info and "(2048 x 512)" in info, info
        run(child, "virtio read 0x84000000 1 1")
        dump = run(child, "md.b 0x84000000 0x20")
        assert "EMU-VIRTIO-BLOCK" in dump.replace("\r\n", ""), dump
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


@pytest.mark.skipif(ctypes.util.find_library("slirp") is None, reason="libslirp0 missing: apt-get install libslirp0")
def test_uboot_user_network_ping_and_dhcp(uboot, disk):
    child = uboot_session(uboot, disk, "--net", "user")
    try:
        out = run(child, "setenv ipaddr 10.0.2.15; setenv netmask 255.255.255.0; ping 10.0.2.2")
        assert "host 10.0.2.2 is alive" in out, out
        out = run(child, "dhcp")
        assert "DHCP client bound to address 10.0.2.15" in out, out
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_missing_or_readonly_drive_is_bad_input(uboot, tmp_path):
    res = subprocess.run(emu_cmd("run", "--kernel", str(uboot), "--drive", f"file={tmp_path / 'none.img'}"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    ro = tmp_path / "ro.img"
    ro.write_bytes(bytes(4096))
    os.chmod(ro, 0o444)
    res = subprocess.run(emu_cmd("run", "--kernel", str(uboot), "--drive", f"file={ro}"),
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr


def _can_make_namespaces() -> bool:
    import shutil

    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    return subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_make_namespaces(), reason="needs root, unshare and ip (iproute2) for a test network namespace")
@pytest.mark.parametrize("layout", ["legacy", "modern"])
def test_uboot_pings_the_host_side_of_a_tap_in_its_own_namespace(uboot, disk, layout):
    """The test makes a network namespace with a TAP device (10.9.9.1) and runs emu inside it."""
    inner = " && ".join([
        "ip link set lo up",
        "ip tuntap add dev emutap0 mode tap",
        "ip addr add 10.9.9.1/24 dev emutap0",
        "ip link set emutap0 up",
        "exec " + " ".join(emu_cmd("run", "-m", "256M", "--kernel", str(uboot), "--drive", f"file={disk}",
                                   "--net", "tap,ifname=emutap0", "--virtio-mmio", layout,
                                   "--timeout", "120", "--realtime")),
    ])
    child = pexpect.spawn("unshare", ["-n", "sh", "-c", inner], timeout=60)
    try:
        child.expect("Hit any key to stop autoboot")
        child.send("\r")
        child.expect("=> ")
        info = run(child, "virtio info")
        assert "Block Device" in info
        out = run(child, "setenv ipaddr 10.9.9.2; setenv netmask 255.255.255.0; ping 10.9.9.1")
        assert "host 10.9.9.1 is alive" in out, out
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
