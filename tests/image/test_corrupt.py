"""Corrupt and truncated images: a clear SfsError in the library, one line and exit 2 on the
command line, never a traceback."""
from __future__ import annotations

import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader.sfs import (BLKN_FREEMAP, BLOCK_SIZE, DIRENT_SIZE, MAX_INDIRECT, FileType,
                        SfsCorruptError, SfsError, SfsImage, build_image)
from tests.image.util import assert_one_line_error, emu_image, pattern

def make_tree(root: Path) -> Path:
    (root / "d" / "e").mkdir(parents=True)
    (root / "small").write_bytes(b"hello\n")
    (root / "d" / "thirteen").write_bytes(pattern(13 * BLOCK_SIZE + 7, 1))
    (root / "d" / "e" / "big").write_bytes(pattern((MAX_INDIRECT + 1) * BLOCK_SIZE, 2))
    (root / "d" / "e" / "empty").write_bytes(b"")
    (root / "link").symlink_to("d/e/big")
    (root / "abs").symlink_to("/small")
    (root / "loop").symlink_to("loop")
    return root


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> tuple[Path, Path, bytes]:
    d = tmp_path_factory.mktemp("clean")
    tree = make_tree(d / "tree")
    img = d / "clean.img"
    build_image(tree, img, extra=2 * BLOCK_SIZE)
    return tree, img, img.read_bytes()


def metadata_regions(data: bytes) -> list[tuple[int, int]]:
    """Byte ranges worth corrupting: superblock, free map, inodes, index blocks, directories."""
    regions = [(0, 48), (BLKN_FREEMAP * BLOCK_SIZE, BLKN_FREEMAP * BLOCK_SIZE + 64)]
    with SfsImage(data) as im:
        items = [("/", 1)] + list(im.walk())
        for _, ino in items:
            regions.append((ino * BLOCK_SIZE, ino * BLOCK_SIZE + 72))
            blocks, index = im.index_map(ino)
            for b in index:
                regions.append((b * BLOCK_SIZE, b * BLOCK_SIZE + 16))
            if im.inode(ino).type == FileType.DIR:
                for b in blocks:
                    regions.append((b * BLOCK_SIZE, b * BLOCK_SIZE + 3 * DIRENT_SIZE))
    return regions


def exercise(data: bytes, tmp: Path | None = None) -> None:
    """Everything a user can do with an image; only SfsError may come out."""
    try:
        with SfsImage(data) as im:
            im.check()
            for path, ino in im.walk():
                t = im.inode(ino).type
                if t == FileType.FILE:
                    im.read_file(path)
                elif t == FileType.DIR:
                    im.listdir(path)
                elif t == FileType.SYMLINK:
                    im.readlink_inode(ino)
                    try:
                        im.resolve(path)
                    except SfsError:
                        pass
            if tmp is not None:
                im.extract(tmp / "out")
    except SfsError:
        pass


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_images_raise_only_sfs_errors(clean, data):
    _, _, raw = clean
    regions = metadata_regions(raw)
    img = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        lo, hi = data.draw(st.sampled_from(regions))
        at = data.draw(st.integers(lo, hi - 1))
        img[at] = data.draw(st.one_of(st.integers(0, 255), st.sampled_from([0, 1, 2, 0xFF, 0x80])))
    if data.draw(st.booleans()):
        img = img[:data.draw(st.integers(0, len(img)))]
    with tempfile.TemporaryDirectory() as tmp:
        exercise(bytes(img), Path(tmp) if data.draw(st.booleans()) else None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**9))
def test_truncated_anywhere(clean, cut):
    _, _, raw = clean
    used_end = raw.rstrip(b"\0")
    exercise(raw[:cut % (len(used_end) + 1)])


def test_clean_image_is_clean(clean):
    tree, img, raw = clean
    with SfsImage(raw) as im:
        rep = im.check(tree)
        assert rep.ok and rep.warnings == [], (rep.errors, rep.warnings)
        assert im.read_file("/link") == (tree / "d" / "e" / "big").read_bytes()
        assert im.read_file("/abs") == b"hello\n"
        with pytest.raises(SfsError, match="too many levels of symbolic links"):
            im.read_file("/loop")


def _patched(raw: bytes, at: int, value: bytes) -> bytes:
    b = bytearray(raw)
    b[at:at + len(value)] = value
    return bytes(b)


def _inode_of(raw: bytes, path: str) -> int:
    with SfsImage(raw) as im:
        return im.resolve(path, follow=False)


def test_library_errors_are_specific(clean):
    _, _, raw = clean
    with pytest.raises(SfsCorruptError, match="not an SFS image"):
        SfsImage(_patched(raw, 0, b"\0\0\0\0"))
    with pytest.raises(SfsCorruptError, match="not an SFS image"):
        SfsImage(b"")
    small = _inode_of(raw, "/small")
    bad_type = _patched(raw, small * BLOCK_SIZE + 4, struct.pack("<H", 9))
    with SfsImage(bad_type) as im:
        with pytest.raises(SfsCorruptError, match="bad type 9"):
            im.read_file("/small")
        assert not im.check().ok
    big = _inode_of(raw, "/d/e/big")
    out_of_range = _patched(raw, big * BLOCK_SIZE + 64, struct.pack("<I", 0xFFFFFF))
    with SfsImage(out_of_range) as im, pytest.raises(SfsCorruptError, match="outside the data area"):
        im.read_file("/d/e/big")
    # a name that would escape the extraction directory
    with SfsImage(raw) as im:
        d_block = im.index_map(_inode_of(raw, "/d"))[0][0]
    evil = _patched(raw, d_block * BLOCK_SIZE + 2 * DIRENT_SIZE + 4, b"../../x\0")
    with SfsImage(evil) as im, pytest.raises(SfsCorruptError, match="bad entry name"):
        im.extract(Path(tempfile.mkdtemp()) / "out")


def test_check_reports_inconsistencies(clean):
    _, _, raw = clean
    with SfsImage(raw) as im:
        small = im.resolve("/small")
        fm_free_first = im.sb.blocks - im.sb.unused_blocks
    # nlinks of a file
    with SfsImage(_patched(raw, small * BLOCK_SIZE + 6, struct.pack("<H", 3))) as im:
        rep = im.check()
        assert rep.errors == ["/small: nlinks is 3, the tree gives 1"]
    # a used block marked free in the map (and the superblock count no longer matching)
    fm = bytearray(raw[BLKN_FREEMAP * BLOCK_SIZE:(BLKN_FREEMAP + 1) * BLOCK_SIZE])
    fm[small // 8] |= 1 << (small % 8)
    with SfsImage(_patched(raw, BLKN_FREEMAP * BLOCK_SIZE, bytes(fm))) as im:
        rep = im.check()
        assert any("is marked free" in e for e in rep.errors)
        assert any("counts" in e and "unused blocks" in e for e in rep.errors)
    # a free block marked used (leak)
    fm = bytearray(raw[BLKN_FREEMAP * BLOCK_SIZE:(BLKN_FREEMAP + 1) * BLOCK_SIZE])
    fm[fm_free_first // 8] &= ~(1 << (fm_free_first % 8))
    with SfsImage(_patched(raw, BLKN_FREEMAP * BLOCK_SIZE, bytes(fm))) as im:
        assert any("marked used but nothing uses it" in e for e in im.check().errors)
    # ".." of a subdirectory pointing elsewhere
    with SfsImage(raw) as im:
        e_ino = im.resolve("/d/e")
        e_block = im.index_map(e_ino)[0][0]
    with SfsImage(_patched(raw, e_block * BLOCK_SIZE + DIRENT_SIZE, struct.pack("<I", 1))) as im:
        assert any('".." names inode 1' in e for e in im.check().errors)


# --- the command line ------------------------------------------------------------------------


def test_cli_truncated_image(clean, tmp_path):
    tree, _, raw = clean
    with SfsImage(raw) as im:
        big_data = im.index_map(im.resolve("/d/e/big"))[0]
    bad = tmp_path / "trunc.img"
    bad.write_bytes(raw[:big_data[500] * BLOCK_SIZE])  # cut through the middle of /d/e/big
    for args in (["check", str(bad)], ["check", str(bad), str(tree)], ["cat", str(bad), "/d/e/big"],
                 ["extract", str(bad), str(tmp_path / "out")]):
        assert_one_line_error(emu_image(*args), "truncated")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    # cutting only free blocks off is what rcore-fs-fuse does: readable, with a warning
    with SfsImage(raw) as im:
        used = im.sb.blocks - im.sb.unused_blocks
    bad.write_bytes(raw[:used * BLOCK_SIZE])
    res = emu_image("check", str(bad), str(tree))
    assert res.returncode == 0, res.stderr
    assert b"warning: the image file holds" in res.stdout and b": ok: " in res.stdout
    bad.write_bytes(raw[:BLOCK_SIZE + 100])  # not even the free map
    assert_one_line_error(emu_image("ls", str(bad)), "truncated")


def test_cli_corrupt_superblock(clean, tmp_path):
    _, _, raw = clean
    bad = tmp_path / "sb.img"
    bad.write_bytes(_patched(raw, 0, b"\x2b\xbe\x8d\x2e"))
    assert_one_line_error(emu_image("ls", str(bad)), "not an SFS image")
    bad.write_bytes(_patched(raw, 4, struct.pack("<I", 3)))  # blocks
    assert_one_line_error(emu_image("check", str(bad)), "corrupt superblock")
    bad.write_bytes(_patched(raw, 44, struct.pack("<I", 0)))  # freemap_blocks
    assert_one_line_error(emu_image("check", str(bad)), "free-map blocks")


def test_cli_corrupt_inode(clean, tmp_path):
    _, _, raw = clean
    thirteen = _inode_of(raw, "/d/thirteen")
    bad = tmp_path / "ino.img"
    bad.write_bytes(_patched(raw, thirteen * BLOCK_SIZE + 60, b"\0\0\0\0"))  # drop the indirect block
    res = emu_image("check", str(bad))
    assert_one_line_error(res, "no indirect block")
    assert b"problem: /d/thirteen:" in res.stdout
    assert_one_line_error(emu_image("cat", str(bad), "/d/thirteen"), "no indirect block")
    bad.write_bytes(_patched(raw, 1 * BLOCK_SIZE, struct.pack("<I", 7)))  # root dir size
    assert_one_line_error(emu_image("ls", str(bad)), "not a multiple of 260")
    assert_one_line_error(emu_image("check", str(bad)), "not a multiple of 260")


def test_cli_not_an_image(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(bytes(range(256)) * 64)
    assert_one_line_error(emu_image("ls", str(junk)), "not an SFS image")
    (tmp_path / "empty").write_bytes(b"")
    assert_one_line_error(emu_image("check", str(tmp_path / "empty")), "not an SFS image")
    assert_one_line_error(emu_image("ls", str(tmp_path)), "cannot read")
    assert_one_line_error(emu_image("cat", str(tmp_path / "missing.img"), "/x"), "No such file")
