"""virtio-blk over virtio-mmio, legacy and modern, driven by a minimal driver."""
from __future__ import annotations

import os
import struct

import pytest

from emu.devices.virtio import make_virtio, parse_drive
from emu.devices.virtio import mmio as M
from emu.devices.virtio.blk import (
    F_FLUSH,
    F_RO,
    S_IOERR,
    S_OK,
    S_UNSUPP,
    T_FLUSH,
    T_GET_ID,
    T_IN,
    T_OUT,
)
from emu.errors import EmuError
from tests.devices.virtio_driver import RAM_BASE, Driver, Irq, Ram

SECTORS = 16
QBASE = RAM_BASE + 0x1000
HDR = RAM_BASE + 0x10000
DATA = RAM_BASE + 0x11000
STATUS = RAM_BASE + 0x20000


def sector_bytes(n: int) -> bytes:
    return bytes((n * 7 + i) & 0xFF for i in range(512))


@pytest.fixture
def image(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"".join(sector_bytes(n) for n in range(SECTORS)))
    return path


def make(image, legacy=True, readonly=False, serial="emu-disk-0"):
    ram, irq = Ram(), Irq()
    dev = make_virtio("blk", {"file": str(image), "readonly": readonly, "serial": serial}, ram.mem, irq.line, legacy)
    return dev, ram, irq, Driver(dev, ram)


def request(drv, q, rtype, sector, data_len=512, data=b"", writable_data=True, status_len=1):
    drv.ram.put(HDR, struct.pack("<IIQ", rtype, 0, sector))
    drv.ram.put(STATUS, b"\xAA")
    bufs = [(HDR, 16, False)]
    if data:
        drv.ram.put(DATA, data)
        bufs.append((DATA, len(data), False))
    elif data_len:
        bufs.append((DATA, data_len, writable_data))
    bufs.append((STATUS, status_len, True))
    head = drv.add_chain(q, bufs)
    used = drv.take_used(q)
    assert [u[0] for u in used] == [head]
    return drv.ram.get(STATUS, 1)[0], used[0][1]


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "modern"])
def test_driver_sequence_read_write_flush_id(image, legacy):
    dev, ram, irq, drv = make(image, legacy)
    assert drv.r(M.VERSION) == (1 if legacy else 2)
    assert drv.r(M.DEVICE_ID) == 2 and drv.r(M.VENDOR_ID) == M.VENDOR_QEMU
    offered = drv.offered()
    assert offered & F_FLUSH and not offered & F_RO
    assert bool(offered & M.F_VERSION_1) == (not legacy)
    drv.init()
    # capacity, as one 64-bit and as two 32-bit reads
    assert dev.read(M.CONFIG, 8) == SECTORS
    assert dev.read(M.CONFIG, 4) == SECTORS and dev.read(M.CONFIG + 4, 4) == 0
    assert dev.read(M.CONFIG + 0x14, 4) == 512  # blk_size
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    assert drv.r(M.STATUS) & M.S_DRIVER_OK

    status, used_len = request(drv, q, T_IN, 3)
    assert status == S_OK and used_len == 513
    assert ram.get(DATA, 512) == sector_bytes(3)
    assert irq.level and drv.r(M.INTERRUPT_STATUS) == M.INT_USED
    drv.w(M.INTERRUPT_ACK, M.INT_USED)
    assert not irq.level and drv.r(M.INTERRUPT_STATUS) == 0

    status, used_len = request(drv, q, T_OUT, 5, data=b"\x5A" * 1024)
    assert status == S_OK and used_len == 1
    raw = image.read_bytes()
    assert raw[5 * 512:7 * 512] == b"\x5A" * 1024 and raw[7 * 512:8 * 512] == sector_bytes(7)
    assert len(raw) == SECTORS * 512

    status, _ = request(drv, q, T_FLUSH, 0, data_len=0)
    assert status == S_OK
    status, used_len = request(drv, q, T_GET_ID, 0, data_len=20)
    assert status == S_OK and used_len == 21 and ram.get(DATA, 20) == b"emu-disk-0".ljust(20, b"\0")
    status, _ = request(drv, q, 0x1234, 0, data_len=0)
    assert status == S_UNSUPP
    assert drv.ack() == M.INT_USED
    # reset: status 0, queue gone, interrupt low
    drv.w(M.STATUS, 0)
    assert drv.r(M.STATUS) == 0 and not irq.level
    drv.w(M.QUEUE_SEL, 0)
    assert drv.r(M.QUEUE_PFN if legacy else M.QUEUE_READY) == 0


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "modern"])
def test_out_of_range_requests_are_ioerr_and_never_extend(image, legacy):
    dev, ram, irq, drv = make(image, legacy)
    drv.init()
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    before = image.read_bytes()
    assert request(drv, q, T_OUT, SECTORS, data=b"\1" * 512)[0] == S_IOERR  # just past the end
    assert request(drv, q, T_OUT, SECTORS - 1, data=b"\1" * 1024)[0] == S_IOERR  # straddles the end
    assert request(drv, q, T_OUT, (1 << 64) - 1, data=b"\1" * 512)[0] == S_IOERR
    assert request(drv, q, T_IN, SECTORS, data_len=512)[0] == S_IOERR
    assert request(drv, q, T_IN, 0, data_len=100)[0] == S_IOERR  # not whole sectors
    assert image.read_bytes() == before
    assert request(drv, q, T_OUT, SECTORS - 1, data=b"\2" * 512)[0] == S_OK  # the last sector is fine
    assert os.path.getsize(image) == SECTORS * 512
    assert not drv.r(M.STATUS) & M.S_NEEDS_RESET


def test_readonly_drive(image):
    dev, ram, irq, drv = make(image, readonly=True)
    assert drv.offered() & F_RO
    drv.init()
    q = drv.setup_queue(0, 4, QBASE)
    drv.driver_ok()
    before = image.read_bytes()
    assert request(drv, q, T_OUT, 0, data=b"\3" * 512)[0] == S_IOERR
    assert request(drv, q, T_IN, 1)[0] == S_OK and ram.get(DATA, 512) == sector_bytes(1)
    assert request(drv, q, T_FLUSH, 0, data_len=0)[0] == S_OK
    assert image.read_bytes() == before


def test_drive_path_errors(tmp_path, image):
    with pytest.raises(EmuError, match="no such file") as e:
        make(tmp_path / "missing.img")
    assert "\n" not in str(e.value)
    with pytest.raises(EmuError, match="directory"):
        make(tmp_path)
    image.chmod(0o444)
    with pytest.raises(EmuError, match="not writable") as e:
        make(image)
    assert "\n" not in str(e.value)
    make(image, readonly=True)[0].close()  # readonly=on is fine


def test_drive_locked_by_another_user(image):
    first = make(image)[0]
    with pytest.raises(EmuError, match="in use"):
        make(image)
    first.close()
    make(image)[0].close()


def test_parse_drive():
    assert parse_drive("file=a.img") == {"file": "a.img", "readonly": False, "serial": ""}
    assert parse_drive("file=/x/b.img,readonly=on,format=raw,if=virtio")["readonly"] is True
    assert parse_drive("c.img,readonly=off")["file"] == "c.img"
    for bad in ("readonly=on", "file=a,readonly=maybe", "file=a,bogus=1"):
        with pytest.raises(EmuError):
            parse_drive(bad)


def test_indirect_and_scattered_read(image):
    dev, ram, irq, drv = make(image)
    drv.init()
    q = drv.setup_queue(0, 4, QBASE)
    drv.driver_ok()
    table = RAM_BASE + 0x30000
    ram.put(HDR, struct.pack("<IIQ", T_IN, 0, 2))
    # two sectors scattered over three pieces
    pieces = [(DATA, 100, True), (DATA + 0x1000, 700, True), (DATA + 0x2000, 224, True)]
    head = drv.add_indirect(q, table, [(HDR, 16, False), *pieces, (STATUS, 1, True)])
    assert drv.take_used(q) == [(head, 1025)]
    got = b"".join(ram.get(a, n) for a, n, _ in pieces)
    assert got == sector_bytes(2) + sector_bytes(3) and ram.get(STATUS, 1) == b"\0"


def _needs_reset(drv, irq):
    st = drv.r(M.STATUS)
    return st & M.S_NEEDS_RESET and drv.r(M.INTERRUPT_STATUS) & M.INT_CONFIG and irq.level


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "modern"])
@pytest.mark.parametrize("breakage", ["loop", "next_out_of_range", "head_out_of_range", "outside_ram",
                                      "huge_length", "avail_too_far", "no_status", "nested_indirect",
                                      "indirect_bad_len"])
def test_broken_chains_need_reset_never_raise(image, legacy, breakage):
    dev, ram, irq, drv = make(image, legacy)
    drv.init()
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    ram.put(HDR, struct.pack("<IIQ", T_IN, 0, 0))
    from emu.devices.virtio.queue import (
        VRING_DESC_F_INDIRECT,
        VRING_DESC_F_NEXT,
        VRING_DESC_F_WRITE,
    )
    if breakage == "loop":
        drv.put_desc(q.desc, 0, HDR, 16, VRING_DESC_F_NEXT, 1)
        drv.put_desc(q.desc, 1, DATA, 512, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 0)
        drv.make_available(q, 0)
    elif breakage == "next_out_of_range":
        drv.put_desc(q.desc, 0, HDR, 16, VRING_DESC_F_NEXT, 8)
        drv.make_available(q, 0)
    elif breakage == "head_out_of_range":
        drv.make_available(q, 9)
    elif breakage == "outside_ram":
        drv.add_chain(q, [(HDR, 16, False), (RAM_BASE + ram.size - 256, 512, True), (STATUS, 1, True)])
    elif breakage == "huge_length":
        drv.add_chain(q, [(HDR, 16, False), (DATA, 0xFFFF_FFFF, True), (STATUS, 1, True)])
    elif breakage == "avail_too_far":
        ram.put(q.avail + 2, struct.pack("<H", 9))
        drv.w(M.QUEUE_NOTIFY, 0)
    elif breakage == "no_status":
        drv.add_chain(q, [(HDR, 16, False)])
    elif breakage == "nested_indirect":
        table = RAM_BASE + 0x30000
        drv.put_desc(table, 0, table, 16, VRING_DESC_F_INDIRECT, 0)
        drv.put_desc(q.desc, 0, table, 16, VRING_DESC_F_INDIRECT, 0)
        drv.make_available(q, 0)
    elif breakage == "indirect_bad_len":
        drv.put_desc(q.desc, 0, RAM_BASE + 0x30000, 24, VRING_DESC_F_INDIRECT, 0)
        drv.make_available(q, 0)
    assert _needs_reset(drv, irq)
    assert dev.error and not ram.outside
    # The device ignores the queue until reset; after a reset it works again.
    drv.w(M.QUEUE_NOTIFY, 0)
    drv.init()
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    assert not drv.r(M.STATUS) & M.S_NEEDS_RESET and not irq.level
    assert request(drv, q, T_IN, 4)[0] == S_OK and ram.get(DATA, 512) == sector_bytes(4)


def test_interrupt_suppression_flag_and_event_idx(image):
    dev, ram, irq, drv = make(image, legacy=False)
    feats = drv.init(want=~0)
    assert feats & M.F_RING_EVENT_IDX
    q = drv.setup_queue(0, 8, QBASE)
    drv.driver_ok()
    ram.put(q.avail + 4 + 2 * q.num, struct.pack("<H", 5))  # used_event: interrupt after entry 5
    for i in range(5):
        request(drv, q, T_IN, i)
        assert not irq.level, i
    # avail_event (after the used ring) tells the driver where the device is
    assert struct.unpack("<H", ram.get(q.used + 4 + 8 * q.num, 2))[0] == 5
    request(drv, q, T_IN, 5)
    assert irq.level
    # without event idx: VRING_AVAIL_F_NO_INTERRUPT suppresses
    dev.close()
    dev2, ram2, irq2, drv2 = make(image, legacy=True)
    drv2.init(want=~M.F_RING_EVENT_IDX)
    q2 = drv2.setup_queue(0, 8, QBASE)
    drv2.driver_ok()
    ram2.put(q2.avail, b"\x01\x00")
    request(drv2, q2, T_IN, 0)
    assert not irq2.level
    ram2.put(q2.avail, b"\x00\x00")
    request(drv2, q2, T_IN, 0)
    assert irq2.level


def test_modern_feature_negotiation():
    from emu.devices.virtio.mmio import VirtioMmio
    from emu.devices.virtio.net import NullBackend, VirtioNet

    ram, irq = Ram(), Irq()
    dev = VirtioMmio(VirtioNet(NullBackend()), ram.mem, irq.line, legacy=False)
    drv = Driver(dev, ram)
    base = M.S_ACKNOWLEDGE | M.S_DRIVER
    for feats, ok in ((0, False), (M.F_VERSION_1 | 1 << 40, False), (M.F_VERSION_1 | 1 << 5, True)):
        drv.w(M.STATUS, 0)
        drv.w(M.STATUS, base)
        for sel in (0, 1):
            drv.w(M.DRIVER_FEATURES_SEL, sel)
            drv.w(M.DRIVER_FEATURES, feats >> (32 * sel) & 0xFFFF_FFFF)
        drv.w(M.STATUS, base | M.S_FEATURES_OK)
        assert bool(drv.r(M.STATUS) & M.S_FEATURES_OK) == ok
    # after FEATURES_OK the features are fixed
    drv.w(M.DRIVER_FEATURES_SEL, 0)
    drv.w(M.DRIVER_FEATURES, 0)
    assert dev.features == M.F_VERSION_1 | 1 << 5
    assert drv.r(M.CONFIG_GENERATION) == 0
    dev.config_changed()
    assert drv.r(M.CONFIG_GENERATION) == 1
    assert not irq.level  # no DRIVER_OK yet: no config interrupt
    drv.driver_ok()
    dev.config_changed()
    assert irq.level and drv.ack() == M.INT_CONFIG and not irq.level


def test_register_access_rules(image):
    dev, ram, irq, drv = make(image)
    assert dev.read(M.MAGIC_VALUE, 2) == 0  # registers are 32-bit only
    assert dev.read(M.CONFIG, 1) == SECTORS  # config space: any width
    assert dev.read(M.CONFIG + 0x1000, 4) == 0
    drv.w(M.QUEUE_SEL, 5)
    assert drv.r(M.QUEUE_NUM_MAX) == 0  # no such queue
    drv.w(M.QUEUE_PFN, 0x80010)  # ignored
    drv.w(M.QUEUE_NOTIFY, 7)  # ignored
    drv.w(M.QUEUE_SEL, 0)
    assert drv.r(M.QUEUE_NUM_MAX) == 256


def test_legacy_layout_follows_page_size_and_queue_align(image):
    dev, ram, irq, drv = make(image)
    drv.init()
    drv.w(M.GUEST_PAGE_SIZE, 0x1000)
    drv.w(M.QUEUE_SEL, 0)
    drv.w(M.QUEUE_NUM, 4)
    drv.w(M.QUEUE_ALIGN, 64)
    drv.w(M.QUEUE_PFN, QBASE >> 12)
    q = dev.queues[0]
    assert drv.r(M.QUEUE_PFN) == QBASE >> 12
    assert (q.desc, q.avail) == (QBASE, QBASE + 64)
    assert q.used == (QBASE + 64 + 6 + 8 + 63) & ~63  # avail ring + used_event, aligned to 64
    drv.w(M.QUEUE_PFN, 0)  # legacy: PFN 0 takes the queue away
    assert not q.ready


def test_factory_errors_and_machine_hooks(image):
    ram, irq = Ram(), Irq()
    with pytest.raises(EmuError, match="unknown virtio device kind"):
        make_virtio("gpu", {}, ram.mem, irq.line)
    with pytest.raises(EmuError, match="unknown network backend"):
        make_virtio("net", {"backend": "vde"}, ram.mem, irq.line)
    dev = make_virtio("blk", {"file": str(image)}, ram.mem, irq.line)
    dev.poll()  # nothing to do for a disk
    assert dev.wait_fds() == []
    dev.close()
    dev.close()  # twice is harmless
