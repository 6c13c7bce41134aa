"""`--net user`: QEMU's user-mode network through Debian's libslirp (libslirp.so.0, ctypes).

The guest sees QEMU's usual network: 10.0.2.0/24, gateway and host alias 10.0.2.2, DNS
forwarder 10.0.2.3, DHCP handing out 10.0.2.15 first; `hostfwd=tcp::HOSTPORT-:GUESTPORT`
rules forward host ports into the guest (QEMU's syntax, several allowed).

libslirp is driven the way QEMU drives it, but from the machine's loop instead of an
event loop: guest frames go in with slirp_input; frames for the guest come out through
the send_packet callback (queued here, collected by `poll()`); between rounds `poll()`
asks slirp for its sockets (slirp_pollfds_fill), polls them without blocking and hands
the results back (slirp_pollfds_poll, which also runs TCP's timers), then fires expired
timers.  Structures follow libslirp.h of libslirp 4.7 (SlirpConfig version 1 is enough:
later versions only add fields we leave at their defaults).
"""
from __future__ import annotations

import ctypes
import re
import select
import socket
import sys
import time
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    byref,
    c_bool,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_ssize_t,
    c_uint8,
    c_uint32,
    c_void_p,
)

from emu.errors import EmuError

LIBRARY = "libslirp.so.0"
POLL_INTERVAL = 0.001  # host seconds between socket polls (a round is much shorter)

SLIRP_POLL_IN = 1 << 0
SLIRP_POLL_OUT = 1 << 1
SLIRP_POLL_PRI = 1 << 2
SLIRP_POLL_ERR = 1 << 3
SLIRP_POLL_HUP = 1 << 4

NETWORK = "10.0.2.0"
NETMASK = "255.255.255.0"
HOST = "10.0.2.2"
DHCP_START = "10.0.2.15"
NAMESERVER = "10.0.2.3"


class InAddr(Structure):
    _fields_ = [("s_addr", c_uint32)]  # network byte order, as in memory


class In6Addr(Structure):
    _fields_ = [("s6_addr32", c_uint32 * 4)]  # a union with uint32 members: 4-byte aligned


class SlirpConfig(Structure):
    _fields_ = [
        ("version", c_uint32),
        # version 1
        ("restricted", c_int),
        ("in_enabled", c_bool),
        ("vnetwork", InAddr),
        ("vnetmask", InAddr),
        ("vhost", InAddr),
        ("in6_enabled", c_bool),
        ("vprefix_addr6", In6Addr),
        ("vprefix_len", c_uint8),
        ("vhost6", In6Addr),
        ("vhostname", c_char_p),
        ("tftp_server_name", c_char_p),
        ("tftp_path", c_char_p),
        ("bootfile", c_char_p),
        ("vdhcp_start", InAddr),
        ("vnameserver", InAddr),
        ("vnameserver6", In6Addr),
        ("vdnssearch", POINTER(c_char_p)),
        ("vdomainname", c_char_p),
        ("if_mtu", c_size_t),
        ("if_mru", c_size_t),
        ("disable_host_loopback", c_bool),
        ("enable_emu", c_bool),
        # version 2
        ("outbound_addr", c_void_p),
        ("outbound_addr6", c_void_p),
        # version 3
        ("disable_dns", c_bool),
        # version 4
        ("disable_dhcp", c_bool),
    ]


SlirpWriteCb = CFUNCTYPE(c_ssize_t, c_void_p, c_size_t, c_void_p)
SlirpTimerCb = CFUNCTYPE(None, c_void_p)
SlirpAddPollCb = CFUNCTYPE(c_int, c_int, c_int, c_void_p)
SlirpGetREventsCb = CFUNCTYPE(c_int, c_int, c_void_p)
GuestErrorCb = CFUNCTYPE(None, c_char_p, c_void_p)
ClockGetNsCb = CFUNCTYPE(c_int64, c_void_p)
TimerNewCb = CFUNCTYPE(c_void_p, c_void_p, c_void_p, c_void_p)  # (SlirpTimerCb cb, cb_opaque, opaque)
TimerFreeCb = CFUNCTYPE(None, c_void_p, c_void_p)
TimerModCb = CFUNCTYPE(None, c_void_p, c_int64, c_void_p)
FdCb = CFUNCTYPE(None, c_int, c_void_p)
NotifyCb = CFUNCTYPE(None, c_void_p)


class SlirpCb(Structure):
    _fields_ = [
        ("send_packet", SlirpWriteCb),
        ("guest_error", GuestErrorCb),
        ("clock_get_ns", ClockGetNsCb),
        ("timer_new", TimerNewCb),
        ("timer_free", TimerFreeCb),
        ("timer_mod", TimerModCb),
        ("register_poll_fd", FdCb),
        ("unregister_poll_fd", FdCb),
        ("notify", NotifyCb),
        # config version 4 (not read with version 1; NULL anyway)
        ("init_completed", c_void_p),
        ("timer_new_opaque", c_void_p),
    ]


_lib = None


def load_library():
    """libslirp.so.0 with its prototypes, or an EmuError saying how to get it."""
    global _lib
    if _lib is not None:
        return _lib
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        raise EmuError(f"--net user needs libslirp ({LIBRARY}): apt-get install libslirp0") from None
    lib.slirp_new.argtypes = [POINTER(SlirpConfig), POINTER(SlirpCb), c_void_p]
    lib.slirp_new.restype = c_void_p
    lib.slirp_cleanup.argtypes = [c_void_p]
    lib.slirp_cleanup.restype = None
    lib.slirp_input.argtypes = [c_void_p, c_char_p, c_int]
    lib.slirp_input.restype = None
    lib.slirp_pollfds_fill.argtypes = [c_void_p, POINTER(c_uint32), SlirpAddPollCb, c_void_p]
    lib.slirp_pollfds_fill.restype = None
    lib.slirp_pollfds_poll.argtypes = [c_void_p, c_int, SlirpGetREventsCb, c_void_p]
    lib.slirp_pollfds_poll.restype = None
    lib.slirp_add_hostfwd.argtypes = [c_void_p, c_int, InAddr, c_int, InAddr, c_int]
    lib.slirp_add_hostfwd.restype = c_int
    lib.slirp_version_string.argtypes = []
    lib.slirp_version_string.restype = c_char_p
    _lib = lib
    return lib


def in_addr(text: str) -> InAddr:
    return InAddr(int.from_bytes(socket.inet_aton(text), sys.byteorder))


HOSTFWD_RE = re.compile(r"(tcp|udp|):([0-9.]*):(\d+)-([0-9.]*):(\d+)")


def parse_hostfwd(rule: str) -> tuple[bool, str, int, str, int]:
    """QEMU's `[tcp|udp]:[hostaddr]:hostport-[guestaddr]:guestport` -> (udp, haddr, hport, gaddr, gport)."""
    m = HOSTFWD_RE.fullmatch(rule)
    bad = EmuError(f"bad hostfwd rule {rule!r} (use e.g. tcp::5555-:22)")
    if not m:
        raise bad
    proto, haddr, hport, gaddr, gport = m.groups()
    haddr = haddr or "0.0.0.0"
    gaddr = gaddr or DHCP_START
    try:
        socket.inet_aton(haddr)
        socket.inet_aton(gaddr)
    except OSError:
        raise bad from None
    hp, gp = int(hport), int(gport)
    if hp > 65535 or not 0 < gp <= 65535:
        raise bad
    return proto == "udp", haddr, hp, gaddr, gp


_POLL_FROM_SLIRP = ((SLIRP_POLL_IN, select.POLLIN), (SLIRP_POLL_OUT, select.POLLOUT),
                    (SLIRP_POLL_PRI, select.POLLPRI))
_POLL_TO_SLIRP = ((select.POLLIN, SLIRP_POLL_IN), (select.POLLOUT, SLIRP_POLL_OUT),
                  (select.POLLPRI, SLIRP_POLL_PRI), (select.POLLERR, SLIRP_POLL_ERR),
                  (select.POLLHUP, SLIRP_POLL_HUP), (select.POLLNVAL, SLIRP_POLL_ERR))


class SlirpBackend:
    def __init__(self, hostfwd: list[str] | tuple[str, ...] = (), restricted: bool = False) -> None:
        self.lib = lib = load_library()
        self.version = lib.slirp_version_string().decode(errors="replace")
        self.rx: list[bytes] = []
        self.guest_errors: list[str] = []
        self.timers: dict[int, list] = {}  # handle -> [callback, cb_opaque, expire_ms or None]
        self._next_timer = 1
        self._fds: list[tuple[int, int]] = []
        self._revents: list[int] = []
        self._next_poll = 0.0
        self.slirp = None

        cfg = SlirpConfig()
        cfg.version = 1
        cfg.restricted = int(restricted)
        cfg.in_enabled = True
        cfg.vnetwork = in_addr(NETWORK)
        cfg.vnetmask = in_addr(NETMASK)
        cfg.vhost = in_addr(HOST)
        cfg.in6_enabled = False
        cfg.vdhcp_start = in_addr(DHCP_START)
        cfg.vnameserver = in_addr(NAMESERVER)
        cfg.if_mtu = 0  # libslirp's defaults (1500)
        cfg.if_mru = 0
        cfg.disable_host_loopback = False  # as QEMU: 10.0.2.2 reaches the host's 127.0.0.1
        self._cfg = cfg

        # The callback objects must live as long as the Slirp instance (it keeps the table).
        cb = SlirpCb()
        cb.send_packet = SlirpWriteCb(self._send_packet)
        cb.guest_error = GuestErrorCb(self._guest_error)
        cb.clock_get_ns = ClockGetNsCb(lambda opaque: time.monotonic_ns())
        cb.timer_new = TimerNewCb(self._timer_new)
        cb.timer_free = TimerFreeCb(self._timer_free)
        cb.timer_mod = TimerModCb(self._timer_mod)
        cb.register_poll_fd = FdCb(lambda fd, opaque: None)
        cb.unregister_poll_fd = FdCb(lambda fd, opaque: None)
        cb.notify = NotifyCb(lambda opaque: None)
        cb.init_completed = None
        cb.timer_new_opaque = None
        self._cb = cb
        self._add_poll = SlirpAddPollCb(self._add_poll_fd)
        self._get_revents = SlirpGetREventsCb(self._get_revents_fd)

        self.slirp = lib.slirp_new(byref(cfg), byref(cb), None)
        if not self.slirp:
            raise EmuError(f"--net user: slirp_new failed (libslirp {self.version})")
        for rule in hostfwd:
            udp, haddr, hport, gaddr, gport = parse_hostfwd(rule)
            if lib.slirp_add_hostfwd(self.slirp, int(udp), in_addr(haddr), hport, in_addr(gaddr), gport) < 0:
                self.close()
                raise EmuError(f"--net user: hostfwd={rule}: could not forward "
                               f"{'udp' if udp else 'tcp'} {haddr}:{hport} (port in use?)")

    # -- callbacks from libslirp -----------------------------------------------------------------
    def _send_packet(self, buf, length, opaque) -> int:
        self.rx.append(ctypes.string_at(buf, length))
        return length

    def _guest_error(self, msg, opaque) -> None:
        if len(self.guest_errors) < 100:
            self.guest_errors.append((msg or b"").decode(errors="replace"))

    def _timer_new(self, cb, cb_opaque, opaque) -> int:
        handle = self._next_timer
        self._next_timer += 1
        self.timers[handle] = [SlirpTimerCb(cb), cb_opaque, None]
        return handle

    def _timer_free(self, timer, opaque) -> None:
        self.timers.pop(timer, None)

    def _timer_mod(self, timer, expire_ms, opaque) -> None:
        t = self.timers.get(timer)
        if t is not None:
            t[2] = expire_ms

    def _add_poll_fd(self, fd, events, opaque) -> int:
        self._fds.append((fd, events))
        return len(self._fds) - 1

    def _get_revents_fd(self, idx, opaque) -> int:
        return self._revents[idx] if 0 <= idx < len(self._revents) else 0

    # -- backend interface ----------------------------------------------------------------------
    def send(self, frame: bytes) -> None:
        if self.slirp and 14 <= len(frame) < 1 << 31:
            self.lib.slirp_input(self.slirp, frame, len(frame))

    def poll(self) -> list[bytes]:
        now = time.monotonic()
        if self.slirp and now >= self._next_poll:
            self._next_poll = now + POLL_INTERVAL
            self._pump()
        frames, self.rx = self.rx, []
        return frames

    def wait_fds(self) -> list[int]:
        return [fd for fd, ev in self._fds if ev & SLIRP_POLL_IN]

    def close(self) -> None:
        if self.slirp:
            self.lib.slirp_cleanup(self.slirp)
            self.slirp = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- the event loop, one non-blocking turn ------------------------------------------------------
    def _pump(self) -> None:
        self._fds = []
        timeout = c_uint32(0xFFFF_FFFF)
        self.lib.slirp_pollfds_fill(self.slirp, byref(timeout), self._add_poll, None)
        error = 0
        revents: list[int] = [0] * len(self._fds)
        if self._fds:
            merged: dict[int, int] = {}
            for fd, ev in self._fds:
                merged[fd] = merged.get(fd, 0) | ev
            poller = select.poll()
            for fd, ev in merged.items():
                mask = 0
                for s, p in _POLL_FROM_SLIRP:
                    if ev & s:
                        mask |= p
                poller.register(fd, mask)
            try:
                ready = dict(poller.poll(0))
            except OSError:
                ready, error = {}, 1
            for i, (fd, ev) in enumerate(self._fds):
                got = 0
                for p, s in _POLL_TO_SLIRP:
                    if ready.get(fd, 0) & p:
                        got |= s
                revents[i] = got & (ev | SLIRP_POLL_ERR | SLIRP_POLL_HUP)
        self._revents = revents
        self.lib.slirp_pollfds_poll(self.slirp, error, self._get_revents, None)
        self._run_timers()

    def _run_timers(self) -> None:
        now_ms = time.monotonic_ns() // 1_000_000
        for t in [t for t in self.timers.values() if t[2] is not None and t[2] <= now_ms]:
            t[2] = None
            t[0](t[1])
