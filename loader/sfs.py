"""rcore-fs SimpleFileSystem (SFS) images: the rootfs format of zCore.

Our own reader and writer of the on-disk format of rcore-fs's `rcore-fs-sfs` crate (rev 1a3246b,
the one zCore 43ff1c9 uses), as `rcore-fs-fuse IMG DIR zip` writes it.  All integers are
little-endian, the structs are `repr(C)` as laid out on an LP64 target (riscv64, x86_64).

Layout (4 KiB blocks; an inode id is the number of the block that holds the inode):

    block 0                superblock: magic u32, blocks u32, unused_blocks u32,
                           info [u8; 32] ("simple file system", NUL padded), freemap_blocks u32
    block 1                the root directory's inode
    blocks 2 .. 2+F        the free map, F = ceil(blocks / 32768): bit i (byte i/8, bit i%8, LSB
                           first) is 1 when block i is free; blocks 0, 1, the map itself and any
                           bit past `blocks` are 0
    the rest               inodes, data and index blocks, handed out lowest-free-first

    inode (128 bytes at the start of its block):
      0 size u32, 4 type u16 (1 file, 2 dir, 3 symlink, 4 char dev, 5 block dev), 6 nlinks u16,
      8 blocks u32, 12 direct [u32; 12], 60 indirect u32, 64 db_indirect u32, 68 padding,
      72 device_inode_id u64 (100 = none), 80/96/112 atime/mtime/ctime {sec i64, nsec i32, pad}
    file block k lives in direct[k] (k < 12), else entry k-12 of the indirect block (k < 1036),
    else entry (k-1036) % 1024 of the block named by entry (k-1036) // 1024 of db_indirect.
    rcore-fs allocates the indirect block as soon as a file has 12 blocks, and one more
    second-level block than needed when (blocks - 1036) is a multiple of 1024; later growth
    relies on that, so the writer does the same and the checker insists on it.

    directory: a byte stream of 260-byte entries (id u32, name [u8; 256] NUL terminated,
    at most 255 bytes of UTF-8) that may straddle blocks; size = 260 * entries; entry 0 is
    "." (itself), entry 1 is ".." (the parent; the root's is itself).  nlinks counts the
    parent's entry, "." and each subdirectory's "..": 2 + subdirectories.
    symlink: its data is the target path.  There are no modes, owners or times in use
    (rcore-fs reports every inode as 0777, owner 0; rcore-fs-fuse leaves the times 0).

The writer reproduces rcore-fs-fuse's allocation order (a directory's entries are taken in
name order, where rcore-fs-fuse takes readdir order), so its images are what rcore-fs-sfs
itself writes for the same tree: checked byte for byte against rcore-fs-sfs 1a3246b, apart
from the uninitialised padding bytes of its inode struct (tests/image/test_layout.py pins it).
"""
from __future__ import annotations

import mmap
import os
import stat
import struct
import tempfile
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import BinaryIO, Iterator

from emu.errors import EmuError

BLOCK_SIZE = 4096
MAGIC = 0x2F8DBE2B
INFO = b"simple file system"
NDIRECT = 12
PTRS_PER_BLOCK = BLOCK_SIZE // 4  # 1024 block numbers in an index block
MAX_INDIRECT = NDIRECT + PTRS_PER_BLOCK  # 1036: first file block behind db_indirect
MAX_FILE_BLOCKS = MAX_INDIRECT + PTRS_PER_BLOCK * PTRS_PER_BLOCK
MAX_FILE_SIZE = 0xFFFF_FFFF  # the size field is a u32
MAX_NAME = 255
DIRENT_SIZE = 4 + MAX_NAME + 1  # 260
BITS_PER_BLOCK = BLOCK_SIZE * 8
BLKN_SUPER = 0
BLKN_ROOT = 1
BLKN_FREEMAP = 2
NODEVICE = 100
MIN_BLOCKS = 16  # rcore-fs refuses to create a smaller file system
MAX_BLOCKS = 0xFFFF_FFFF
MAX_NLINKS = 0xFFFF
DEFAULT_EXTRA = 5 << 20  # zCore's xtask grows the image by 5 MiB after zipping
SYMLINK_HOPS = 40


class FileType(IntEnum):
    INVALID = 0
    FILE = 1
    DIR = 2
    SYMLINK = 3
    CHAR_DEVICE = 4
    BLOCK_DEVICE = 5


class SfsError(EmuError):
    """Any problem with an SFS image or its source tree; the message is one line."""


class SfsCorruptError(SfsError):
    """The image is not a consistent SFS image (bad magic, truncated, broken pointers...)."""


class SfsPathError(SfsError):
    """A path inside the image does not exist or has the wrong type."""


# ---------------------------------------------------------------------------------------------
# On-disk structs


@dataclass
class SuperBlock:
    magic: int
    blocks: int
    unused_blocks: int
    info: bytes  # the raw 32 bytes
    freemap_blocks: int

    FORMAT = struct.Struct("<III32sI")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.magic, self.blocks, self.unused_blocks, self.info,
                                self.freemap_blocks)

    @classmethod
    def unpack(cls, raw: bytes) -> SuperBlock:
        return cls(*cls.FORMAT.unpack_from(raw))

    @property
    def info_text(self) -> str:
        return self.info.split(b"\0", 1)[0].decode("utf-8", "replace")


@dataclass
class Timespec:
    sec: int = 0
    nsec: int = 0


@dataclass
class DiskInode:
    size: int
    type: int
    nlinks: int
    blocks: int
    direct: tuple[int, ...]
    indirect: int
    db_indirect: int
    device_inode_id: int = NODEVICE
    atime: Timespec = field(default_factory=Timespec)
    mtime: Timespec = field(default_factory=Timespec)
    ctime: Timespec = field(default_factory=Timespec)

    FORMAT = struct.Struct("<IHHI12III4xQqi4xqi4xqi4x")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.size, self.type, self.nlinks, self.blocks, *self.direct,
                                self.indirect, self.db_indirect, self.device_inode_id,
                                self.atime.sec, self.atime.nsec, self.mtime.sec, self.mtime.nsec,
                                self.ctime.sec, self.ctime.nsec)

    @classmethod
    def unpack(cls, raw: bytes) -> DiskInode:
        v = cls.FORMAT.unpack_from(raw)
        return cls(v[0], v[1], v[2], v[3], tuple(v[4:16]), v[16], v[17], v[18],
                   Timespec(v[19], v[20]), Timespec(v[21], v[22]), Timespec(v[23], v[24]))


@dataclass
class DirEntry:
    inode: int
    name: bytes  # without the NUL padding

    FORMAT = struct.Struct("<I256s")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.inode, self.name)  # struct pads with NULs

    @classmethod
    def unpack(cls, raw: bytes, where: str) -> DirEntry:
        ino, name = cls.FORMAT.unpack_from(raw)
        end = name.find(b"\0")
        if end < 0:
            raise SfsCorruptError(f"{where}: directory entry name is not NUL-terminated")
        return cls(ino, name[:end])


assert SuperBlock.FORMAT.size == 48
assert DiskInode.FORMAT.size == 128
assert DirEntry.FORMAT.size == DIRENT_SIZE


def blocks_for(size: int) -> int:
    return -(-size // BLOCK_SIZE)


def freemap_blocks_for(blocks: int) -> int:
    return -(-blocks // BITS_PER_BLOCK)


def second_level_count(nblocks: int) -> int:
    """Second-level index blocks rcore-fs keeps for a file of `nblocks` blocks."""
    return (nblocks - MAX_INDIRECT) // PTRS_PER_BLOCK + 1 if nblocks >= MAX_INDIRECT else 0


def index_blocks(nblocks: int) -> int:
    """Index (indirect, db_indirect, second-level) blocks of a file of `nblocks` blocks."""
    n = 1 if nblocks >= NDIRECT else 0
    if nblocks >= MAX_INDIRECT:
        n += 1 + second_level_count(nblocks)
    return n


def _type_name(t: int) -> str:
    try:
        return FileType(t).name.lower().replace("_", " ")
    except ValueError:
        return f"type {t}"


# ---------------------------------------------------------------------------------------------
# Writer


@dataclass
class _Node:
    """A file, directory or symlink of the source tree, and where the layout puts it."""
    name: bytes
    kind: FileType
    host: Path
    size: int = 0  # file length, symlink target length; directories: grows with entries
    target: bytes = b""  # symlink target
    children: list[_Node] = field(default_factory=list)
    # layout
    ino: int = 0
    nlinks: int = 0
    data: list[int] = field(default_factory=list)
    indirect: int = 0
    db_indirect: int = 0
    second: list[int] = field(default_factory=list)
    entries: list[DirEntry] = field(default_factory=list)


class _Allocator:
    def __init__(self, first: int) -> None:
        self.next = first

    def take(self) -> int:
        b = self.next
        self.next += 1
        return b


def _grow(node: _Node, new_size: int, alloc: _Allocator) -> None:
    """Grow a node to `new_size` bytes, taking blocks in the order rcore-fs's resize does:
    the indirect block, db_indirect and its second-level blocks, then the data blocks."""
    old, new = len(node.data), blocks_for(new_size)
    if new > old:
        if old < NDIRECT <= new:
            node.indirect = alloc.take()
        if new >= MAX_INDIRECT:
            if node.db_indirect == 0:
                node.db_indirect = alloc.take()
            begin = 0 if old < MAX_INDIRECT else second_level_count(old)
            for _ in range(begin, second_level_count(new)):
                node.second.append(alloc.take())
        for _ in range(old, new):
            node.data.append(alloc.take())
    node.size = new_size


@dataclass
class BuildResult:
    path: Path
    blocks: int  # file-system size in blocks (superblock)
    used_blocks: int
    file_bytes: int
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    warnings: list[str] = field(default_factory=list)


def _host_name(name: str, where: Path) -> bytes:
    raw = os.fsencode(name)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SfsError(f"{where}: file name is not UTF-8 (SFS names must be)") from None
    if len(raw) > MAX_NAME:
        raise SfsError(f"{where}: file name is longer than {MAX_NAME} bytes")
    return raw


def _scan(path: Path, warnings: list[str]) -> _Node:
    """The source tree as rcore-fs-fuse sees it: regular files, directories and symlinks
    (not followed); other kinds are skipped with a warning."""
    try:
        st = os.stat(path)
    except OSError as err:
        raise SfsError(f"cannot read {path}: {err.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SfsError(f"{path} is not a directory")
    root = _Node(b"", FileType.DIR, path)
    stack = [root]
    while stack:
        node = stack.pop()
        try:
            with os.scandir(node.host) as it:
                entries = sorted(it, key=lambda e: os.fsencode(e.name))
        except OSError as err:
            raise SfsError(f"cannot list {node.host}: {err.strerror}") from None
        for e in entries:
            where = Path(e.path)
            name = _host_name(e.name, where)
            try:
                if e.is_symlink():
                    target = os.readlink(os.fsencode(e.path))
                    try:
                        target.decode("utf-8")
                    except UnicodeDecodeError:
                        raise SfsError(f"{where}: symlink target is not UTF-8 (SFS needs it to be)") from None
                    child = _Node(name, FileType.SYMLINK, where, size=len(target), target=target)
                elif e.is_dir(follow_symlinks=False):
                    child = _Node(name, FileType.DIR, where)
                    stack.append(child)
                elif e.is_file(follow_symlinks=False):
                    size = e.stat(follow_symlinks=False).st_size
                    if size > MAX_FILE_SIZE:
                        raise SfsError(f"{where}: {size} bytes is too large for SFS (at most 4 GiB - 1)")
                    child = _Node(name, FileType.FILE, where, size=size)
                else:
                    warnings.append(f"{where}: skipped (SFS images hold only files, directories "
                                    "and symlinks)")
                    continue
            except OSError as err:
                raise SfsError(f"cannot read {where}: {err.strerror}") from None
            node.children.append(child)
    return root


def _layout(root: _Node, first: int) -> int:
    """Give every node its inode and blocks, from block `first` on, in rcore-fs-fuse's order.
    Returns the next free block."""
    alloc = _Allocator(first)
    root.ino = BLKN_ROOT
    root.size, root.data, root.indirect, root.db_indirect, root.second = 0, [], 0, 0, []
    _grow(root, 2 * DIRENT_SIZE, alloc)
    root.entries = [DirEntry(BLKN_ROOT, b"."), DirEntry(BLKN_ROOT, b"..")]
    root.nlinks = 2
    stack = [(root, iter(root.children))]
    while stack:
        parent, children = stack[-1]
        child = next(children, None)
        if child is None:
            stack.pop()
            continue
        child.ino = alloc.take()
        child.data, child.indirect, child.db_indirect, child.second = [], 0, 0, []
        child.nlinks = 1
        if child.kind == FileType.DIR:
            child.size = 0
            _grow(child, 2 * DIRENT_SIZE, alloc)
            child.entries = [DirEntry(child.ino, b"."), DirEntry(parent.ino, b"..")]
            child.nlinks += 1
            parent.nlinks += 1
            if parent.nlinks > MAX_NLINKS:
                raise SfsError(f"{parent.host}: too many subdirectories for SFS (nlinks is a u16)")
        _grow(parent, parent.size + DIRENT_SIZE, alloc)
        parent.entries.append(DirEntry(child.ino, child.name))
        if child.kind == FileType.DIR:
            stack.append((child, iter(child.children)))
        else:
            size = child.size
            child.size = 0
            _grow(child, size, alloc)
    return alloc.next


def _nodes(root: _Node) -> Iterator[_Node]:
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.children))


def build_image(src: str | Path, out: str | Path, size: int | None = None,
                extra: int = DEFAULT_EXTRA) -> BuildResult:
    """Write an SFS image of the tree at `src` to `out`.

    The file system gets `size` bytes (default: just enough for the tree) plus `extra` bytes
    of free space, rounded up to whole blocks; the superblock declares exactly the blocks the
    image file holds.
    """
    src, out = Path(src), Path(out)
    if extra < 0 or (size is not None and size < 0):
        raise SfsError("sizes must not be negative")
    try:
        inside = out.resolve().is_relative_to(src.resolve())
    except OSError:
        inside = False
    if inside:
        raise SfsError(f"{out} is inside {src}: the image would contain itself")
    warnings: list[str] = []
    root = _scan(src, warnings)

    # The number of blocks the tree takes does not depend on where it starts.
    used = _layout(root, 0)
    extra_blocks = blocks_for(extra)
    if size is None:
        total = BLKN_FREEMAP + used + extra_blocks
        while BLKN_FREEMAP + freemap_blocks_for(total) + used + extra_blocks > total:
            total = BLKN_FREEMAP + freemap_blocks_for(total) + used + extra_blocks
    else:
        total = blocks_for(size) + extra_blocks
    total = max(total, MIN_BLOCKS)
    if total > MAX_BLOCKS:
        raise SfsError(f"{total} blocks is more than an SFS image can have ({MAX_BLOCKS})")
    fm = freemap_blocks_for(total)
    first = BLKN_FREEMAP + fm
    if first + used > total:
        need = (first + used) * BLOCK_SIZE
        raise SfsError(f"{src} needs at least {need} bytes ({need / (1 << 20):.1f} MiB); "
                       f"size plus extra give {total * BLOCK_SIZE}")
    end = _layout(root, first)
    assert end == first + used

    result = BuildResult(out, total, end, total * BLOCK_SIZE, warnings=warnings)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=out.name + ".", suffix=".tmp", dir=out.parent or ".")
        with os.fdopen(fd, "wb") as f:
            _write(f, root, total, fm, end, result)
            f.truncate(total * BLOCK_SIZE)
            umask = os.umask(0)
            os.umask(umask)
            os.fchmod(f.fileno(), 0o666 & ~umask)
        os.replace(tmp, out)
        tmp = None
    except OSError as err:
        raise SfsError(f"cannot write {out}: {err.strerror or err}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return result


def _write(f: BinaryIO, root: _Node, total: int, fm: int, end: int, result: BuildResult) -> None:
    img = bytearray(end * BLOCK_SIZE)

    def put(block: int, data: bytes, offset: int = 0) -> None:
        at = block * BLOCK_SIZE + offset
        img[at:at + len(data)] = data

    def put_data(node: _Node, data: bytes) -> None:
        for i, b in enumerate(node.data):
            put(b, data[i * BLOCK_SIZE:(i + 1) * BLOCK_SIZE])

    sb = SuperBlock(MAGIC, total, total - end, INFO.ljust(32, b"\0"), fm)
    put(BLKN_SUPER, sb.pack())
    # free map: blocks [end, total) are free
    free = ((1 << (total - end)) - 1) << end
    put(BLKN_FREEMAP, free.to_bytes(fm * BLOCK_SIZE, "little"))

    for node in _nodes(root):
        n = len(node.data)
        direct = tuple(node.data[:NDIRECT]) + (0,) * max(0, NDIRECT - n)
        put(node.ino, DiskInode(node.size, node.kind, node.nlinks, n, direct, node.indirect,
                                node.db_indirect).pack())
        if node.indirect:
            ptrs = node.data[NDIRECT:MAX_INDIRECT]
            put(node.indirect, struct.pack(f"<{len(ptrs)}I", *ptrs))
        if node.db_indirect:
            put(node.db_indirect, struct.pack(f"<{len(node.second)}I", *node.second))
            for i, b in enumerate(node.second):
                ptrs = node.data[MAX_INDIRECT + i * PTRS_PER_BLOCK:MAX_INDIRECT + (i + 1) * PTRS_PER_BLOCK]
                put(b, struct.pack(f"<{len(ptrs)}I", *ptrs))
        if node.kind == FileType.DIR:
            result.dirs += 1
            put_data(node, b"".join(e.pack() for e in node.entries))
        elif node.kind == FileType.SYMLINK:
            result.symlinks += 1
            put_data(node, node.target)
        else:
            result.files += 1
            try:
                with open(node.host, "rb") as src:
                    for i, b in enumerate(node.data):
                        chunk = src.read(BLOCK_SIZE)
                        if len(chunk) != min(BLOCK_SIZE, node.size - i * BLOCK_SIZE):
                            break
                        put(b, chunk)
                    else:
                        if not src.read(1):
                            continue
            except OSError as err:
                raise SfsError(f"cannot read {node.host}: {err.strerror}") from None
            raise SfsError(f"{node.host} changed size while the image was being built")
    f.seek(0)
    f.write(img)


# ---------------------------------------------------------------------------------------------
# Reader


@dataclass
class Stat:
    ino: int
    type: FileType
    size: int
    nlinks: int
    blocks: int


@dataclass
class Entry:
    name: str
    stat: Stat
    target: str | None = None  # symlinks


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: int = 0
    dirs: int = 0
    symlinks: int = 0
    devices: int = 0
    used_blocks: int = 0
    blocks: int = 0
    compared: int = 0  # files and symlinks byte-compared with a host tree

    @property
    def ok(self) -> bool:
        return not self.errors


class SfsImage:
    """A read-only view of an SFS image file (or of bytes)."""

    def __init__(self, source: str | Path | bytes, name: str | None = None) -> None:
        self._file = None
        self._map: mmap.mmap | None = None
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.data: bytes | mmap.mmap = bytes(source)
            self.name = name or "<image>"
        else:
            self.name = name or str(source)
            try:
                self._file = open(source, "rb")
                length = os.fstat(self._file.fileno()).st_size
                if length:
                    self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError) as err:
                self.close()
                raise SfsError(f"cannot read {source}: {getattr(err, 'strerror', None) or err}") from None
            self.data = self._map if self._map is not None else b""
        try:
            self.sb = self._superblock()
        except BaseException:
            self.close()
            raise
        self._inodes: dict[int, DiskInode] = {}

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SfsImage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blocks -----------------------------------------------------------------------------

    def _corrupt(self, msg: str) -> SfsCorruptError:
        return SfsCorruptError(f"{self.name}: {msg}")

    def _superblock(self) -> SuperBlock:
        if len(self.data) < SuperBlock.FORMAT.size:
            raise self._corrupt(f"not an SFS image: only {len(self.data)} bytes")
        sb = SuperBlock.unpack(self.data[:SuperBlock.FORMAT.size])
        if sb.magic != MAGIC:
            raise self._corrupt(f"not an SFS image (magic {sb.magic:#010x}, expected {MAGIC:#010x})")
        if sb.blocks < BLKN_FREEMAP + 2:
            raise self._corrupt(f"corrupt superblock: {sb.blocks} blocks")
        if sb.freemap_blocks == 0 or sb.freemap_blocks * BITS_PER_BLOCK < sb.blocks:
            raise self._corrupt(f"corrupt superblock: {sb.freemap_blocks} free-map blocks cannot "
                                f"cover {sb.blocks} blocks")
        if BLKN_FREEMAP + sb.freemap_blocks >= sb.blocks:
            raise self._corrupt(f"corrupt superblock: {sb.freemap_blocks} free-map blocks in a "
                                f"{sb.blocks}-block file system")
        if sb.unused_blocks > sb.blocks:
            raise self._corrupt(f"corrupt superblock: {sb.unused_blocks} unused blocks of {sb.blocks}")
        self._meta_end = BLKN_FREEMAP + sb.freemap_blocks
        present = -(-len(self.data) // BLOCK_SIZE)
        if present < self._meta_end:
            raise self._corrupt(f"truncated: {len(self.data)} bytes cannot hold the superblock "
                                f"and free map ({self._meta_end} blocks)")
        return sb

    @property
    def file_blocks(self) -> int:
        """Blocks present in the image file (a partial last block counts, zero padded)."""
        return -(-len(self.data) // BLOCK_SIZE)

    def block(self, n: int, what: str = "block") -> bytes:
        if not 0 <= n < self.sb.blocks:
            raise self._corrupt(f"{what} {n} is outside the file system ({self.sb.blocks} blocks)")
        at = n * BLOCK_SIZE
        if at >= len(self.data):
            raise self._corrupt(f"truncated: {what} {n} is past the end of the image file "
                                f"({len(self.data)} bytes)")
        raw = self.data[at:at + BLOCK_SIZE]
        return raw if len(raw) == BLOCK_SIZE else raw.ljust(BLOCK_SIZE, b"\0")

    def freemap(self) -> bytes:
        return b"".join(self.block(BLKN_FREEMAP + i, "free-map block")
                        for i in range(self.sb.freemap_blocks))

    # -- inodes -----------------------------------------------------------------------------

    def _check_data_block(self, n: int, what: str) -> int:
        if n < self._meta_end or n >= self.sb.blocks:
            raise self._corrupt(f"{what} points to block {n}, outside the data area "
                                f"[{self._meta_end}, {self.sb.blocks})")
        return n

    def inode(self, ino: int) -> DiskInode:
        cached = self._inodes.get(ino)
        if cached is not None:
            return cached
        if ino != BLKN_ROOT:
            self._check_data_block(ino, "a directory entry")
        node = DiskInode.unpack(self.block(ino, "inode"))
        where = f"inode {ino}"
        if node.type not in (FileType.FILE, FileType.DIR, FileType.SYMLINK,
                             FileType.CHAR_DEVICE, FileType.BLOCK_DEVICE):
            raise self._corrupt(f"{where}: bad type {node.type}")
        if node.blocks != blocks_for(node.size):
            raise self._corrupt(f"{where}: {node.blocks} blocks cannot hold {node.size} bytes")
        if node.blocks > self.file_blocks:
            raise self._corrupt(f"{where}: {node.blocks} blocks, more than the image file holds")
        if node.blocks >= NDIRECT and node.indirect == 0:
            raise self._corrupt(f"{where}: {node.blocks} blocks but no indirect block")
        if node.blocks >= MAX_INDIRECT and node.db_indirect == 0:
            raise self._corrupt(f"{where}: {node.blocks} blocks but no double-indirect block")
        if node.type == FileType.DIR and node.size % DIRENT_SIZE:
            raise self._corrupt(f"{where}: directory size {node.size} is not a multiple of "
                                f"{DIRENT_SIZE}")
        self._inodes[ino] = node
        return node

    def index_map(self, ino: int) -> tuple[list[int], list[int]]:
        """The data blocks of an inode in file order, and its index blocks."""
        node = self.inode(ino)
        n = node.blocks
        where = f"inode {ino}"
        data = [self._check_data_block(b, f"{where} direct[{i}]")
                for i, b in enumerate(node.direct[:min(n, NDIRECT)])]
        index: list[int] = []
        if n >= NDIRECT:
            index.append(self._check_data_block(node.indirect, f"{where} indirect"))
            if n > NDIRECT:
                table = self.block(node.indirect, f"{where} indirect block")
                ptrs = struct.unpack_from(f"<{min(n, MAX_INDIRECT) - NDIRECT}I", table)
                data += [self._check_data_block(b, f"{where} indirect[{i}]") for i, b in enumerate(ptrs)]
        if n >= MAX_INDIRECT:
            index.append(self._check_data_block(node.db_indirect, f"{where} db_indirect"))
            count = second_level_count(n)
            top = struct.unpack_from(f"<{count}I", self.block(node.db_indirect,
                                                              f"{where} double-indirect block"))
            for i, sec in enumerate(top):
                index.append(self._check_data_block(sec, f"{where} db_indirect[{i}]"))
                want = min(PTRS_PER_BLOCK, n - MAX_INDIRECT - i * PTRS_PER_BLOCK)
                if want > 0:
                    ptrs = struct.unpack_from(f"<{want}I", self.block(sec, f"{where} second-level block"))
                    data += [self._check_data_block(b, f"{where} db_indirect[{i}][{j}]")
                             for j, b in enumerate(ptrs)]
        return data, index

    def read_inode_data(self, ino: int) -> bytes:
        node = self.inode(ino)
        data, _ = self.index_map(ino)
        raw = b"".join(self.block(b, f"inode {ino} data block") for b in data)
        return raw[:node.size]

    def iter_inode_data(self, ino: int) -> Iterator[bytes]:
        node = self.inode(ino)
        data, _ = self.index_map(ino)
        left = node.size
        for b in data:
            chunk = self.block(b, f"inode {ino} data block")
            yield chunk[:min(left, BLOCK_SIZE)]
            left -= BLOCK_SIZE

    def dir_entries(self, ino: int) -> list[DirEntry]:
        node = self.inode(ino)
        if node.type != FileType.DIR:
            raise SfsPathError(f"inode {ino} is not a directory")
        raw = self.read_inode_data(ino)
        out = []
        for i in range(0, len(raw), DIRENT_SIZE):
            e = DirEntry.unpack(raw[i:i + DIRENT_SIZE], f"{self.name}: directory inode {ino}")
            out.append(e)
        return out

    def stat_inode(self, ino: int) -> Stat:
        node = self.inode(ino)
        return Stat(ino, FileType(node.type), node.size, node.nlinks, node.blocks)

    def _name(self, e: DirEntry, dir_ino: int) -> str:
        try:
            name = e.name.decode("utf-8")
        except UnicodeDecodeError:
            raise self._corrupt(f"directory inode {dir_ino}: entry name {e.name!r} is not UTF-8") from None
        return name

    def children(self, ino: int) -> list[tuple[str, int]]:
        """(name, inode) of a directory's entries after "." and "..", checked to be safe names."""
        entries = self.dir_entries(ino)
        if len(entries) < 2 or entries[0].name != b"." or entries[1].name != b"..":
            raise self._corrupt(f"directory inode {ino} does not start with \".\" and \"..\"")
        out = []
        for e in entries[2:]:
            name = self._name(e, ino)
            if not name or "/" in name or name in (".", ".."):
                raise self._corrupt(f"directory inode {ino}: bad entry name {name!r}")
            out.append((name, e.inode))
        return out

    # -- paths ------------------------------------------------------------------------------

    def readlink_inode(self, ino: int) -> str:
        raw = self.read_inode_data(ino)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._corrupt(f"symlink inode {ino}: target is not UTF-8") from None

    def resolve(self, path: str, follow: bool = True) -> int:
        """The inode of `path` (absolute in the image; symlinks inside are followed, the
        last one only when `follow`)."""
        hops = 0
        parts = [p for p in path.split("/") if p not in ("", ".")]
        trail_dir = path.endswith("/")
        stack = [BLKN_ROOT]  # the directories walked so far
        todo = list(reversed(parts))
        while todo:
            part = todo.pop()
            cur = stack[-1]
            if self.inode(cur).type != FileType.DIR:
                raise SfsPathError(f"{path}: not a directory")
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            found = dict(self.children(cur)).get(part)
            if found is None:
                raise SfsPathError(f"{path}: no such file or directory in the image")
            node = self.inode(found)
            last = not todo
            if node.type == FileType.SYMLINK and (not last or follow or trail_dir):
                hops += 1
                if hops > SYMLINK_HOPS:
                    raise SfsPathError(f"{path}: too many levels of symbolic links")
                target = self.readlink_inode(found)
                if target.startswith("/"):
                    stack = [BLKN_ROOT]
                todo.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
                continue
            stack.append(found)
        if trail_dir and self.inode(stack[-1]).type != FileType.DIR:
            raise SfsPathError(f"{path}: not a directory")
        return stack[-1]

    def listdir(self, path: str = "/") -> list[Entry]:
        ino = self.resolve(path)
        node = self.inode(ino)
        if node.type != FileType.DIR:
            ino = self.resolve(path, follow=False)
            return [self._entry(path.rstrip("/").rsplit("/", 1)[-1] or "/", ino)]
        return [self._entry(name, child) for name, child in self.children(ino)]

    def _entry(self, name: str, ino: int) -> Entry:
        st = self.stat_inode(ino)
        target = self.readlink_inode(ino) if st.type == FileType.SYMLINK else None
        return Entry(name, st, target)

    def read_file(self, path: str) -> bytes:
        ino = self.resolve(path)
        node = self.inode(ino)
        if node.type == FileType.DIR:
            raise SfsPathError(f"{path}: is a directory")
        if node.type != FileType.FILE:
            raise SfsPathError(f"{path}: is a {_type_name(node.type)}, not a file")
        return self.read_inode_data(ino)

    def walk(self) -> Iterator[tuple[str, int]]:
        """(path, inode) of everything below the root, depth first in directory order.
        A directory reachable twice (a cycle) is corrupt."""
        seen = {BLKN_ROOT}
        stack: list[tuple[str, Iterator[tuple[str, int]]]] = [("", iter(self.children(BLKN_ROOT)))]
        while stack:
            prefix, it = stack[-1]
            item = next(it, None)
            if item is None:
                stack.pop()
                continue
            name, ino = item
            path = f"{prefix}/{name}"
            node = self.inode(ino)
            yield path, ino
            if node.type == FileType.DIR:
                if ino in seen:
                    raise self._corrupt(f"{path}: directory inode {ino} is reachable twice")
                seen.add(ino)
                stack.append((path, iter(self.children(ino))))

    def extract(self, dest: str | Path) -> list[str]:
        """Write the tree to `dest` (created; must not exist or be an empty directory).
        Returns warnings (device nodes are not extracted)."""
        dest = Path(dest)
        if dest.exists():
            if not dest.is_dir() or any(dest.iterdir()):
                raise SfsError(f"{dest} exists and is not an empty directory")
        warnings = []
        # check the whole tree first so that a corrupt image leaves nothing half-written
        items = list(self.walk())
        for _, ino in items:
            self.index_map(ino)
            if self.inode(ino).type == FileType.SYMLINK:
                self.readlink_inode(ino)
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for path, ino in items:
                host = dest / path.lstrip("/")
                t = self.inode(ino).type
                if t == FileType.DIR:
                    host.mkdir()
                elif t == FileType.FILE:
                    with open(host, "wb") as f:
                        for chunk in self.iter_inode_data(ino):
                            f.write(chunk)
                elif t == FileType.SYMLINK:
                    target = self.readlink_inode(ino)
                    if "\0" in target:
                        raise self._corrupt(f"{path}: symlink target holds a NUL byte")
                    os.symlink(target, host)
                else:
                    warnings.append(f"{path}: {_type_name(t)} not extracted")
        except OSError as err:
            raise SfsError(f"cannot write {err.filename or dest}: {err.strerror}") from None
        return warnings

    # -- consistency ------------------------------------------------------------------------

    def check(self, host_dir: str | Path | None = None) -> CheckReport:
        rep = CheckReport(blocks=self.sb.blocks)
        sb = self.sb
        if sb.freemap_blocks != freemap_blocks_for(sb.blocks):
            rep.warnings.append(f"{sb.freemap_blocks} free-map blocks for {sb.blocks} blocks "
                                f"(rcore-fs makes {freemap_blocks_for(sb.blocks)})")
        if self.file_blocks < sb.blocks:
            rep.warnings.append(
                f"the image file holds {self.file_blocks} of the {sb.blocks} blocks the superblock "
                "declares (as rcore-fs-fuse leaves it); a kernel that allocates past the end of "
                "the file fails")
        elif len(self.data) > sb.blocks * BLOCK_SIZE:
            rep.warnings.append(f"{len(self.data) - sb.blocks * BLOCK_SIZE} bytes past the "
                                f"file system's {sb.blocks} blocks")
        if len(self.data) % BLOCK_SIZE:
            rep.warnings.append(f"the image file ({len(self.data)} bytes) ends inside a block")
        fmap = self.freemap()

        owner: dict[int, str] = {}

        def claim(block: int, what: str) -> None:
            prev = owner.get(block)
            if prev is not None:
                rep.errors.append(f"block {block} is used twice: {prev} and {what}")
            else:
                owner[block] = what

        claim(BLKN_SUPER, "superblock")
        for i in range(sb.freemap_blocks):
            claim(BLKN_FREEMAP + i, "free map")

        links: dict[int, int] = {}  # non-directory inode -> entries naming it
        subdirs: dict[int, int] = {}
        kinds: dict[int, int] = {}
        paths: dict[int, str] = {BLKN_ROOT: "/"}
        # breadth-first over directories, recording problems and carrying on elsewhere
        queue = [(BLKN_ROOT, BLKN_ROOT, "/")]
        seen_dirs = {BLKN_ROOT}

        def visit_inode(ino: int, path: str) -> bool:
            if ino in kinds:
                return True
            try:
                node = self.inode(ino)
                data, index = self.index_map(ino)
            except SfsCorruptError as err:
                rep.errors.append(f"{path}: {str(err).removeprefix(self.name + ': ')}")
                return False
            kinds[ino] = node.type
            paths.setdefault(ino, path)
            claim(ino, f"inode of {path}")
            for b in index:
                claim(b, f"index block of {path}")
            for b in data:
                claim(b, f"data of {path}")
            if node.type == FileType.FILE:
                rep.files += 1
            elif node.type == FileType.DIR:
                rep.dirs += 1
            elif node.type == FileType.SYMLINK:
                rep.symlinks += 1
            else:
                rep.devices += 1
            return True

        if not visit_inode(BLKN_ROOT, "/"):
            return rep
        if kinds[BLKN_ROOT] != FileType.DIR:
            rep.errors.append(f"/: the root inode is a {_type_name(kinds[BLKN_ROOT])}")
            return rep
        while queue:
            ino, parent, path = queue.pop(0)
            try:
                entries = self.dir_entries(ino)
            except SfsCorruptError as err:
                rep.errors.append(f"{path}: {str(err).removeprefix(self.name + ': ')}")
                continue
            if len(entries) < 2 or entries[0].name != b"." or entries[1].name != b"..":
                rep.errors.append(f"{path}: does not start with \".\" and \"..\" entries")
                continue
            if entries[0].inode != ino:
                rep.errors.append(f"{path}: \".\" names inode {entries[0].inode}, not {ino}")
            if entries[1].inode != parent:
                rep.errors.append(f"{path}: \"..\" names inode {entries[1].inode}, not {parent}")
            names: set[bytes] = set()
            for e in entries[2:]:
                cpath = path.rstrip("/") + "/" + e.name.decode("utf-8", "backslashreplace")
                try:
                    e.name.decode("utf-8")
                except UnicodeDecodeError:
                    rep.errors.append(f"{cpath}: name is not UTF-8")
                if not e.name or b"/" in e.name or e.name in (b".", b".."):
                    rep.errors.append(f"{path}: bad entry name {e.name!r}")
                    continue
                if e.name in names:
                    rep.errors.append(f"{cpath}: the name appears twice")
                names.add(e.name)
                if not visit_inode(e.inode, cpath):
                    continue
                if kinds[e.inode] == FileType.DIR:
                    subdirs[ino] = subdirs.get(ino, 0) + 1
                    if e.inode in seen_dirs:
                        rep.errors.append(f"{cpath}: directory inode {e.inode} is reachable twice")
                        continue
                    seen_dirs.add(e.inode)
                    queue.append((e.inode, ino, cpath))
                    continue
                links[e.inode] = links.get(e.inode, 0) + 1
                if kinds[e.inode] == FileType.SYMLINK and links[e.inode] == 1:
                    try:
                        self.readlink_inode(e.inode)
                    except SfsCorruptError as err:
                        rep.errors.append(f"{cpath}: {str(err).removeprefix(self.name + ': ')}")

        for ino, kind in kinds.items():
            node = self.inode(ino)
            want = 2 + subdirs.get(ino, 0) if kind == FileType.DIR else links.get(ino, 0)
            if node.nlinks != want:
                rep.errors.append(f"{paths[ino]}: nlinks is {node.nlinks}, the tree gives {want}")

        # free map against the blocks in use (bit n of the little-endian integer is block n)
        rep.used_blocks = len(owner)
        free = int.from_bytes(fmap, "little")
        inside = (1 << sb.blocks) - 1
        owned = bytearray(-(-sb.blocks // 8))
        for n in owner:
            if n < sb.blocks:
                owned[n // 8] |= 1 << (n % 8)
        used = int.from_bytes(owned, "little")
        for what, bits in (("is marked free", free & used),
                           ("is marked used but nothing uses it", ~free & inside & ~used)):
            count = bits.bit_count()
            shown = []
            while bits and len(shown) < 5:
                low = bits & -bits
                n = low.bit_length() - 1
                shown.append(f"{n} ({owner[n]})" if n in owner else str(n))
                bits ^= low
            if count == 1:
                rep.errors.append(f"block {shown[0]} {what}")
            elif count:
                more = f" and {count - len(shown)} more" if count > len(shown) else ""
                rep.errors.append(f"{count} blocks: {', '.join(shown)}{more} "
                                  + what.replace("is ", "are ").replace("it", "them"))
        if free >> sb.blocks:
            n = ((free >> sb.blocks) & -(free >> sb.blocks)).bit_length() - 1 + sb.blocks
            rep.errors.append(f"the free map marks block {n}, past the last block "
                              f"{sb.blocks - 1}, as free")
        free_count = (free & inside).bit_count()
        if free_count != sb.unused_blocks:
            rep.errors.append(f"the superblock counts {sb.unused_blocks} unused blocks, the free "
                              f"map {free_count}")
        for n in sorted(owner):
            if n >= self.file_blocks:
                rep.errors.append(f"truncated: block {n} ({owner[n]}) is past the end of the "
                                  f"image file ({len(self.data)} bytes)")
                break

        if host_dir is not None and rep.ok:
            self._compare(Path(host_dir), rep)
        return rep

    def _compare(self, host: Path, rep: CheckReport) -> None:
        warnings: list[str] = []
        try:
            tree = _scan(host, warnings)
        except SfsError as err:
            rep.errors.append(str(err))
            return
        rep.warnings.extend(warnings)

        def cmp(node: _Node, ino: int, path: str) -> None:
            mine = {os.fsencode(name): child for name, child in self.children(ino)}
            theirs = {c.name: c for c in node.children}
            for name in sorted(set(mine) | set(theirs)):
                p = path.rstrip("/") + "/" + os.fsdecode(name)
                if name not in theirs:
                    rep.errors.append(f"{p}: in the image, not in {host}")
                    continue
                if name not in mine:
                    rep.errors.append(f"{p}: in {host}, not in the image")
                    continue
                c, cino = theirs[name], mine[name]
                kind = self.inode(cino).type
                if kind != c.kind:
                    rep.errors.append(f"{p}: a {_type_name(kind)} in the image, a "
                                      f"{_type_name(c.kind)} in {host}")
                elif kind == FileType.DIR:
                    cmp(c, cino, p)
                elif kind == FileType.SYMLINK:
                    rep.compared += 1
                    if self.read_inode_data(cino) != c.target:
                        rep.errors.append(f"{p}: symlink target differs")
                else:
                    rep.compared += 1
                    self._compare_file(cino, c.host, p, rep)

        cmp(tree, BLKN_ROOT, "/")

    def _compare_file(self, ino: int, host: Path, path: str, rep: CheckReport) -> None:
        size = self.inode(ino).size
        offset = 0
        try:
            with open(host, "rb") as f:
                for chunk in self.iter_inode_data(ino):
                    theirs = f.read(len(chunk))
                    if theirs != chunk:
                        at = next((i for i, (a, b) in enumerate(zip(chunk, theirs, strict=False)) if a != b),
                                  min(len(chunk), len(theirs)))
                        rep.errors.append(f"{path}: contents differ at byte {offset + at}")
                        return
                    offset += len(chunk)
                rest = len(f.read(1))
        except OSError as err:
            rep.errors.append(f"cannot read {host}: {err.strerror}")
            return
        if rest:
            rep.errors.append(f"{path}: {size} bytes in the image, more in {host}")
