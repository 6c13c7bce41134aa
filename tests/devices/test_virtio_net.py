"""virtio-net over virtio-mmio with a recording backend, libslirp (`user`) and TAP."""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from emu.devices.virtio import make_virtio, parse_net
from emu.devices.virtio import mmio as M
from emu.devices.virtio.net import F_MAC, F_STATUS, PENDING_MAX
from emu.errors import EmuError
from tests.devices.virtio_driver import RAM_BASE, Driver, Irq, Ram

RXQ_BASE = RAM_BASE + 0x1000
TXQ_BASE = RAM_BASE + 0x4000
BUF = RAM_BASE + 0x10000
MAC = bytes.fromhex("525400123456")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Recorder:
    """A backend that records what the guest sends and hands out frames the test queues."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.inbox: list[bytes] = []
        self.closed = False

    def send(self, frame: bytes) -> None:
        self.sent.append(frame)

    def poll(self) -> list[bytes]:
        out, self.inbox = self.inbox, []
        return out

    def wait_fds(self) -> list[int]:
        return []

    def close(self) -> None:
        self.closed = True


def make(backend, legacy=True, mac=None):
    ram, irq = Ram(), Irq()
    opts = {"backend": backend}
    if mac:
        opts["mac"] = mac
    dev = make_virtio("net", opts, ram.mem, irq.line, legacy)
    drv = Driver(dev, ram)
    drv.init()
    rx = drv.setup_queue(0, 16, RXQ_BASE)
    tx = drv.setup_queue(1, 16, TXQ_BASE)
    drv.driver_ok()
    return dev, ram, irq, drv, rx, tx


def hdr_len(drv):
    return 10 if drv.legacy else 12


def post_rx(drv, rx, count=4, size=2048):
    for i in range(count):
        drv.add_chain(rx, [(BUF + 0x8000 + i * size, size, True)], notify=False)
    drv.w(M.QUEUE_NOTIFY, 0)


def transmit(drv, tx, frame, split=True):
    h = hdr_len(drv)
    drv.ram.put(BUF, bytes(h))
    drv.ram.put(BUF + 0x100, frame)
    bufs = [(BUF, h, False), (BUF + 0x100, len(frame), False)] if split else None
    if not split:
        drv.ram.put(BUF, bytes(h) + frame)
        bufs = [(BUF, h + len(frame), False)]
    drv.add_chain(tx, bufs)


def rx_frames(drv, rx, size=2048):
    """Frames in the used RX buffers (header checked and stripped)."""
    frames = []
    h = hdr_len(drv)
    for head, length in drv.take_used(rx):
        desc = drv.ram.get(rx.desc + 16 * head, 16)
        addr = struct.unpack("<Q", desc[:8])[0]
        data = drv.ram.get(addr, length)
        assert data[:10] == bytes(10)
        if h == 12:
            assert data[10:12] == b"\x01\x00"  # num_buffers
        frames.append(data[h:])
    return frames


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "modern"])
def test_tx_rx_with_a_recording_backend(legacy):
    be = Recorder()
    dev, ram, irq, drv, rx, tx = make(be, legacy)
    assert drv.r(M.DEVICE_ID) == 1
    assert drv.features & F_MAC and drv.features & F_STATUS
    assert bytes(dev.read(M.CONFIG + i, 1) for i in range(6)) == MAC
    assert dev.read(M.CONFIG + 6, 2) == 1  # link up
    frame = bytes(range(60))
    transmit(drv, tx, frame)
    transmit(drv, tx, frame[::-1], split=False)
    assert be.sent == [frame, frame[::-1]]
    assert drv.take_used(tx) == [(0, 0), (2, 0)]
    assert irq.level and drv.ack() == M.INT_USED
    # frames arriving before RX buffers wait in the device
    be.inbox = [b"\xff" * 6 + MAC + b"\x08\x06" + b"x" * 50, b"second frame" * 10]
    dev.poll()
    assert not irq.level
    post_rx(drv, rx)
    assert rx_frames(drv, rx) == [b"\xff" * 6 + MAC + b"\x08\x06" + b"x" * 50, b"second frame" * 10]
    assert irq.level and drv.ack() == M.INT_USED
    be.inbox = [b"third" * 20]
    dev.poll()
    assert rx_frames(drv, rx) == [b"third" * 20] and irq.level
    dev.close()
    assert be.closed


def test_rx_buffer_too_small_and_bounded_backlog():
    be = Recorder()
    dev, ram, irq, drv, rx, tx = make(be)
    drv.add_chain(rx, [(BUF + 0x8000, 40, True)])
    be.inbox = [b"y" * 100]
    dev.poll()
    assert drv.take_used(rx) == [(0, 0)]  # dropped, buffer returned empty
    be.inbox = [bytes([i % 256]) * 60 for i in range(PENDING_MAX + 10)]
    dev.poll()
    assert len(dev.backend.pending) == PENDING_MAX and dev.backend.stats["rx_dropped"] == 11
    assert not dev.error


def test_mac_option_and_parse_net():
    dev = make(Recorder(), mac="52:54:00:aa:bb:01")[0]
    assert bytes(dev.read(M.CONFIG + i, 1) for i in range(6)) == bytes.fromhex("525400aabb01")
    with pytest.raises(EmuError, match="MAC"):
        make(Recorder(), mac="01:00:00:00:00:00")  # multicast
    assert parse_net("none") == {"backend": "none"}
    assert parse_net("user,hostfwd=tcp::5555-:22,hostfwd=udp::53-:53") == {
        "backend": "user", "hostfwd": ["tcp::5555-:22", "udp::53-:53"]}
    assert parse_net("tap,ifname=tap7") == {"backend": "tap", "ifname": "tap7"}
    for bad in ("tap", "bridge", "user,foo=1", "tap,ifname="):
        with pytest.raises(EmuError):
            parse_net(bad)


def test_tap_errors_are_one_line():
    ram, irq = Ram(), Irq()
    with pytest.raises(EmuError, match="bad interface name"):
        make_virtio("net", {"backend": "tap", "ifname": "x" * 20}, ram.mem, irq.line)
    from emu.devices.virtio.tap import TapBackend
    with pytest.raises(EmuError, match="cannot open") as e:
        TapBackend("tap0", device="/nonexistent/tun")
    assert "\n" not in str(e.value)


# -- libslirp -----------------------------------------------------------------------------------
def _have_slirp() -> bool:
    try:
        from emu.devices.virtio.slirp import load_library
        load_library()
        return True
    except EmuError:
        return False


needs_slirp = pytest.mark.skipif(not _have_slirp(), reason="libslirp0 is not installed")

GUEST_MAC = bytes.fromhex("525400123456")
BCAST = b"\xff" * 6


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + payload


def arp_request(sender_ip: str, target_ip: str) -> bytes:
    return BCAST + GUEST_MAC + b"\x08\x06" + struct.pack(
        "!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, GUEST_MAC, socket.inet_aton(sender_ip), bytes(6),
        socket.inet_aton(target_ip))


def icmp_echo(dst_mac: bytes, src: str, dst: str, ident=0x1234, seq=1) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, ident, seq) + b"emu-ping" * 4
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return dst_mac + GUEST_MAC + b"\x08\x00" + ipv4(src, dst, 1, body)


def dhcp_discover(xid=0x3903F326) -> bytes:
    bootp = struct.pack("!BBBBIHHIIII16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000, 0, 0, 0, 0,
                        GUEST_MAC.ljust(16, b"\0"), bytes(64), bytes(128))
    options = b"\x63\x82\x53\x63" + b"\x35\x01\x01" + b"\xff"
    payload = bootp + options
    udp = struct.pack("!HHHH", 68, 67, 8 + len(payload), 0) + payload
    return BCAST + GUEST_MAC + b"\x08\x00" + ipv4("0.0.0.0", "255.255.255.255", 17, udp)


def wait_frames(poll, want, timeout=2.0):
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got += poll()
        if any(want(f) for f in got):
            return got
        time.sleep(0.002)
    return got


def is_arp_reply(f: bytes) -> bool:
    return len(f) >= 42 and f[12:14] == b"\x08\x06" and f[20:22] == b"\x00\x02"


def is_dhcp_offer(f: bytes) -> bool:
    return (len(f) > 282 and f[12:14] == b"\x08\x00" and f[23] == 17 and f[36:38] == b"\x00\x44"
            and socket.inet_ntoa(f[58:62]) == "10.0.2.15")


def is_echo_reply(f: bytes) -> bool:
    return len(f) >= 42 and f[12:14] == b"\x08\x00" and f[23] == 1 and f[34] == 0


def test_slirp_struct_layout_matches_libslirp_h():
    # Offsets printed by gcc from Debian's libslirp-dev 4.7.0 libslirp.h (x86_64 / LP64).
    from emu.devices.virtio.slirp import SlirpCb, SlirpConfig
    want = {"version": 0, "restricted": 4, "in_enabled": 8, "vnetwork": 12, "vnetmask": 16, "vhost": 20,
            "in6_enabled": 24, "vprefix_addr6": 28, "vprefix_len": 44, "vhost6": 48, "vhostname": 64,
            "tftp_server_name": 72, "tftp_path": 80, "bootfile": 88, "vdhcp_start": 96, "vnameserver": 100,
            "vnameserver6": 104, "vdnssearch": 120, "vdomainname": 128, "if_mtu": 136, "if_mru": 144,
            "disable_host_loopback": 152, "enable_emu": 153, "outbound_addr": 160, "outbound_addr6": 168,
            "disable_dns": 176, "disable_dhcp": 177}
    if struct.calcsize("P") != 8:
        pytest.skip("offsets recorded for LP64")
    assert {k: getattr(SlirpConfig, k).offset for k in want} == want
    import ctypes
    assert ctypes.sizeof(SlirpConfig) == 184
    assert SlirpCb.notify.offset == 64 and SlirpCb.timer_new_opaque.offset == 80 and ctypes.sizeof(SlirpCb) == 88


@needs_slirp
def test_slirp_backend_arp_dhcp_ping():
    from emu.devices.virtio.slirp import SlirpBackend
    be = SlirpBackend()
    try:
        be.send(dhcp_discover())
        frames = wait_frames(be.poll, is_dhcp_offer)
        assert any(is_dhcp_offer(f) for f in frames), frames
        be.send(arp_request("10.0.2.15", "10.0.2.2"))
        frames = wait_frames(be.poll, is_arp_reply)
        reply = next(f for f in frames if is_arp_reply(f))
        gw_mac = reply[22:28]
        assert socket.inet_ntoa(reply[28:32]) == "10.0.2.2"
        be.send(icmp_echo(gw_mac, "10.0.2.15", "10.0.2.2"))
        frames = wait_frames(be.poll, is_echo_reply)
        assert any(is_echo_reply(f) for f in frames), frames
    finally:
        be.close()


@needs_slirp
@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "modern"])
def test_user_network_through_the_device(legacy):
    dev, ram, irq, drv, rx, tx = make("user", legacy)
    try:
        post_rx(drv, rx, count=8)
        transmit(drv, tx, dhcp_discover())
        frames: list[bytes] = []
        end = time.monotonic() + 2
        while time.monotonic() < end and not any(is_dhcp_offer(f) for f in frames):
            dev.poll()
            frames += rx_frames(drv, rx)
            time.sleep(0.002)
        assert any(is_dhcp_offer(f) for f in frames)
        assert irq.level
    finally:
        dev.close()


@needs_slirp
def test_slirp_hostfwd_reaches_the_guest():
    from emu.devices.virtio.slirp import SlirpBackend
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    be = SlirpBackend([f"tcp:127.0.0.1:{port}-:22"])
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=2)
        # slirp accepts, then (not knowing the guest's MAC yet) ARPs for 10.0.2.15 or sends the SYN
        frames = wait_frames(be.poll, lambda f: f[12:14] in (b"\x08\x06", b"\x08\x00"))
        assert frames
        f = frames[0]
        if f[12:14] == b"\x08\x06":
            assert socket.inet_ntoa(f[38:42]) == "10.0.2.15"
        conn.close()
        with pytest.raises(EmuError, match="hostfwd"):
            SlirpBackend([f"tcp:127.0.0.1:{port}-:22", f"tcp:127.0.0.1:{port}-:23"])
        with pytest.raises(EmuError, match="bad hostfwd"):
            SlirpBackend(["tcp:5555:22"])
    finally:
        be.close()


# -- TAP ----------------------------------------------------------------------------------------
TAP_SCRIPT = textwrap.dedent("""
    import socket, struct, subprocess, sys, time
    sys.path.insert(0, sys.argv[1])
    from emu.devices.virtio.tap import TapBackend
    from tests.devices.test_virtio_net import arp_request, icmp_echo, is_arp_reply, is_echo_reply, wait_frames
    be = TapBackend("emutap0")
    subprocess.run(["ip", "addr", "add", "10.9.8.1/24", "dev", be.ifname], check=True)
    subprocess.run(["ip", "link", "set", be.ifname, "up"], check=True)
    time.sleep(0.2)
    be.poll()  # router solicitations and the like
    be.send(arp_request("10.9.8.2", "10.9.8.1"))
    frames = wait_frames(be.poll, is_arp_reply)
    reply = next(f for f in frames if is_arp_reply(f))
    be.send(icmp_echo(reply[22:28], "10.9.8.2", "10.9.8.1"))
    frames = wait_frames(be.poll, is_echo_reply)
    assert any(is_echo_reply(f) for f in frames), frames
    be.close()
    print("TAP-OK")
""")


@pytest.mark.skipif(not os.path.exists("/dev/net/tun") or shutil.which("unshare") is None
                    or shutil.which("ip") is None, reason="needs /dev/net/tun, unshare and ip")
def test_tap_backend_in_a_network_namespace():
    proc = subprocess.run(["unshare", "-n", sys.executable, "-c", TAP_SCRIPT, ROOT],
                          capture_output=True, text=True, timeout=30)
    if proc.returncode and ("Operation not permitted" in proc.stderr or "cannot open" in proc.stderr):
        pytest.skip(f"no permission for a network namespace / TAP: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0 and "TAP-OK" in proc.stdout, proc.stderr
