"""The qemu-system-riscv64 argv parser on the exact lists zCore's tooling builds (issue 17)."""
from __future__ import annotations

import pytest

from emu.errors import EmuError
from emu.qemu_compat.argv import parse_keyval, split_argv, split_commas
from emu.qemu_compat.config import DrivePlan, gdb_address, plan_from_argv

K, I = "zcore.bin", "riscv64.img"
# upstream zCore xtask: `cargo qemu --arch riscv64 --smp 2` (Rust passes "\"LOG=warn\"" -> "LOG=warn" with quotes)
XTASK = ["-m", "2G", "-kernel", K, "-initrd", I, "-append", '"LOG=warn"', "-display", "none", "-no-reboot",
         "-nographic", "-smp", "2", "-machine", "virt", "-bios", "default", "-serial", "mon:stdio"]
XTASK_GDB = XTASK + ["-S", "-gdb", "tcp::1234"]
# the offload fork's zCore/Makefile: `make run LINUX=1 SMP=2 ARCH=riscv64` (and `debugrun`)
MAKEFILE_NETDEV = "user,id=net1,hostfwd=tcp::8000-:80,hostfwd=tcp::2222-:2222,hostfwd=udp::6969-:6969"
MAKEFILE = ["-smp", "2", "-machine", "virt", "-bios", "default", "-m", "512M", "-no-reboot", "-serial", "mon:stdio",
            "-serial", "file:/tmp/serial.out", "-kernel", K, "-initrd", I, "-append", "LOG=warn ROOTPROC=/bin/busybox?sh",
            "-netdev", MAKEFILE_NETDEV, "-device", "e1000e,netdev=net1", "-display", "none"]
DEBUGRUN = MAKEFILE + ["-S", "-gdb", "tcp::15234"]


def test_xtask_list():
    plan = plan_from_argv(XTASK)
    assert (plan.kernel, plan.initrd, plan.smp, plan.ram_size) == (K, I, 2, 2 << 30)
    assert plan.append == '"LOG=warn"'  # byte for byte, the quotes too
    assert plan.console_stdio and plan.serial_files == []
    assert plan.gdb is None and not plan.gdb_wait
    assert plan.drives == [] and plan.net is None
    assert plan.warnings == []


def test_xtask_gdb_list_halts_for_gdb_on_loopback():
    plan = plan_from_argv(XTASK_GDB)
    assert plan.gdb == "127.0.0.1:1234" and plan.gdb_wait


def test_makefile_list():
    plan = plan_from_argv(MAKEFILE)
    assert (plan.smp, plan.ram_size, plan.append) == (2, 512 << 20, "LOG=warn ROOTPROC=/bin/busybox?sh")
    assert plan.console_stdio and plan.serial_files == ["/tmp/serial.out"]
    assert plan.net == "user,hostfwd=tcp::8000-:80,hostfwd=tcp::2222-:2222,hostfwd=udp::6969-:6969"
    assert plan.nic == "e1000e"  # on the PCI host, as QEMU
    assert plan.warnings == []


def test_debugrun_list():
    plan = plan_from_argv(DEBUGRUN)
    assert plan.gdb == "127.0.0.1:15234" and plan.gdb_wait and plan.warnings == []


def test_double_dash_and_s_flag():
    plan = plan_from_argv(["--kernel", K, "-s", "--smp", "cpus=3"])
    assert plan.kernel == K and plan.gdb == "127.0.0.1:1234" and plan.smp == 3


def test_append_value_may_start_with_a_dash():
    assert plan_from_argv(["-append", "-v --debug"]).append == "-v --debug"


@pytest.mark.parametrize("spec,harts", [("2", 2), ("cpus=4", 4), ("sockets=1,cores=2,threads=2", 4),
                                        ("2,cores=2", 2), ("maxcpus=3", 3)])
def test_smp_forms(spec, harts):
    assert plan_from_argv(["-smp", spec]).smp == harts


@pytest.mark.parametrize("spec,size", [("2G", 2 << 30), ("size=2G", 2 << 30), ("512", 512 << 20),
                                       ("1024M", 1 << 30)])
def test_memory_forms(spec, size):
    assert plan_from_argv(["-m", spec]).ram_size == size


def test_default_memory_is_qemus():
    assert plan_from_argv([]).ram_size == 128 << 20


def test_comma_escaping_and_implied_keys():
    assert split_commas("file=a,,b.img,if=none") == ["file=a,b.img", "if=none"]
    kv = parse_keyval("-machine", "virt,usb=off,readonly", "type")
    assert kv.items == {"type": ["virt"], "usb": ["off"], "readonly": ["on"]}


def test_drive_and_device_cross_reference_in_either_order():
    plan = plan_from_argv(["-device", "virtio-blk-device,drive=userdisk,bus=virtio-mmio-bus.0",
                           "-drive", "format=qcow2,id=userdisk,if=none,file=a,,b.qcow2"])
    assert plan.drives == [DrivePlan("a,b.qcow2", "qcow2", False, False, "userdisk")]
    assert plan.warnings == []


def test_drive_if_virtio_readonly_and_snapshot():
    plan = plan_from_argv(["-drive", "file=x.img,if=virtio,format=raw,readonly=on", "-snapshot"])
    assert plan.drives == [DrivePlan("x.img", "raw", True, True, None)]


def test_unused_drive_and_pci_devices_warn():
    plan = plan_from_argv(["-drive", "file=x.img,if=none,id=d0", "-drive", "file=y.img,if=none,id=d1",
                           "-device", "virtio-blk-pci,drive=d1"])
    assert [d.path for d in plan.drives] == ["y.img"]
    assert len(plan.warnings) == 2
    assert "virtio-blk-pci" in plan.warnings[0] and "x.img" in plan.warnings[1]


def test_virtio_net_device_and_nic():
    plan = plan_from_argv(["-netdev", "user,id=n0,hostfwd=tcp::5555-:22",
                           "-device", "virtio-net-device,netdev=n0,mac=52:54:00:00:00:07"])
    assert plan.net == "user,hostfwd=tcp::5555-:22,mac=52:54:00:00:00:07" and plan.warnings == []
    assert plan_from_argv(["-nic", "tap,ifname=tap0,script=no,downscript=no"]).net == "tap,ifname=tap0"
    assert plan_from_argv(["-nic", "none"]).net is None
    plan = plan_from_argv(["-nic", "user,model=e1000"])
    assert (plan.net, plan.nic, plan.warnings) == ("user", "e1000", [])
    plan = plan_from_argv(["-nic", "user,model=rtl8139"])
    assert plan.net is None and "rtl8139" in plan.warnings[0]
    plan = plan_from_argv(["-netdev", "tap,id=t,ifname=tap3", "-device", "e1000,netdev=t,mac=52:54:00:00:00:08"])
    assert (plan.net, plan.nic) == ("tap,ifname=tap3,mac=52:54:00:00:00:08", "e1000")


@pytest.mark.parametrize("argv", [["-device", "virtio-gpu-device"], ["-device", "virtio-keyboard-device"],
                                  ["-display", "gtk"], ["-icount", "shift=0"], ["-cpu", "rv64,sv48=on"],
                                  ["-d", "in_asm"], ["-monitor", "stdio"]])
def test_things_emu_does_not_model_are_one_warning(argv):
    plan = plan_from_argv(argv)
    assert len(plan.warnings) == 1 and argv[1].split(",")[0] in plan.warnings[0]


def test_d_int_with_D_is_a_trace_of_traps_and_interrupts():
    plan = plan_from_argv(["-d", "int", "-D", "log.json"])
    assert (plan.trace_file, plan.trace_events) == ("log.json", "trap,irq") and plan.warnings == []


def test_icount_selects_the_deterministic_clock():
    assert plan_from_argv(["-icount", "shift=auto"]).deterministic
    assert not plan_from_argv([]).deterministic


@pytest.mark.parametrize("spec,address", [("tcp::1234", "127.0.0.1:1234"), ("tcp:0.0.0.0:99", "0.0.0.0:99"),
                                          ("tcp:localhost:7,server,nowait", "localhost:7"), ("4321", "127.0.0.1:4321"),
                                          ("none", None)])
def test_gdb_addresses(spec, address):
    assert gdb_address(spec) == address


def test_serial_variants():
    plan = plan_from_argv(["-serial", "file:/tmp/a", "-serial", "null"])
    assert not plan.console_stdio and plan.serial_files == ["/tmp/a"]
    assert plan_from_argv(["-serial", "stdio"]).console_stdio


@pytest.mark.parametrize("argv,needle", [
    (["-frobnicate"], "-frobnicate"),
    (["--enable-kvm"], "--enable-kvm"),
    (["disk.img"], "disk.img"),
    (["-kernel"], "requires an argument"),
    (["-machine", "sifive_u"], "virt"),
    (["-machine", "virt,aia=aplic-imsic"], "aia"),
    (["-accel", "kvm"], "tcg"),
    (["-smp", "9"], "8 harts"),
    (["-smp", "two"], "two"),
    (["-m", "1M"], "16M"),
    (["-m", "lots"], "memory size"),
    (["-gdb", "unix:/tmp/s"], "TCP"),
    (["-gdb", "tcp::x"], "port"),
    (["-serial", "pty"], "pty"),
    (["-netdev", "user"], "id="),
    (["-netdev", "socket,id=n", "-device", "virtio-net-device,netdev=n"], "socket"),
    (["-device", "virtio-blk-device,drive=nope"], "id=nope"),
    (["-drive", "if=none,id=x"], "file="),
    (["-drive", "file=x,if=none"], "id=ID"),
    (["-drive", "file=x,bogus=1"], "bogus"),
])
def test_bad_input_is_one_error_naming_it(argv, needle):
    with pytest.raises(EmuError) as err:
        plan_from_argv(argv)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_split_argv_keeps_order_and_flags():
    opts = split_argv(["-S", "-gdb", "tcp::1", "--nographic"])
    assert [(o.name, o.value) for o in opts] == [("S", None), ("gdb", "tcp::1"), ("nographic", None)]


def test_ctrl_a_keys_only_on_a_mux():
    assert plan_from_argv(XTASK).console_escape and plan_from_argv(MAKEFILE).console_escape
    assert plan_from_argv(["-nographic"]).console_escape  # QEMU: -nographic = -serial mon:stdio
    assert not plan_from_argv(["-display", "none", "-serial", "stdio"]).console_escape
