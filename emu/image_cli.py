"""`emu image`: make and inspect rcore-fs SimpleFileSystem (SFS) images, zCore's rootfs format.

Bad input and broken images are one line `emu: error: ...` and exit code 2 (through
`emu.cli.entry`), never a traceback.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import click

from emu.errors import EmuError
from loader.sfs import (BLOCK_SIZE, DEFAULT_EXTRA, BuildResult, Entry, FileType, SfsImage,
                        build_image)

MAX_PROBLEMS_SHOWN = 50


def parse_bytes(text: str, what: str) -> int:
    """A byte count: plain bytes, or K, M, G, T (powers of 1024, optional iB/B), like qemu-img."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT])?(?:i?[bB])?\s*", text)
    if not m:
        raise EmuError(f"{what} {text!r}: not a size (use e.g. 64M or 1G)")
    unit = {None: 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[
        m.group(2).upper() if m.group(2) else None]
    return int(float(m.group(1)) * unit) if "." in m.group(1) else int(m.group(1)) * unit


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _warn(msg: str) -> None:
    click.echo(f"emu: warning: {msg}", err=True)


def _open(img: str) -> SfsImage:
    return SfsImage(img)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def image() -> None:
    """Make and inspect SFS images (the rcore-fs SimpleFileSystem zCore mounts as its rootfs).

    SFS keeps files, directories and symlinks; it has no modes, owners or times (zCore shows
    every file as rwxrwxrwx, owner 0).
    """


@image.command()
@click.argument("src", metavar="DIR")
@click.option("-o", "--output", "output", required=True, metavar="IMG", help="Image file to write.")
@click.option("--size", default=None, metavar="SIZE",
              help="File-system size before --extra (default: just enough for DIR).")
@click.option("--extra", default=f"{DEFAULT_EXTRA >> 20}M", show_default=True, metavar="SIZE",
              help="Free space added on top (zCore's xtask grows its image by 5M after zipping).")
def build(src: str, output: str, size: str | None, extra: str) -> None:
    """Write an SFS image of DIR, as `rcore-fs-fuse IMG DIR zip` and growing it would.

    Entries are stored in name order; hard links become separate files; sockets, FIFOs and
    device nodes are skipped with a warning.  The superblock declares exactly the blocks the
    image file holds.
    """
    size_b = parse_bytes(size, "--size") if size is not None else None
    extra_b = parse_bytes(extra, "--extra")
    res: BuildResult = build_image(src, output, size=size_b, extra=extra_b)
    for w in res.warnings:
        _warn(w)
    click.echo(f"{output}: {res.blocks} blocks ({_mib(res.file_bytes)}), {res.used_blocks} used; "
               f"{res.files} files, {res.dirs} directories, {res.symlinks} symlinks")


def _mode(e: Entry) -> str:
    return {FileType.DIR: "d", FileType.SYMLINK: "l", FileType.CHAR_DEVICE: "c",
            FileType.BLOCK_DEVICE: "b"}.get(e.stat.type, "-") + "rwxrwxrwx"


@image.command()
@click.argument("img", metavar="IMG")
@click.argument("path", default="/", metavar="[PATH]")
@click.option("-l", "long", is_flag=True, help="Long listing: type, links, size, inode, name.")
@click.option("-a", "show_all", is_flag=True, help="Show the \".\" and \"..\" entries too.")
def ls(img: str, path: str, long: bool, show_all: bool) -> None:
    """List a directory of the image (default: its root)."""
    with _open(img) as im:
        entries = im.listdir(path)
        if show_all and im.stat_inode(im.resolve(path)).type == FileType.DIR:
            ino = im.resolve(path)
            dot = im.dir_entries(ino)[:2]
            entries = [Entry(".", im.stat_inode(dot[0].inode)),
                       Entry("..", im.stat_inode(dot[1].inode))] + entries
        for e in entries:
            if not long:
                click.echo(e.name)
                continue
            link = f" -> {e.target}" if e.target is not None else ""
            click.echo(f"{_mode(e)} {e.stat.nlinks:>3} {e.stat.size:>10} {e.stat.ino:>8} "
                       f"{e.name}{link}")


@image.command()
@click.argument("img", metavar="IMG")
@click.argument("path", metavar="PATH")
def cat(img: str, path: str) -> None:
    """Write a file of the image to standard output (symlinks are followed)."""
    with _open(img) as im:
        data = im.read_file(path)
    out = click.get_binary_stream("stdout")
    try:
        out.write(data)
        out.flush()
    except BrokenPipeError:
        sys.stderr.close()  # quiet exit when the reader went away (| head)


@image.command()
@click.argument("img", metavar="IMG")
@click.argument("dest", metavar="DIR")
def extract(img: str, dest: str) -> None:
    """Copy the image's tree into DIR (created; it must not exist or be empty)."""
    with _open(img) as im:
        for w in im.extract(dest):
            _warn(w)
        n = sum(1 for _ in im.walk())
    click.echo(f"{dest}: {n} entries extracted")


@image.command()
@click.argument("img", metavar="IMG")
@click.argument("src", required=False, metavar="[DIR]")
def check(img: str, src: str | None) -> None:
    """Check an image's consistency: free map against the blocks in use, link counts, "." and
    "..", sizes against block counts; with DIR, also compare its contents byte for byte."""
    if src is not None and not Path(src).is_dir():
        raise EmuError(f"{src} is not a directory")
    with _open(img) as im:
        rep = im.check(src)
    for w in rep.warnings:
        click.echo(f"warning: {w}")
    for p in rep.errors[:MAX_PROBLEMS_SHOWN]:
        click.echo(f"problem: {p}")
    if len(rep.errors) > MAX_PROBLEMS_SHOWN:
        click.echo(f"problem: ... and {len(rep.errors) - MAX_PROBLEMS_SHOWN} more")
    if rep.errors:
        raise EmuError(f"{img}: check failed with {len(rep.errors)} problem(s); first: "
                       f"{rep.errors[0]}")
    same = f"; {rep.compared} files and symlinks match {src}" if src is not None else ""
    click.echo(f"{img}: ok: {rep.files} files, {rep.dirs} directories, {rep.symlinks} symlinks"
               f"{f', {rep.devices} devices' if rep.devices else ''}; {rep.used_blocks} of "
               f"{rep.blocks} blocks used ({rep.blocks * BLOCK_SIZE >> 10} KiB){same}")
