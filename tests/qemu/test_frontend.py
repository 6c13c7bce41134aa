"""`emu qemu-system-riscv64` and the `emu shim` wrapper run zCore's exact QEMU command lines
(with the reference guest in place of zCore) to the guest prompt (issue 17 acceptance)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pexpect
import pytest

from tests.conftest import emu_cmd
from tests.qemu.test_plan import DEBUGRUN, MAKEFILE, MAKEFILE_NETDEV, XTASK, XTASK_GDB

GDB = shutil.which("gdb-multiarch")
OPENSBI = Path("/usr/lib/riscv64-linux-gnu/opensbi/generic/fw_dynamic.bin")


def substitute(argv: list[str], kernel: Path, initrd: Path, tmp_path: Path, port: int = 0) -> list[str]:
    """zCore's files -> the reference guest and a dummy initrd; /tmp/serial.out -> tmp_path; the
    Makefile's host ports (forwarded by slirp, as QEMU does) -> a free one."""
    table = {"zcore.bin": str(kernel), "riscv64.img": str(initrd), "file:/tmp/serial.out": f"file:{tmp_path}/serial.out",
             "tcp::1234": f"tcp::{port}", "tcp::15234": f"tcp::{port}", MAKEFILE_NETDEV: free_netdev()}
    return [table.get(a, a) for a in argv]


def spawn(how: str, argv: list[str], shim: Path) -> pexpect.spawn:
    if how == "emu":
        cmd = emu_cmd("qemu-system-riscv64", *argv)
        return pexpect.spawn(cmd[0], cmd[1:], timeout=60)
    env = dict(os.environ, PATH=f"{shim}:{os.environ['PATH']}")
    return pexpect.spawn("qemu-system-riscv64", argv, timeout=60, env=env)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_netdev() -> str:
    """The Makefile's user netdev with one forwarded host port that is free now."""
    return f"user,id=net1,hostfwd=tcp::{free_port()}-:80"


@pytest.fixture
def initrd(tmp_path) -> Path:
    path = tmp_path / "riscv64.img"
    path.write_bytes(b"dummy initrd\n" * 100)
    return path


def poweroff(child: pexpect.spawn) -> str:
    child.sendline("poweroff")
    child.expect(pexpect.EOF)
    child.close()
    return child.before.decode(errors="replace")


@pytest.mark.parametrize("how", ["emu", "shim"])
@pytest.mark.parametrize("name,argv", [("xtask", XTASK), ("makefile", MAKEFILE)])
def test_zcore_command_lines_reach_the_prompt(refguest_elf, initrd, shim_dir, tmp_path, how, name, argv):
    child = spawn(how, substitute(argv, refguest_elf, initrd, tmp_path), shim_dir)
    try:
        child.expect("ref> ")
        booted = child.before.decode(errors="replace")
        poweroff(child)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert "OpenSBI" not in booted  # emu, not the real QEMU that may be further down PATH
    if name == "xtask":
        assert 'bootargs ""LOG=warn""' in booted  # the quotes reach /chosen/bootargs
    else:
        assert "-device e1000e" not in booted  # the NIC is emu's e1000e on PCI: nothing to warn about
        assert 'bootargs "LOG=warn ROOTPROC=/bin/busybox?sh"' in booted
        assert "ref> " in (tmp_path / "serial.out").read_text()  # -serial file: gets the console too


@pytest.mark.skipif(GDB is None, reason="gdb-multiarch missing: apt-get install gdb-multiarch")
@pytest.mark.parametrize("how,argv", [("emu", XTASK_GDB), ("shim", DEBUGRUN)])
def test_halted_until_gdb_continues(refguest_elf, initrd, shim_dir, tmp_path, how, argv):
    port = free_port()
    child = spawn(how, substitute(argv, refguest_elf, initrd, tmp_path, port), shim_dir)
    gdb = None
    try:
        child.expect(f"gdb stub listening on 127.0.0.1:{port} \\(waiting for gdb\\)")
        gdb = pexpect.spawn(GDB, ["-q", "-nx", "-ex", "set architecture riscv:rv64", "-ex", "set confirm off",
                                  "-ex", f"target remote localhost:{port}", str(refguest_elf)], timeout=30)
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("p/x $pc")
        gdb.expect(r"= (0x[0-9a-f]+)")
        assert int(gdb.match.group(1), 16) == 0x8020_0000  # the kernel's first instruction
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("info threads")
        gdb.expect(r"hart0 S-mode, start_pending")  # hart 0 has not run yet
        gdb.expect(r"\(gdb\) ")
        gdb.sendline("continue")
        gdb.expect("Continuing")
        child.expect("ref> ")
        child.sendline("poweroff")
        child.expect(pexpect.EOF)
        gdb.expect(["exited", "Remote connection closed", "Remote communication error"])
    finally:
        if gdb is not None:
            gdb.close(force=True)
        child.close(force=True)
    assert child.exitstatus == 0


def test_opensbi_bios_is_replaced_with_a_warning(refguest_elf, shim_dir, tmp_path):
    if not OPENSBI.exists():
        pytest.skip("Debian's opensbi package is missing")
    child = spawn("emu", ["-kernel", str(refguest_elf), "-bios", str(OPENSBI), "-nographic"], shim_dir)
    try:
        child.expect("ref> ")
        assert b"emu: warning: -bios" in child.before and b"OpenSBI is replaced" in child.before
        poweroff(child)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def run_bad(how: str, argv: list[str], shim: Path) -> subprocess.CompletedProcess:
    cmd = emu_cmd("qemu-system-riscv64", *argv) if how == "emu" else [str(shim / "qemu-system-riscv64"), *argv]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("how", ["emu", "shim"])
@pytest.mark.parametrize("extra,needle", [
    (["-frobnicate", "x"], "-frobnicate"),
    (["-bios", "none"], "-bios none"),
    (["-bios", "/usr/lib/u-boot/qemu-riscv64_smode/u-boot.bin"], "M-mode firmware"),
    (["-machine", "sifive_u"], "virt"),
    (["-serial", "file:/nonexistent-dir/x"], "/nonexistent-dir/x"),
])
def test_bad_input_is_one_line_exit_2(refguest_elf, shim_dir, how, extra, needle):
    res = run_bad(how, ["-kernel", str(refguest_elf), "-nographic", *extra], shim_dir)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert res.stderr.startswith("emu: error: ") and needle in res.stderr, res.stderr


def test_missing_kernel_is_bad_input(shim_dir, tmp_path):
    res = run_bad("shim", ["-kernel", str(tmp_path / "nope.bin")], shim_dir)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "not found" in res.stderr, res.stderr


def test_version_and_dumpdtb(shim_dir, refguest_elf, tmp_path):
    env = dict(os.environ, PATH=f"{shim_dir}:{os.environ['PATH']}")
    res = subprocess.run(["qemu-system-riscv64", "-version"], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0 and "QEMU emulator version" in res.stdout and "emu" in res.stdout
    dtb = tmp_path / "virt.dtb"
    res = run_bad("shim", ["-machine", f"virt,dumpdtb={dtb}", "-smp", "3", "-kernel", str(refguest_elf),
                           "-append", "a,b"], shim_dir)
    assert res.returncode == 0, res.stderr
    import libfdt

    fdt = libfdt.Fdt(dtb.read_bytes())
    assert fdt.getprop(fdt.path_offset("/chosen"), "bootargs").as_str() == "a,b"
    assert fdt.path_offset("/cpus/cpu@2") > 0


def test_shim_refuses_to_replace_a_foreign_file(tmp_path):
    (tmp_path / "qemu-system-riscv64").write_text("#!/bin/sh\necho real\n")
    res = subprocess.run(emu_cmd("shim", str(tmp_path)), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "not written by emu shim" in res.stderr
    assert (tmp_path / "qemu-system-riscv64").read_text() == "#!/bin/sh\necho real\n"


def test_d_int_writes_a_trace_of_interrupts_to_the_D_file(refguest_elf, tmp_path):
    import json

    log = tmp_path / "qemu.log"
    res = subprocess.run(emu_cmd("qemu-system-riscv64", "-kernel", str(refguest_elf), "-smp", "2", "-nographic",
                                 "-d", "int,guest_errors", "-D", str(log)),
                         input=b"poweroff\n", capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stderr.decode().splitlines() == ["emu: warning: -d guest_errors: no emu equivalent "
                                                "(emu traces: -d int -D FILE)"]
    data = json.loads(log.read_text())
    events = data["traceEvents"] if isinstance(data, dict) else data
    cats = {e.get("cat") for e in events}
    assert "irq" in cats and not cats & {"syscall", "sbi", "ipi"}  # only the groups -d int asks for
