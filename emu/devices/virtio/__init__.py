"""virtio devices: the transports (mmio; pci, modern virtio-pci on a PCI host), split
virtqueues (queue), block (blk) and network (net) devices, and the network backends (none,
tap, user = libslirp).

The riscv machine builds a device with `make_virtio(kind, options, dma, irq, legacy)` and maps
the returned VirtioMmio object in a virtio slot; the PC board puts `make_virtio_pci(kind,
options, dma, irq)` in a PCI slot.  Either is polled between rounds (network input) and
closed at exit.  `parse_drive` / `parse_net` turn the command-line
values (`--drive file=PATH[,readonly=on]`, `--net user[,hostfwd=...]|tap,ifname=NAME|none`)
into the options dicts (raising EmuError, one line, on bad input).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu.devices.dma import GuestMemory
from emu.devices.irq import IrqLine
from emu.devices.virtio.mmio import VirtioMmio
from emu.errors import EmuError

if TYPE_CHECKING:
    from emu.devices.virtio.pci import VirtioPci

__all__ = ["VirtioMmio", "make_net_backend", "make_virtio", "make_virtio_pci", "parse_drive", "parse_net"]

_ON = {"on": True, "yes": True, "true": True, "1": True, "off": False, "no": False, "false": False, "0": False}


def _split_opts(text: str, what: str) -> tuple[str | None, dict[str, list[str]]]:
    """QEMU-style `first,key=value,key=value`; returns (first bare word or None, {key: [values]})."""
    head: str | None = None
    opts: dict[str, list[str]] = {}
    for i, part in enumerate(text.split(",")):
        if "=" in part:
            key, value = part.split("=", 1)
            opts.setdefault(key.strip(), []).append(value)
        elif i == 0:
            head = part.strip()
        elif part.strip():
            raise EmuError(f"{what} {text}: {part!r} is not key=value")
    return head, opts


def _flag(opts: dict[str, list[str]], key: str, what: str) -> bool:
    value = opts.get(key, ["off"])[-1].lower()
    if value not in _ON:
        raise EmuError(f"{what}: {key}={value} (use on or off)")
    return _ON[value]


def parse_drive(text: str) -> dict:
    """`file=PATH[,readonly=on][,serial=S]` (also `PATH,...`) -> blk options."""
    head, opts = _split_opts(text, "--drive")
    path = opts.pop("file", [head] if head else [None])[-1]
    if not path:
        raise EmuError(f"--drive {text}: missing file=PATH")
    readonly = _flag(opts, "readonly", "--drive")
    opts.pop("readonly", None)
    serial = opts.pop("serial", [""])[-1]
    for ignored in ("if", "format", "id", "media", "cache"):
        opts.pop(ignored, None)  # QEMU spellings that change nothing here (raw images only)
    if opts:
        raise EmuError(f"--drive {text}: unknown option {next(iter(opts))}")
    return {"file": path, "readonly": readonly, "serial": serial}


def parse_net(text: str) -> dict:
    """`user[,hostfwd=RULE]...[,mac=M]` | `tap,ifname=NAME[,mac=M]` | `none` -> net options."""
    head, opts = _split_opts(text, "--net")
    backend = (head or "").lower()
    if backend not in ("user", "tap", "none"):
        raise EmuError(f"--net {text}: use user, tap,ifname=NAME or none")
    out: dict = {"backend": backend}
    if "mac" in opts:
        out["mac"] = opts.pop("mac")[-1]
    if backend == "user":
        out["hostfwd"] = opts.pop("hostfwd", [])
    elif backend == "tap":
        names = opts.pop("ifname", [])
        if not names or not names[-1]:
            raise EmuError(f"--net {text}: tap needs ifname=NAME")
        out["ifname"] = names[-1]
    opts.pop("id", None)
    if opts:
        raise EmuError(f"--net {text}: unknown option {next(iter(opts))}")
    return out


def make_net_backend(options: dict):
    backend = options.get("backend", "none")
    if backend == "user":
        from emu.devices.virtio.slirp import SlirpBackend

        return SlirpBackend(options.get("hostfwd", ()))
    if backend == "tap":
        from emu.devices.virtio.tap import TapBackend

        return TapBackend(options["ifname"])
    if backend == "none":
        from emu.devices.virtio.net import NullBackend

        return NullBackend()
    if hasattr(backend, "send") and hasattr(backend, "poll"):
        return backend  # an object implementing the backend interface (tests)
    raise EmuError(f"unknown network backend {backend!r}")


def make_virtio(kind: str, options: dict, dma: GuestMemory, irq: IrqLine, legacy: bool = True) -> VirtioMmio:
    """A virtio-mmio device of `kind` ("blk" or "net") for one slot.

    blk options: file (path), readonly (bool), serial (str).
    net options: backend ("user" | "tap" | "none" | a backend object), hostfwd (list of
    QEMU rules, user), ifname (tap), mac ("52:54:00:12:34:56" by default).
    Raises EmuError (one line) on bad options, a missing/unwritable image, a TAP device
    that cannot be opened or a missing libslirp.
    """
    return VirtioMmio(_make_device(kind, options), dma, irq, legacy=legacy)


def make_virtio_pci(kind: str, options: dict, dma: GuestMemory, irq: IrqLine) -> "VirtioPci":
    """A virtio-blk-pci / virtio-net-pci function of `kind` (options and errors as
    `make_virtio`); `irq` is its INTx line."""
    from emu.devices.virtio.pci import VirtioPci

    return VirtioPci(_make_device(kind, options), dma, irq)


def _make_device(kind: str, options: dict):
    if kind == "blk":
        from emu.devices.virtio.blk import VirtioBlk

        dev = VirtioBlk(options["file"], bool(options.get("readonly", False)), options.get("serial", ""))
    elif kind == "net":
        from emu.devices.virtio.net import DEFAULT_MAC, VirtioNet, parse_mac

        mac = parse_mac(options.get("mac") or DEFAULT_MAC)  # before the backend: no fd to leak
        dev = VirtioNet(make_net_backend(options), mac)
    else:
        raise EmuError(f"unknown virtio device kind {kind!r} (blk or net)")
    return dev
