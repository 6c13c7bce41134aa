"""virtio-net (virtio 1.x section 5.1): one RX/TX queue pair, a MAC, link up, and a
pluggable host backend.

A backend moves Ethernet frames (no virtio header) between the device and the host:

    send(frame)      the guest transmitted a frame
    poll() -> list   frames that arrived for the guest since the last poll (never blocks)
    wait_fds()       host fds that become readable when frames may arrive (for idle waits)
    close()

The machine calls the transport's `poll()` between rounds; that pulls the backend's frames
into the device, which copies them into the guest's RX buffers as the driver posts them
(at most PENDING_MAX frames wait; older ones are dropped, as a NIC's FIFO would).
"""
from __future__ import annotations

import struct
from collections import deque
from typing import Protocol

from emu.devices.virtio.mmio import F_VERSION_1
from emu.devices.virtio.queue import Virtqueue

DEVICE_ID_NET = 1

# Feature bits (5.1.3)
F_MAC = 1 << 5
F_MRG_RXBUF = 1 << 15
F_STATUS = 1 << 16
S_LINK_UP = 1

RX, TX = 0, 1
HDR_LEGACY = 10  # struct virtio_net_hdr without num_buffers
HDR_V1 = 12  # with num_buffers (VERSION_1 or MRG_RXBUF)
MAX_FRAME = 65535 + 14  # the largest frame taken from the guest (no TSO/GSO offered)
PENDING_MAX = 256
DEFAULT_MAC = "52:54:00:12:34:56"  # QEMU's first NIC


class NetBackend(Protocol):
    def send(self, frame: bytes) -> None: ...

    def poll(self) -> list[bytes]: ...

    def wait_fds(self) -> list[int]: ...

    def close(self) -> None: ...


class NullBackend:
    """`--net none` behind a NIC: frames go nowhere, none arrive."""

    def send(self, frame: bytes) -> None:
        pass

    def poll(self) -> list[bytes]:
        return []

    def wait_fds(self) -> list[int]:
        return []

    def close(self) -> None:
        pass


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    try:
        mac = bytes(int(p, 16) for p in parts)
    except ValueError:
        mac = b""
    if len(parts) != 6 or len(mac) != 6 or any(len(p) not in (1, 2) for p in parts) or mac[0] & 1:
        from emu.errors import EmuError

        raise EmuError(f"bad MAC address {text!r} (use e.g. {DEFAULT_MAC}, unicast)")
    return mac


class VirtioNet:
    device_id = DEVICE_ID_NET
    num_queues = 2
    features = F_MAC | F_STATUS

    def __init__(self, backend: NetBackend, mac: bytes | str = DEFAULT_MAC) -> None:
        self.backend = backend
        self.mac = parse_mac(mac) if isinstance(mac, str) else bytes(mac)
        self.pending: deque[bytes] = deque()
        self.stats = {"tx": 0, "rx": 0, "tx_dropped": 0, "rx_dropped": 0}
        self.transport = None
        self._config = self.mac + struct.pack("<HHH", S_LINK_UP, 1, 1500)

    def attach(self, transport) -> None:
        self.transport = transport

    # -- backend interface (transport side) ---------------------------------------------------
    def config_bytes(self) -> bytes:
        return self._config

    def config_write(self, offset: int, data: bytes) -> None:
        pass  # legacy drivers may write the MAC; the device keeps its own

    def reset(self) -> None:
        self.pending.clear()

    def hdr_len(self, transport) -> int:
        return HDR_V1 if transport.features & (F_VERSION_1 | F_MRG_RXBUF) else HDR_LEGACY

    def process(self, transport, q: Virtqueue) -> None:
        if q.index == TX:
            self._transmit(transport, q)
            self.pending.extend(self.backend.poll())  # answers the backend made at once (ARP, ping)
            self._trim()
        self._deliver(transport)

    def driver_ok(self, transport) -> None:
        self._deliver(transport)

    def poll(self, transport) -> None:
        frames = self.backend.poll()
        if frames:
            self.pending.extend(frames)
            self._trim()
        if self.pending:
            self._deliver(transport)

    def wait_fds(self) -> list[int]:
        return self.backend.wait_fds()

    def close(self) -> None:
        self.backend.close()

    # -- data path -------------------------------------------------------------------------------
    def _trim(self) -> None:
        while len(self.pending) > PENDING_MAX:
            self.pending.popleft()
            self.stats["rx_dropped"] += 1

    def _transmit(self, transport, q: Virtqueue) -> None:
        mem = transport.mem
        hdr = self.hdr_len(transport)
        try:
            while (chain := q.pop(mem)) is not None:
                if hdr <= chain.read_len <= hdr + MAX_FRAME:
                    frame = chain.read_all(mem, hdr)
                    q.push(mem, chain.head, 0)
                    if frame:
                        self.stats["tx"] += 1
                        self.backend.send(frame)
                else:
                    q.push(mem, chain.head, 0)
                    self.stats["tx_dropped"] += 1
        finally:
            transport.used(q)

    def _deliver(self, transport) -> None:
        """Copy waiting frames into the RX buffers the driver has posted."""
        if not self.pending or not transport.live():
            return
        q = transport.queues[RX]
        if not q.ready:
            return
        mem = transport.mem
        hdr_len = self.hdr_len(transport)
        header = bytes(10) + (b"\x01\x00" if hdr_len == HDR_V1 else b"")  # num_buffers = 1
        pushed = False
        try:
            while self.pending:
                chain = q.pop(mem)
                if chain is None:
                    break
                frame = self.pending.popleft()
                if chain.write_len < hdr_len + len(frame):
                    q.push(mem, chain.head, 0)  # buffer too small: the frame is lost
                    self.stats["rx_dropped"] += 1
                else:
                    chain.write(mem, 0, header + frame)
                    q.push(mem, chain.head, hdr_len + len(frame))
                    self.stats["rx"] += 1
                pushed = True
        finally:
            if pushed:
                transport.used(q)
