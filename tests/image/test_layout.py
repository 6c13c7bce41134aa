"""The on-disk layout, pinned against what rcore-fs-sfs (rev 1a3246b) itself writes."""
from __future__ import annotations

import hashlib
import os
import struct

import pytest

from loader.sfs import (BLOCK_SIZE, DIRENT_SIZE, INFO, MAGIC, MAX_INDIRECT, NDIRECT, NODEVICE,
                        DirEntry, DiskInode, FileType, SfsError, SfsImage, SuperBlock,
                        build_image, index_blocks, second_level_count)
from tests.image.util import golden_tree, pattern

GiB = 1 << 30
MiB = 1 << 20

# rcore-fs-sfs at 1a3246b, driven like `rcore-fs-fuse IMG DIR zip` (SimpleFileSystem::create
# with 1 GiB, then create/resize/write_at per entry, entries in name order) on golden_tree():
# the file it wrote is this long, and this is its SHA-256 once the uninitialised padding of
# the DiskINode structs (bytes 68-71, 92-95, 108-111, 124-127 of each inode block) is zeroed.
RCORE_FS_GOLDEN_LEN = 15_084_739
RCORE_FS_GOLDEN_SHA256 = "a39c9672dcd21aa459e3400aa9af67e719c35d7c40cbe157b7cbd3822a4398a4"


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    tree = golden_tree(d / "tree")
    img = d / "golden.img"
    build_image(tree, img, size=GiB, extra=0)
    return tree, img


def test_golden_image_is_what_rcore_fs_writes(golden):
    tree, img = golden
    assert os.path.getsize(img) == GiB  # sparse: the superblock's 262144 blocks
    with open(img, "rb") as f:
        head = f.read(RCORE_FS_GOLDEN_LEN)
        rest_of_block = f.read(-RCORE_FS_GOLDEN_LEN % BLOCK_SIZE)
    assert hashlib.sha256(head).hexdigest() == RCORE_FS_GOLDEN_SHA256
    assert rest_of_block == bytes(len(rest_of_block))


def test_golden_image_structure(golden):
    tree, img = golden
    with SfsImage(img) as im:
        sb = im.sb
        assert (sb.magic, sb.blocks, sb.freemap_blocks) == (MAGIC, GiB // BLOCK_SIZE, 8)
        assert sb.info == INFO.ljust(32, b"\0")
        used = 2 + 8 + 3673  # superblock, root inode, free map, everything zipped
        assert sb.unused_blocks == sb.blocks - used
        by_path = dict(im.walk())
        # (inode, blocks, direct[0], indirect, db_indirect) as rcore-fs-sfs laid them out
        facts = {
            "/big2060": (13, 2060, 18, 14, 15),
            "/bin/busybox": (2080, 1037, 2084, 2081, 2082),
            "/lib/ld-musl-riscv64.so.1": (3150, 12, 3152, 3151, 0),
            "/many": (3180, 13, 3181, 3594, 0),
        }
        for path, want in facts.items():
            n = im.inode(by_path[path])
            assert (by_path[path], n.blocks, n.direct[0], n.indirect, n.db_indirect) == want, path
        root = im.inode(1)
        assert root.direct[0] == 10  # the first block after the free map
        assert root.nlinks == 2 + 6  # bin, deep, etc, grüße-日本, lib, many
        rep = im.check(tree)
        assert rep.ok, rep.errors
        assert rep.compared == 212


def test_struct_layout():
    assert SuperBlock.FORMAT.size == 48 and DiskInode.FORMAT.size == 128
    assert DIRENT_SIZE == 260 and DirEntry.FORMAT.size == 260
    raw = DiskInode(0x11223344, FileType.SYMLINK, 7, 9, tuple(range(100, 112)), 0xAAAA, 0xBBBB).pack()
    assert struct.unpack_from("<IHHI", raw) == (0x11223344, 3, 7, 9)
    assert struct.unpack_from("<12I", raw, 12) == tuple(range(100, 112))
    assert struct.unpack_from("<IIxxxxQ", raw, 60) == (0xAAAA, 0xBBBB, NODEVICE)
    assert raw[80:] == bytes(48)
    sb = SuperBlock(MAGIC, 5, 4, INFO.ljust(32, b"\0"), 1).pack()
    assert sb[:12] == struct.pack("<III", MAGIC, 5, 4) and sb[12:30] == INFO and sb[44:48] == b"\1\0\0\0"
    e = DirEntry(42, b"name").pack()
    assert e == struct.pack("<I", 42) + b"name" + bytes(252)


def test_index_block_rules():
    # rcore-fs keeps an indirect block from 12 blocks on and one second-level block more than
    # needed whenever (blocks - 1036) is a multiple of 1024
    assert [index_blocks(n) for n in (0, 11, 12, 13, 1035)] == [0, 0, 1, 1, 1]
    assert [second_level_count(n) for n in (1035, 1036, 1037, 2059, 2060, 2061)] == [0, 1, 1, 1, 2, 2]
    assert index_blocks(MAX_INDIRECT) == 3 and index_blocks(MAX_INDIRECT + 1024) == 4


def test_first_file_inode_as_in_rcore_fs_tests(tmp_path):
    # rcore-fs-sfs's own test: a 32*4096*4096-byte SFS gives its first file inode 7
    src = tmp_path / "src"
    src.mkdir()
    (src / "file1").write_bytes(b"")
    build_image(src, tmp_path / "a.img", size=32 * 4096 * 4096, extra=0)
    with SfsImage(tmp_path / "a.img") as im:
        assert im.sb.freemap_blocks == 4
        assert im.children(1) == [("file1", 7)]
        assert im.inode(1).direct[0] == 6
        n = im.inode(7)
        assert (n.size, n.blocks, n.nlinks, n.type, n.device_inode_id) == (0, 0, 1, FileType.FILE, NODEVICE)


@pytest.mark.parametrize("nblocks", [11, 12, 13, 1035, 1036, 1037])
def test_file_sizes_around_index_boundaries(tmp_path, nblocks):
    src = tmp_path / "src"
    src.mkdir()
    data = pattern(nblocks * BLOCK_SIZE - 1, nblocks)
    (src / "f").write_bytes(data)
    build_image(src, tmp_path / "a.img", extra=0)
    with SfsImage(tmp_path / "a.img") as im:
        ino = im.resolve("/f")
        n = im.inode(ino)
        assert n.blocks == nblocks
        assert (n.indirect != 0) == (nblocks >= NDIRECT)
        assert (n.db_indirect != 0) == (nblocks >= MAX_INDIRECT)
        _, index = im.index_map(ino)
        assert len(index) == index_blocks(nblocks)
        assert im.read_file("/f") == data
        assert im.check(src).ok
        # superblock, root inode, free map, root dir block, file inode, index and data blocks
        assert im.sb.blocks == max(16, 5 + nblocks + index_blocks(nblocks))


def test_default_size_is_just_enough_plus_extra(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(pattern(100_000, 1))
    for extra, want_free in ((5 * MiB, 1280), (0, 0), (1, 1), (4097, 2)):
        img = tmp_path / f"e{extra}.img"
        res = build_image(src, img, extra=extra)
        with SfsImage(img) as im:
            assert im.sb.unused_blocks == want_free
            assert os.path.getsize(img) == im.sb.blocks * BLOCK_SIZE == res.file_bytes
            assert im.check(src).ok
    # --size is the space before --extra
    build_image(src, tmp_path / "s.img", size=2 * MiB, extra=MiB)
    with SfsImage(tmp_path / "s.img") as im:
        assert im.sb.blocks == 3 * MiB // BLOCK_SIZE
        assert im.check().ok


def test_tiny_tree_gets_the_minimum_16_blocks(tmp_path):
    src = tmp_path / "empty"
    src.mkdir()
    build_image(src, tmp_path / "a.img", extra=0)
    with SfsImage(tmp_path / "a.img") as im:
        assert im.sb.blocks == 16 and im.sb.unused_blocks == 16 - 4
        assert im.children(1) == []
        assert im.check(src).ok


def test_size_too_small(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(bytes(200_000))
    with pytest.raises(SfsError, match="needs at least"):
        build_image(src, tmp_path / "a.img", size=64 * 1024, extra=0)
    assert not (tmp_path / "a.img").exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary file left behind


def test_deterministic(tmp_path):
    tree = golden_tree(tmp_path / "tree")
    build_image(tree, tmp_path / "a.img")
    build_image(tree, tmp_path / "b.img")
    assert (tmp_path / "a.img").read_bytes() == (tmp_path / "b.img").read_bytes()


def test_hard_links_fifos_and_odd_names(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"same inode on the host\n")
    os.link(src / "a", src / "b")
    os.mkfifo(src / "fifo")
    res = build_image(src, tmp_path / "a.img")
    assert len(res.warnings) == 1 and "fifo" in res.warnings[0]
    with SfsImage(tmp_path / "a.img") as im:
        names = dict(im.children(1))
        assert sorted(names) == ["a", "b"]
        assert names["a"] != names["b"]  # rcore-fs-fuse copies hard links
        assert im.inode(names["a"]).nlinks == 1
        rep = im.check(src)
        assert rep.ok, rep.errors
    bad = tmp_path / "bad"
    bad.mkdir()
    with open(os.path.join(os.fsencode(bad), b"\xff\xfe"), "wb"):
        pass
    with pytest.raises(SfsError, match="file name is not UTF-8"):
        build_image(bad, tmp_path / "b.img")
    bad_link = tmp_path / "bad_link"
    bad_link.mkdir()
    os.symlink(b"\xff", os.path.join(os.fsencode(bad_link), b"l"))
    with pytest.raises(SfsError, match="symlink target is not UTF-8"):
        build_image(bad_link, tmp_path / "c.img")
    with pytest.raises(SfsError, match="would contain itself"):
        build_image(src, src / "self.img")


def test_reads_a_short_image_like_rcore_fs_fuse_leaves_it(golden, tmp_path):
    # rcore-fs-fuse declares 1 GiB but its file ends after the last byte it wrote
    tree, img = golden
    with open(img, "rb") as f:
        short = f.read(RCORE_FS_GOLDEN_LEN)
    with SfsImage(short) as im:
        rep = im.check(tree)
        assert rep.ok, rep.errors
        assert any("holds 3683 of the 262144 blocks" in w for w in rep.warnings)
        assert im.read_file("/bin/ls") == pattern(MAX_INDIRECT * BLOCK_SIZE + 100, 1)
