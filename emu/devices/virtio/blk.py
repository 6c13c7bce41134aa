"""virtio-blk (virtio 1.x section 5.2) backed by a host file (a raw disk image).

Requests: IN (read), OUT (write), FLUSH and GET_ID; anything else answers UNSUPP.  A
request is sector-bounded: its data must be whole 512-byte sectors inside the image, or
the guest gets VIRTIO_BLK_S_IOERR and nothing is read or written (the image is never
extended).  A request without its 16-byte header or its status byte is a driver bug:
the device enters NEEDS_RESET (as QEMU's "virtio-blk missing headers").
"""
from __future__ import annotations

import fcntl
import os
import stat
import struct

from emu.devices.virtio.queue import Chain, VirtqError, Virtqueue
from emu.errors import EmuError

DEVICE_ID_BLK = 2
SECTOR = 512

# Feature bits (5.2.3)
F_SEG_MAX = 1 << 2
F_RO = 1 << 5
F_BLK_SIZE = 1 << 6
F_FLUSH = 1 << 9

# Request types and status (5.2.6)
T_IN = 0
T_OUT = 1
T_FLUSH = 4
T_GET_ID = 8
S_OK = 0
S_IOERR = 1
S_UNSUPP = 2

ID_BYTES = 20
HEADER = 16
SEG_MAX = 254  # as QEMU (queue size - 2)


class VirtioBlk:
    device_id = DEVICE_ID_BLK
    num_queues = 1

    def __init__(self, path: str, readonly: bool = False, serial: str = "") -> None:
        self.path = path
        self.readonly = readonly
        self.fd = _open_image(path, readonly)
        size = os.fstat(self.fd).st_size
        self.capacity = size // SECTOR  # sectors; a partial last sector is not exposed
        self.serial = serial.encode()[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self.features = F_SEG_MAX | F_BLK_SIZE | F_FLUSH | (F_RO if readonly else 0)
        self.stats = {"read": 0, "write": 0, "flush": 0, "get_id": 0, "ioerr": 0, "unsupp": 0}
        self._config = self._make_config()

    def _make_config(self) -> bytes:
        # struct virtio_blk_config: capacity, size_max, seg_max, geometry (c, h, s),
        # blk_size, topology (exp, align, min_io, opt_io), writeback, unused, num_queues.
        return struct.pack("<QIIHBBIBBHIBBH", self.capacity, 0, SEG_MAX, 0, 0, 0, SECTOR,
                           0, 0, 0, 0, 0, 0, 1)

    # -- backend interface ---------------------------------------------------------------------
    def config_bytes(self) -> bytes:
        return self._config

    def config_write(self, offset: int, data: bytes) -> None:
        pass  # writeback (VIRTIO_BLK_F_CONFIG_WCE) is not offered: read-only config

    def reset(self) -> None:
        pass

    def process(self, transport, q: Virtqueue) -> None:
        mem = transport.mem
        try:
            while (chain := q.pop(mem)) is not None:
                written = self._request(mem, chain)
                q.push(mem, chain.head, written)
        finally:
            transport.used(q)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # -- requests ------------------------------------------------------------------------------
    def _request(self, mem, chain: Chain) -> int:
        """Carry out one request; returns the bytes written into the chain (data + status)."""
        if chain.read_len < HEADER or chain.write_len < 1:
            raise VirtqError("virtio-blk: request without header or status byte")
        rtype, _, sector = struct.unpack("<IIQ", chain.read(mem, 0, HEADER))
        status_at = chain.write_len - 1
        written = 1
        if rtype == T_IN:
            status = self._read(mem, chain, sector, status_at)
            if status == S_OK:
                written += status_at
        elif rtype == T_OUT:
            status = self._write(mem, chain, sector, chain.read_len - HEADER)
        elif rtype == T_FLUSH:
            status = self._flush()
        elif rtype == T_GET_ID:
            n = min(ID_BYTES, status_at)
            chain.write(mem, 0, self.serial[:n])
            written += n
            status = S_OK
            self.stats["get_id"] += 1
        else:
            status = S_UNSUPP
            self.stats["unsupp"] += 1
        if status == S_IOERR:
            self.stats["ioerr"] += 1
        chain.write(mem, status_at, bytes([status]))
        return written

    def _in_bounds(self, sector: int, length: int) -> bool:
        return length % SECTOR == 0 and sector <= self.capacity and length // SECTOR <= self.capacity - sector

    def _read(self, mem, chain: Chain, sector: int, length: int) -> int:
        if not self._in_bounds(sector, length):
            return S_IOERR
        pos = sector * SECTOR
        try:
            for addr, n in chain.segments(chain.writable, 0, length):
                data = os.pread(self.fd, n, pos)
                mem.write(addr, data.ljust(n, b"\0"))  # the file shrank under us: zeros
                pos += n
        except OSError:
            return S_IOERR
        self.stats["read"] += 1
        return S_OK

    def _write(self, mem, chain: Chain, sector: int, length: int) -> int:
        if self.readonly or not self._in_bounds(sector, length):
            return S_IOERR
        pos = sector * SECTOR
        try:
            for addr, n in chain.segments(chain.readable, HEADER, length):
                data = mem.read(addr, n)
                while data:
                    done = os.pwrite(self.fd, data, pos)
                    pos += done
                    data = data[done:]
        except OSError:
            return S_IOERR
        self.stats["write"] += 1
        return S_OK

    def _flush(self) -> int:
        self.stats["flush"] += 1
        if self.readonly:
            return S_OK
        try:
            os.fsync(self.fd)
        except OSError:
            return S_IOERR
        return S_OK


def _open_image(path: str, readonly: bool) -> int:
    """Open the image, or raise EmuError with one line saying why not."""
    where = f"--drive file={path}"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise EmuError(f"{where}: no such file") from None
    except OSError as exc:
        raise EmuError(f"{where}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise EmuError(f"{where}: is a directory")
    if not readonly and (not os.access(path, os.W_OK) or not st.st_mode & 0o222):
        # root passes access(W_OK) on any file: a file nobody may write counts as read-only
        raise EmuError(f"{where}: not writable (use readonly=on)")
    try:
        fd = os.open(path, (os.O_RDONLY if readonly else os.O_RDWR) | os.O_CLOEXEC)
    except OSError as exc:
        hint = " (use readonly=on)" if not readonly and exc.errno in (1, 13, 30) else ""
        raise EmuError(f"{where}: {exc.strerror}{hint}") from None
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if readonly else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise EmuError(f"{where}: in use by another process (locked)") from None
    return fd
