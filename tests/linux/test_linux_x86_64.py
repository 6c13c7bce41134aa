"""Linux 6.1 x86_64 (built by `make -C images/linux ARCH=x86_64` from Debian's
linux-source-6.1, bzImage through the 64-bit boot protocol) on `emu run --arch x86_64`:
the same selftest /init as riscv64 (SMP, futexes, pipes across CPUs), ACPI power-off, and
Linux's virtio-pci drivers on `--drive` and `--net user`."""
from __future__ import annotations

import re
import socket
import subprocess
import threading

import pytest

from tests.conftest import build_linux, emu_cmd
from tests.cpu.x86_64.x86guest import needs_x86

pytestmark = needs_x86


@pytest.fixture(scope="module")
def linux() -> tuple[str, str]:
    image, initrd = build_linux("x86_64")
    return str(image), str(initrd)


def boot(linux, smp: int, append: str, timeout: int = 240, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    image, initrd = linux
    return subprocess.run(emu_cmd("run", "--arch", "x86_64", "--smp", str(smp), "-m", "256M", "--kernel", image,
                                  "--initrd", initrd, "--append", append, "--timeout", str(timeout), *extra),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 30)


@pytest.mark.parametrize("smp", [1, 2, 4])
def test_selftest_passes_and_powers_off(linux, smp):
    res = boot(linux, smp, "console=ttyS0 emu.selftest=poweroff")
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-3000:] + res.stderr.decode()
    assert "IOAPIC[0]: apic_id 0, version 32, address 0xfec00000, GSI 0-23" in out  # from the MADT
    plural = "CPU" if smp == 1 else "CPUs"
    assert f"smp: Brought up 1 node, {smp} {plural}" in out  # APs started by INIT/SIPI
    assert "Run /init as init process" in out
    online = "0" if smp == 1 else f"0-{smp - 1}"
    assert f"check cpus: {smp} online ({online})" in out
    for check in ("pinned", "stress", "fp", "rdtime"):
        assert re.search(rf"^check {check}: ", out, re.M), check
    assert "selftest: ok" in out
    assert "reboot: Power down" in out  # ACPI S5 through port 0x604
    assert "PCI0" not in out and "check disk: skipped (no /dev/vda)" in out  # no devices: no PCI bus


def test_two_runs_give_identical_consoles(linux):
    runs = [boot(linux, 2, "console=ttyS0 emu.selftest=poweroff") for _ in range(2)]
    assert runs[0].returncode == 0
    assert re.search(rb"\[\s+\d+\.\d{6}\] Run /init", runs[0].stdout)  # printk timestamps included
    assert runs[0].stdout == runs[1].stdout


def test_interactive_prompt_through_com1_interrupts(linux):
    import pexpect

    image, initrd = linux
    cmd = emu_cmd("run", "--arch", "x86_64", "--smp", "2", "-m", "256M", "--kernel", image, "--initrd", initrd,
                  "--append", "console=ttyS0", "--timeout", "240")
    child = pexpect.spawn(cmd[0], cmd[1:], timeout=120)
    try:
        child.expect("linux> ")
        child.sendline("echo hello")  # typed input: COM1's receive interrupt through the I/O APIC
        child.expect("hello")
        child.expect("linux> ")
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_virtio_blk_pci_disk_and_virtio_net_pci_exchange(linux, tmp_path):
    """--drive and --net user on the PC: Linux finds the PCI root bridge in the DSDT, binds
    virtio_blk and virtio_net to 00:03.0 and 00:02.0 (INTx through the _PRT's I/O APIC
    inputs), the selftest reads the disk's first sector and talks TCP through slirp to a
    server on the host."""
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"EMUDISK1" + bytes((1 << 20) - 8))
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    heard: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(60)
            heard.append(conn.recv(100))
            conn.sendall(b"hello from the host\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        res = boot(linux, 2, f"console=ttyS0 emu.selftest=poweroff emu.net=10.0.2.2:{port}",
                   extra=("--drive", f"file={disk}", "--net", "user"))
    finally:
        server.close()
    out = res.stdout.decode(errors="replace")
    assert res.returncode == 0, out[-3000:] + res.stderr.decode()
    assert "ACPI: PCI Root Bridge [PCI0] (domain 0000 [bus 00-ff])" in out
    assert "pci 0000:00:02.0: [1af4:1041] type 00 class 0x020000" in out
    assert "pci 0000:00:03.0: [1af4:1042] type 00 class 0x010000" in out
    assert re.search(r"virtio_blk virtio\d: \[vda\] 2048 512-byte logical blocks", out), out[-3000:]
    assert "check disk: /dev/vda starts with EMUDISK1" in out
    assert f'check net: 10.0.2.2:{port} answered "hello from the host"' in out
    assert heard == [b"hello from the guest\n"]
    assert "selftest: ok" in out


def test_traced_system_calls_carry_x86_64_names(linux, tmp_path):
    """Traced, the guest's system calls are named from x86_64's table (`write` is 1 there;
    riscv64's table would call it io_destroy) and end at the sysretq after entry_SYSCALL_64,
    found once the decompressed kernel has set LSTAR (the bzImage has no code to scan)."""
    import json

    image, initrd = linux
    trace = tmp_path / "linux.json"
    res = subprocess.run(emu_cmd("run", "--arch", "x86_64", "--smp", "2", "-m", "256M", "--kernel", image,
                                 "--initrd", initrd, "--append", "console=ttyS0 emu.selftest=poweroff",
                                 "--timeout", "240", "--trace", str(trace)),
                         stdin=subprocess.DEVNULL, capture_output=True, timeout=270)
    assert res.returncode == 0, res.stderr.decode()[-2000:]
    rep = subprocess.run(emu_cmd("trace", "report", "--json", str(trace)), capture_output=True, text=True,
                         timeout=120)
    assert rep.returncode == 0, rep.stderr
    s = json.loads(rep.stdout)
    names = {r["name"]: r["count"] for r in s["per_syscall"].values()}
    assert names.get("write (1)", 0) >= 1 and names.get("mmap (9)", 0) >= 1, names
    assert not any(n.startswith(("io_setup", "io_destroy")) for n in names), names
    calls = sum(1 for e in json.loads(trace.read_text())["emu"]["events"] if e[2] == "syscall")
    assert s["spans"] >= 0.9 * calls  # most return through the sysretq (iretq returns stay open)
