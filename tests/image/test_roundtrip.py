"""Build -> check DIR -> read back -> extract round trips on generated trees (hypothesis)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from loader.sfs import BLOCK_SIZE, MAX_INDIRECT, MAX_NAME, NDIRECT, FileType, SfsImage, build_image
from tests.image.util import pattern, snapshot

# Sizes around every boundary of the inode's block map; one past the first double-indirect
# block (4 MiB) is drawn now and then, the 2-second-level case is in test_layout.py.
SIZES = [0, 0, 1, 17, 260, 4095, 4096, 4097, 8192, 3 * 4096 + 5,
         NDIRECT * BLOCK_SIZE - 1, NDIRECT * BLOCK_SIZE, NDIRECT * BLOCK_SIZE + 1, 100_000,
         MAX_INDIRECT * BLOCK_SIZE + 1]


def _ok_name(s: str) -> bool:
    return s not in (".", "..") and len(s.encode()) <= MAX_NAME


names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"),
            min_size=1, max_size=12),
    st.integers(200, MAX_NAME).map(lambda n: "n" * n),  # long names, up to the 255-byte limit
    st.integers(1, 85).map(lambda n: "€" * n),  # multi-byte UTF-8 up to 255 bytes
).filter(_ok_name)

files = st.tuples(st.just("file"), st.sampled_from(SIZES), st.integers(0, 255))
links = st.tuples(st.just("link"),
                  st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
                          min_size=1, max_size=300))
trees = st.recursive(
    st.dictionaries(names, st.one_of(files, links), max_size=6),
    lambda children: st.dictionaries(names, st.one_of(files, links, children), max_size=6),
    max_leaves=24,
)


def materialise(root: Path, tree: dict) -> None:
    root.mkdir(exist_ok=True)
    for name, node in tree.items():
        p = root / name
        if isinstance(node, dict):
            materialise(p, node)
        elif node[0] == "file":
            p.write_bytes(pattern(node[1], node[2]))
        else:
            os.symlink(node[1], p)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, extra=st.sampled_from([0, 1, BLOCK_SIZE, 5 << 20]))
def test_round_trip(tree, extra):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src"
        materialise(src, tree)
        img = tmp / "root.img"
        res = build_image(src, img, extra=extra)
        assert not res.warnings
        want = snapshot(src)
        with SfsImage(img) as im:
            rep = im.check(src)
            assert rep.ok, rep.errors
            assert rep.warnings == []
            assert rep.compared == sum(1 for v in want.values() if v[0] != "dir")
            assert im.sb.unused_blocks == -(-extra // BLOCK_SIZE) or im.sb.blocks == 16
            seen = {}
            for path, ino in im.walk():
                t = im.inode(ino).type
                blocks = im.inode(ino).blocks
                event("double-indirect" if blocks >= MAX_INDIRECT else
                      "indirect" if blocks >= NDIRECT else "direct only")
                if t == FileType.DIR:
                    seen[path] = ("dir",)
                elif t == FileType.FILE:
                    seen[path] = ("file", im.read_file(path))
                else:
                    seen[path] = ("link", im.readlink_inode(ino))
            assert seen == want
            im.extract(tmp / "out")
        assert snapshot(tmp / "out") == want
        # and again from the extracted copy: the same image
        build_image(tmp / "out", tmp / "again.img", extra=extra)
        assert (tmp / "again.img").read_bytes() == img.read_bytes()


@settings(max_examples=50, deadline=None)
@given(tree=trees)
def test_paths_resolve_like_the_host(tree):
    """ls/cat through symlinks inside the image agree with the host's view of the same tree."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / "src-7f3a9c"  # a name no generated symlink target reaches by accident
        materialise(src, tree)
        build_image(src, tmp / "a.img", extra=0)
        inside = str(src.resolve()) + os.sep
        with SfsImage(tmp / "a.img") as im:
            for rel, kind in snapshot(src).items():
                host = src / rel.lstrip("/")
                if kind[0] == "link" and kind[1].startswith("/"):
                    continue  # absolute targets mean different things in the image and on the host
                try:
                    if not os.path.realpath(host).startswith(inside) or not host.exists():
                        continue  # leaves the tree, dangles or loops on the host
                except OSError:
                    continue  # the host cannot follow it (a target component over NAME_MAX bytes)
                if host.is_dir():
                    assert sorted(e.name for e in im.listdir(rel)) == sorted(os.listdir(host))
                else:
                    assert im.read_file(rel) == host.read_bytes()
