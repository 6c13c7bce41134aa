"""`--net tap,ifname=NAME`: a Linux TAP device (/dev/net/tun, IFF_TAP | IFF_NO_PI).

The fd is non-blocking: `poll()` reads whatever frames are queued and returns at once.
Creating or attaching to a TAP device needs CAP_NET_ADMIN (or a persistent device owned by
the user); failures are one-line EmuErrors.
"""
from __future__ import annotations

import errno
import fcntl
import os
import struct

from emu.errors import EmuError

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFNAMSIZ = 16
IFREQ_SIZE = 40
POLL_BATCH = 64  # frames read per poll
FRAME_MAX = 65536


class TapBackend:
    def __init__(self, ifname: str, device: str = "/dev/net/tun") -> None:
        where = f"--net tap,ifname={ifname}"
        raw = ifname.encode()
        if not raw or len(raw) >= IFNAMSIZ or b"/" in raw or b"\0" in raw or raw.strip() != raw:
            raise EmuError(f"{where}: bad interface name (1-{IFNAMSIZ - 1} characters)")
        try:
            fd = os.open(device, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            raise EmuError(f"{where}: cannot open {device}: {exc.strerror}") from None
        ifr = struct.pack(f"{IFNAMSIZ}sH", raw, IFF_TAP | IFF_NO_PI).ljust(IFREQ_SIZE, b"\0")
        try:
            out = fcntl.ioctl(fd, TUNSETIFF, ifr)
        except OSError as exc:
            os.close(fd)
            hint = " (needs CAP_NET_ADMIN, or a tap device made for this user)" if exc.errno == errno.EPERM else ""
            raise EmuError(f"{where}: TUNSETIFF failed: {exc.strerror}{hint}") from None
        self.fd = fd
        self.ifname = out[:IFNAMSIZ].split(b"\0", 1)[0].decode()
        self.stats = {"tx": 0, "rx": 0, "tx_errors": 0}

    def send(self, frame: bytes) -> None:
        if self.fd < 0:
            return
        try:
            os.write(self.fd, frame)
            self.stats["tx"] += 1
        except OSError:  # EAGAIN (queue full), EIO (link down): the frame is lost, as on a wire
            self.stats["tx_errors"] += 1

    def poll(self) -> list[bytes]:
        frames: list[bytes] = []
        if self.fd < 0:
            return frames
        for _ in range(POLL_BATCH):
            try:
                frame = os.read(self.fd, FRAME_MAX)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if not frame:
                break
            frames.append(frame)
        self.stats["rx"] += len(frames)
        return frames

    def wait_fds(self) -> list[int]:
        return [self.fd] if self.fd >= 0 else []

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
