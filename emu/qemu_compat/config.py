"""A `qemu-system-riscv64` command line -> what emu runs (`QemuPlan`), as plain data.

Pure: nothing is read or started here, so every argv list zCore's tooling builds can be
unit tested.  The rules:
- what emu honours maps onto `emu run`'s features (harts, RAM, kernel, initrd, bootargs,
  virtio-blk / virtio-net on virtio-mmio, GDB stub, console copies, trace);
- what the guest would see differently and emu cannot give it (an unknown machine, a
  network backend emu lacks) is an EmuError, exit 2;
- devices emu does not model (`-device virtio-gpu-device`) and settings without an
  equivalent are a one-line warning each, naming what the guest will not see, and the run
  goes on.  `-device e1000` / `e1000e` (zCore's Makefile) are emu's PCI NICs (`--nic`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from emu.board import GiB, MAX_HARTS, MiB
from emu.errors import EmuError
from emu.qemu_compat.argv import KeyVal, parse_keyval, split_argv

QEMU_DEFAULT_RAM = 128 * MiB  # QEMU's default -m for riscv64 virt
GDB_DEFAULT = "tcp::1234"  # what -s means
D_EVENTS = {"int": "trap,irq"}  # -d item -> emu trace event groups
MACHINE_IGNORED = {"usb", "dump-guest-core", "mem-merge", "graphics", "acpi", "suppress-vmdesc"}
MACHINE_DEFAULTS = {"aclint": "off", "aia": "none"}  # accepted only at QEMU's default value
BLK_DEVICES = {"virtio-blk-device": "", "virtio-blk-pci": "pci", "virtio-blk": "pci"}
NET_DEVICES = {"virtio-net-device": "", "virtio-net-pci": "pci", "virtio-net": "pci"}
VIRTIO_NIC_MODELS = {None, "virtio-net-device", "virtio", "virtio-net-pci"}
PCI_NICS = {"e1000": "e1000", "e1000-82540em": "e1000", "e1000e": "e1000e"}  # QEMU name -> `emu run --nic`


@dataclass
class DrivePlan:
    """One disk the guest sees as a virtio-blk device (virtio-mmio)."""

    path: str
    format: str | None = None  # raw, qcow2, ...; None: probe (qemu-img info)
    readonly: bool = False
    snapshot: bool = False  # writes go to a throw-away copy (-snapshot, snapshot=on)
    id: str | None = None


@dataclass
class QemuPlan:
    kernel: str | None = None
    initrd: str | None = None
    append: str = ""
    smp: int = 1
    ram_size: int = QEMU_DEFAULT_RAM
    bios: str = "default"  # "default" or a firmware file to vet (OpenSBI is replaced)
    drives: list[DrivePlan] = field(default_factory=list)
    net: str | None = None  # `emu run --net` spec of the one NIC's backend
    nic: str = "virtio"  # `emu run --nic`: virtio-net, or e1000 / e1000e on PCI
    gdb: str | None = None  # [HOST]:PORT
    gdb_wait: bool = False  # -S
    console_stdio: bool = True  # the UART is on stdin/stdout
    console_escape: bool = True  # Ctrl-A keys (QEMU's mux: mon:stdio, or no -serial with -nographic)
    serial_files: list[str] = field(default_factory=list)  # the UART's output is copied here
    trace_file: str | None = None  # -D with -d int
    trace_events: str = "all"
    deterministic: bool = False  # -icount: emu's virtual clock instead of host time
    dumpdtb: str | None = None  # -machine dumpdtb=FILE: write the device tree and exit
    version: bool = False
    help: bool = False
    warnings: list[str] = field(default_factory=list)

    def warn(self, text: str) -> None:
        self.warnings.append(text)


def plan_from_argv(argv: list[str]) -> QemuPlan:
    """Parse a qemu-system-riscv64 argv (without argv[0]) into a QemuPlan (EmuError on bad input)."""
    options = split_argv(argv)
    plan = QemuPlan()
    drives: dict[str, DrivePlan] = {}  # id -> -drive if=none, waiting for a -device
    netdevs: dict[str, KeyVal] = {}
    nics: list[tuple[str, KeyVal, str | None, str]] = []  # (what, netdev options, mac, emu --nic)
    serials: list[str] = []
    devices: list[KeyVal] = []
    d_items: list[str] = []
    log_file: str | None = None
    snapshot = False
    for opt in options:
        name, value = opt.name, opt.value or ""
        if name in ("machine", "M"):
            plan.dumpdtb = _machine(parse_keyval("-machine", value, "type")) or plan.dumpdtb
        elif name == "bios":
            plan.bios = value
        elif name == "m":
            plan.ram_size = _memory(parse_keyval("-m", value, "size"), plan)
        elif name == "smp":
            plan.smp = _smp(parse_keyval("-smp", value, "cpus"))
        elif name in ("kernel", "initrd"):
            setattr(plan, name, value)
        elif name == "append":
            plan.append = value  # byte for byte, quotes included
        elif name == "display":
            if value.split(",")[0] != "none":
                plan.warn(f"-display {value}: emu has no graphical display (console only)")
        elif name == "vga":
            if value != "none":
                plan.warn(f"-vga {value}: emu models no graphics card; the guest will not see one")
        elif name == "serial":
            serials.append(value)
        elif name == "monitor":
            if value != "none":
                plan.warn(f"-monitor {value}: emu has no QEMU monitor (on mon:stdio only Ctrl-A x works)")
        elif name == "parallel":
            if value != "none":
                plan.warn(f"-parallel {value}: the virt machine has no parallel port")
        elif name == "S":
            plan.gdb_wait = True
        elif name == "s":
            plan.gdb = gdb_address(GDB_DEFAULT)
        elif name == "gdb":
            plan.gdb = gdb_address(value)
        elif name == "drive":
            drive, interface = _drive(parse_keyval("-drive", value), plan)
            if interface == "none":
                if drive.id is None:
                    raise EmuError(f"-drive {value}: if=none needs id=ID (for -device ...,drive=ID)")
                drives[drive.id] = drive
            elif drive is not None:
                plan.drives.append(drive)
        elif name == "device":
            devices.append(parse_keyval("-device", value, "driver"))
        elif name == "netdev":
            kv = parse_keyval("-netdev", value, "type")
            ident = kv.get("id")
            if not ident:
                raise EmuError(f"-netdev {value}: needs id=ID")
            netdevs[ident] = kv
        elif name == "nic":
            _nic(parse_keyval("-nic", value, "type"), nics, plan)
        elif name == "accel":
            _accel(parse_keyval("-accel", value, "accel"))
        elif name == "cpu":
            _cpu(value, plan)
        elif name == "d":
            d_items += [item for item in value.split(",") if item]
        elif name == "D":
            log_file = value
        elif name == "icount":
            plan.deterministic = True
            plan.warn(f"-icount {value}: emu uses its own deterministic virtual clock "
                      "(~100 M instructions per virtual second); shift/align/sleep are ignored")
        elif name == "snapshot":
            snapshot = True
        elif name == "no-shutdown":
            plan.warn("-no-shutdown: emu exits when the guest shuts down")
        elif name == "version":
            plan.version = True
        elif name in ("h", "help"):
            plan.help = True
        # nographic, no-reboot (emu never reboots: it exits), name, k, rtc, nodefaults: nothing to do
    for kv in devices:
        _device(kv, drives, netdevs, nics, plan)
    for drive in drives.values():
        plan.warn(f"-drive id={drive.id}: no -device uses it; the guest will not see {drive.path}")
    if snapshot:
        for drive in plan.drives:
            drive.snapshot = True
    _serial(serials, plan)
    _net(nics, plan)
    _logging(d_items, log_file, plan)
    if plan.gdb_wait and plan.gdb is None:
        plan.warn("-S without -gdb/-s: nothing can continue the machine in emu; starting it anyway")
        plan.gdb_wait = False
    return plan


def gdb_address(spec: str) -> str | None:
    """QEMU's `-gdb` chardev (`tcp::PORT`, `tcp:HOST:PORT[,server,nowait]`, `PORT`, `none`)
    -> emu's `[HOST]:PORT`.  An empty host is loopback (QEMU would listen on every interface)."""
    if spec == "none":
        return None
    head = spec.split(",")[0]
    if head.isdigit():
        head = f"tcp::{head}"
    if not head.startswith("tcp:"):
        raise EmuError(f"-gdb {spec}: emu's GDB stub listens on TCP only (use tcp::PORT)")
    host, _, port = head[4:].rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise EmuError(f"-gdb {spec}: bad port (use tcp::PORT)")
    return f"{host or '127.0.0.1'}:{port}"


def _machine(kv: KeyVal) -> str | None:
    """Vet -machine; returns its dumpdtb=FILE, if any."""
    kind = kv.pop("type")
    if kind not in (None, "virt"):
        raise EmuError(f"-machine {kv.text}: emu is only the virt machine")
    accel = kv.pop("accel")
    if accel is not None and accel != "tcg":
        raise EmuError(f"-machine accel={accel}: emu is its own accelerator (use tcg or leave it out)")
    dumpdtb = kv.pop("dumpdtb")
    for key in kv.leftover():
        value = kv.get(key)
        if key in MACHINE_IGNORED or MACHINE_DEFAULTS.get(key) == value:
            continue
        raise EmuError(f"-machine {key}={value}: not supported by emu's virt machine")
    return dumpdtb


def _memory(kv: KeyVal, plan: QemuPlan) -> int:
    from emu.cli import parse_size

    text = kv.pop("size")
    if text is None:
        raise EmuError(f"-m {kv.text}: missing size")
    size = parse_size(text)
    if size < 16 * MiB or size > 16 * GiB:
        raise EmuError(f"-m {text}: RAM must be between 16M and 16G")
    for key in ("slots", "maxmem"):
        if kv.pop(key) is not None:
            plan.warn(f"-m {key}=: emu has no memory hotplug; ignored")
    if kv.leftover():
        raise EmuError(f"-m {kv.text}: unknown property {kv.leftover()[0]}")
    return size


def _smp(kv: KeyVal) -> int:
    values: dict[str, int] = {}
    for key in ("cpus", "maxcpus", "sockets", "dies", "clusters", "cores", "threads"):
        text = kv.pop(key)
        if text is None:
            continue
        if not text.isdigit():
            raise EmuError(f"-smp {kv.text}: {key}={text} is not a number")
        values[key] = int(text)
    if kv.leftover():
        raise EmuError(f"-smp {kv.text}: unknown property {kv.leftover()[0]}")
    cpus = values.get("cpus")
    topology = [values[k] for k in ("sockets", "dies", "clusters", "cores", "threads") if k in values]
    if cpus is None and topology:
        cpus = 1
        for n in topology:
            cpus *= n
    if cpus is None:
        cpus = values.get("maxcpus", 1)
    if not 1 <= cpus <= MAX_HARTS:
        raise EmuError(f"-smp {kv.text}: emu has 1 to {MAX_HARTS} harts")
    return cpus


def _drive(kv: KeyVal, plan: QemuPlan) -> tuple[DrivePlan | None, str]:
    path = kv.pop("file")
    if not path:
        raise EmuError(f"-drive {kv.text}: missing file=PATH")
    interface = kv.pop("if", "virtio") or "virtio"
    drive = DrivePlan(path, kv.pop("format"), kv.flag("readonly"), kv.flag("snapshot"), kv.pop("id"))
    for key in ("cache", "media", "aio", "discard", "detect-zeroes", "werror", "rerror", "index", "serial"):
        kv.pop(key)
    if kv.leftover():
        raise EmuError(f"-drive {kv.text}: unknown property {kv.leftover()[0]}")
    if interface == "virtio" or interface == "none":
        return drive, interface
    plan.warn(f"-drive if={interface}: not modelled by emu; the guest will not see {path}")
    return None, interface


def _device(kv: KeyVal, drives: dict[str, DrivePlan], netdevs: dict[str, KeyVal],
            nics: list[tuple[str, KeyVal, str | None, str]], plan: QemuPlan) -> None:
    driver = kv.pop("driver") or ""
    kv.pop("bus")
    kv.pop("id")
    if driver in BLK_DEVICES:
        ident = kv.pop("drive")
        if ident is None or ident not in drives:
            raise EmuError(f"-device {kv.text}: no -drive with id={ident}")
        if BLK_DEVICES[driver]:
            plan.warn(f"-device {driver}: emu has no PCI devices; the disk is a virtio-blk-device (virtio-mmio)")
        plan.drives.append(drives.pop(ident))
    elif driver in NET_DEVICES or driver in PCI_NICS:
        ident = kv.pop("netdev")
        if ident is None or ident not in netdevs:
            raise EmuError(f"-device {kv.text}: no -netdev with id={ident}")
        if NET_DEVICES.get(driver):
            plan.warn(f"-device {driver}: emu has no virtio-pci; the NIC is a virtio-net-device (virtio-mmio)")
        nics.append((f"-device {driver}", netdevs[ident], kv.pop("mac"), PCI_NICS.get(driver, "virtio")))
    else:
        netdev = kv.get("netdev")
        what = f"this NIC (netdev {netdev} stays unconnected)" if netdev else "it"
        plan.warn(f"-device {driver}: not modelled by emu; the guest will not see {what}")


def _nic(kv: KeyVal, nics: list[tuple[str, KeyVal, str | None, str]], plan: QemuPlan) -> None:
    if kv.get("type") == "none":
        return
    model = kv.pop("model")
    mac = kv.pop("mac")
    if model in PCI_NICS:
        nics.append(("-nic", kv, mac, PCI_NICS[model]))
        return
    if model not in VIRTIO_NIC_MODELS:
        plan.warn(f"-nic model={model}: not modelled by emu; the guest will not see this NIC")
        return
    if model not in (None, "virtio-net-device"):
        plan.warn(f"-nic model={model}: emu has no virtio-pci; the NIC is a virtio-net-device (virtio-mmio)")
    nics.append(("-nic", kv, mac, "virtio"))


def _net(nics: list[tuple[str, KeyVal, str | None, str]], plan: QemuPlan) -> None:
    """The first NIC becomes emu's NIC (emu models one): virtio-net, e1000 or e1000e."""
    for what, _kv, _mac, _model in nics[1:]:
        plan.warn(f"{what}: emu models one NIC; the guest will not see this one")
    if not nics:
        return
    what, kv, mac, plan.nic = nics[0]
    kind = kv.get("type")
    extra = f",mac={mac}" if mac else ""
    if kind == "user":
        rules = "".join(f",hostfwd={rule}" for rule in kv.items.get("hostfwd", []))
        ignored = [k for k in kv.items if k not in ("type", "id", "hostfwd")]
        if ignored:
            plan.warn(f"{what}: user network options {','.join(ignored)} ignored (emu's slirp is 10.0.2.0/24)")
        plan.net = f"user{rules}{extra}"
    elif kind == "tap":
        ifname = kv.get("ifname")
        if not ifname:
            raise EmuError(f"{what} {kv.text}: emu needs tap,ifname=NAME (an existing TAP device)")
        scripts = [k for k in ("script", "downscript") if kv.get(k) not in (None, "no")]
        if scripts:
            plan.warn(f"{what}: emu runs no {'/'.join(scripts)}; set the TAP device up yourself")
        plan.net = f"tap,ifname={ifname}{extra}"
    else:
        raise EmuError(f"{what} {kv.text}: network backend {kind} not supported (use user or tap)")


def _accel(kv: KeyVal) -> None:
    if kv.get("accel") != "tcg":
        raise EmuError(f"-accel {kv.text}: emu is its own accelerator (use tcg)")


def _cpu(value: str, plan: QemuPlan) -> None:
    model, _, props = value.partition(",")
    if model not in ("rv64", "max", "any"):
        plan.warn(f"-cpu {model}: emu's harts are rv64gc (Unicorn); using that")
    if props:
        plan.warn(f"-cpu {value}: CPU properties are ignored (emu's harts are fixed rv64gc)")


def _serial(serials: list[str], plan: QemuPlan) -> None:
    """emu has one UART.  It is on stdio when any -serial says (mon:)stdio (or none is given);
    every `file:PATH` receives a copy of its output.  Ctrl-A x / Ctrl-A Ctrl-A work on
    `mon:stdio` only, as in QEMU: a plain `-serial stdio` hands every byte to the guest."""
    if not serials:
        return
    plan.console_stdio = False
    for spec in serials:
        backend = spec[4:] if spec.startswith("mon:") else spec
        if backend == "stdio":
            plan.console_stdio = True
            plan.console_escape = spec.startswith("mon:")
        elif backend.startswith("file:") and len(backend) > 5:
            plan.serial_files.append(backend[5:])
        elif backend not in ("null", "none"):
            raise EmuError(f"-serial {spec}: emu connects the UART to stdio, file:PATH or null only")


def _logging(items: list[str], log_file: str | None, plan: QemuPlan) -> None:
    groups = [D_EVENTS[i] for i in items if i in D_EVENTS]
    others = [i for i in items if i not in D_EVENTS]
    if others:
        plan.warn(f"-d {','.join(others)}: no emu equivalent (emu traces: -d int -D FILE)")
    if not groups:
        return
    if log_file is None:
        plan.warn("-d int: emu writes interrupts and traps as a Perfetto trace file only; give -D FILE")
        return
    plan.trace_file = log_file
    plan.trace_events = ",".join(groups)
