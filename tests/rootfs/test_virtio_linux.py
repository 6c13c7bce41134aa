"""Real devices under a real kernel: Linux's virtio-mmio blk and net drivers on emu's models, with the
busybox rootfs (images/rootfs) as initramfs, an ext2 data disk made by Debian's e2fsprogs on
`--drive`, and `--net user` (slirp: DHCP, ping to the gateway, a fetch from a server on the host, a
`hostfwd` port to busybox's httpd in the guest)."""
from __future__ import annotations

import hashlib
import shutil
import socket
import subprocess
import urllib.request

import pexpect
import pytest

from tests.conftest import emu_cmd, web_server
from tests.rootfs.conftest import IMAGE, INITRD

PROMPT = "/ # "


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def data_disk(tmp_path):
    if shutil.which("mke2fs") is None or shutil.which("debugfs") is None:
        pytest.skip("mke2fs/debugfs missing: apt-get install e2fsprogs")
    tree = tmp_path / "data"
    tree.mkdir()
    (tree / "hello.txt").write_text("hello from the host disk\n")
    (tree / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB: many virtqueue requests
    disk = tmp_path / "disk.img"
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-L", "data", "-d", str(tree), str(disk), "8M"], check=True,
                   capture_output=True)
    return disk


@pytest.fixture
def web_root(tmp_path):
    """An HTTP server on the host's loopback (the guest reaches it as 10.0.2.2 through slirp)."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "index.txt").write_text("served by the host\n")
    with web_server(root) as (port, _stop):
        yield port


def sh(child, command: str, timeout: float = 120) -> str:
    """Output of one command line (the shell's echo of it included: long lines are redrawn by
    busybox's line editor, so the echo is not matched literally)."""
    child.sendline(command)
    child.expect_exact(PROMPT, timeout=timeout)
    return child.before.replace("\r", "")


def test_virtio_blk_and_net_under_linux(rootfs, data_disk, web_root):
    fwd = free_port()
    cmd = emu_cmd("run", "--smp", "2", "-m", "256M", "--kernel", str(IMAGE), "--initrd", str(INITRD),
                  "--drive", f"file={data_disk}", "--net", f"user,hostfwd=tcp::{fwd}-:8080", "--timeout", "600")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=180, encoding="utf-8", codec_errors="replace")
    log = []
    child.logfile_read = type("L", (), {"write": lambda self, s: log.append(s), "flush": lambda self: None})()
    try:
        child.expect_exact(PROMPT)
        boot = "".join(log)
        assert "[vda]" in boot, boot[-3000:]  # virtio_blk virtioN: [vda] 16384 512-byte logical blocks
        # the disk: read a file mke2fs put there, check a 1 MiB one, write one
        out = sh(child, "mount -t ext2 /dev/vda /mnt && cat /mnt/hello.txt")
        assert "hello from the host disk" in out, out
        out = sh(child, "md5sum /mnt/big.bin")
        assert hashlib.md5(bytes(range(256)) * 4096).hexdigest() in out, out
        sh(child, "echo written-by-the-guest > /mnt/new.txt && cp /mnt/big.bin /mnt/copy.bin && sync")
        # the network: DHCP from slirp, ping the gateway, fetch from the host
        out = sh(child, "udhcpc -i eth0 -n -q -t 5")
        assert "lease of 10.0.2.15 obtained" in out, out
        out = sh(child, "ping -c 2 10.0.2.2")
        assert "2 packets transmitted, 2 packets received" in out, out
        out = sh(child, f"wget -O - http://10.0.2.2:{web_root}/index.txt")
        assert "served by the host" in out, out
        # hostfwd: the host fetches from busybox's httpd in the guest
        sh(child, "httpd -p 8080 -h /mnt")
        body = urllib.request.urlopen(f"http://127.0.0.1:{fwd}/hello.txt", timeout=60).read()
        assert body == b"hello from the host disk\n"
        sh(child, "killall httpd; cd /; umount /mnt && echo unmounted")
        child.sendline("poweroff -f")
        child.expect(pexpect.EOF, timeout=60)
    finally:
        child.close(force=True)
    # what the guest wrote is on the disk, as e2fsprogs reads it
    new = subprocess.run(["debugfs", "-R", "cat /new.txt", str(data_disk)], capture_output=True, text=True)
    assert new.stdout == "written-by-the-guest\n", new.stdout + new.stderr
    copy = subprocess.run(["debugfs", "-R", "cat /copy.bin", str(data_disk)], capture_output=True)
    assert copy.stdout == bytes(range(256)) * 4096
    fsck = subprocess.run(["e2fsck", "-fn", str(data_disk)], capture_output=True, text=True)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
