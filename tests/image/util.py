"""Helpers of the SFS image tests: source trees, tree snapshots, the `emu image` command."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from loader.sfs import BLOCK_SIZE, MAX_INDIRECT, NDIRECT


def pattern(n: int, seed: int) -> bytes:
    """`n` deterministic bytes; a 4099-byte period so that no two blocks of a file are equal."""
    period = bytes((i * 131 + seed * 17 + (i >> 8)) & 0xFF for i in range(4099))
    reps = n // len(period) + 1
    return (period * reps)[:n]


# Host-independent tree whose rcore-fs-sfs image is pinned in test_layout.py.
GOLDEN_SIZES = {
    "bin/busybox": MAX_INDIRECT * BLOCK_SIZE + 100,  # first double-indirect block
    "lib/ld-musl-riscv64.so.1": NDIRECT * BLOCK_SIZE,  # exactly 12 blocks: indirect block anyway
    "lib/libc.so": (NDIRECT + 1) * BLOCK_SIZE + 1,
    "etc/empty": 0,
    "etc/motd": 15,
    "big2060": (MAX_INDIRECT + 1024) * BLOCK_SIZE,  # 2 second-level blocks, the 2nd unused
}


def golden_tree(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for i, (rel, size) in enumerate(sorted(GOLDEN_SIZES.items())):
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pattern(size, i))
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "bin" / "ls").symlink_to("/bin/busybox")
    (root / "etc" / "dangling").symlink_to("../nowhere")
    many = root / "many"
    many.mkdir()
    for i in range(200):  # 202 entries of 260 bytes: 13 blocks, so the directory has an indirect block
        (many / f"entry-{i:03d}-{'x' * (i % 50)}").write_bytes(pattern(i * 37, i))
    (root / ("L" * 255)).write_bytes(b"longest name\n")
    (root / "grüße-日本").mkdir()
    (root / "grüße-日本" / "€").write_bytes(b"euro\n")
    (root / "deep" / "a" / "b" / "c" / "d").mkdir(parents=True)
    (root / "deep" / "a" / "b" / "c" / "d" / "leaf").write_bytes(b"leaf\n")
    return root


def snapshot(root: Path) -> dict[str, tuple]:
    """path -> ("dir",) | ("file", bytes) | ("link", target) for everything below root."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p))
            elif p.is_dir():
                out[rel] = ("dir",)
            elif p.is_file():
                out[rel] = ("file", p.read_bytes())
    return out


ROOT = Path(__file__).resolve().parents[2]


def emu_image(*args: str) -> subprocess.CompletedProcess:
    """`emu image ARGS` in a fresh interpreter, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "tests.image._emu", "image", *args], cwd=ROOT,
                          capture_output=True, timeout=120)


def assert_one_line_error(res: subprocess.CompletedProcess, needle: str) -> None:
    err = res.stderr.decode()
    assert res.returncode == 2, (res.returncode, err)
    assert "Traceback" not in err and "Traceback" not in res.stdout.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("emu: error: "), err
    assert needle in err, err
