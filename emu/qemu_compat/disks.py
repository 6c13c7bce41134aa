"""Disk images for the QEMU front end: every -drive becomes a raw file emu's virtio-blk serves.

emu's block device reads and writes a raw image in place.  Other formats (qcow2, ...) are
never parsed here: Debian's `qemu-img` converts them to a temporary raw copy before the
run and, for a writable drive the guest changed, converts the copy back into the
original image afterwards (`qemu-img convert -n`, which keeps the image's own header:
cluster size, backing file).  `-snapshot` / `snapshot=on` drives run on a throw-away
copy; read-only drives are served read-only.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from emu.errors import EmuError
from emu.qemu_compat.config import DrivePlan

QEMU_IMG_HINT = "needs qemu-img (apt-get install qemu-utils)"


@dataclass
class WriteBack:
    """A converted image to copy back at exit if the guest changed it."""

    raw: Path
    target: str
    format: str
    stamp: tuple[int, int]  # (mtime_ns, size) of the raw copy before the run


class DiskSet:
    """Context manager: raw files for the drives on entry, write-backs on exit."""

    def __init__(self, drives: list[DrivePlan], qemu_img: str | None = None) -> None:
        self.drives = drives
        self.qemu_img = qemu_img or shutil.which("qemu-img")
        self.specs: list[str] = []  # `emu run --drive` specs, in order
        self.writebacks: list[WriteBack] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> "DiskSet":
        try:
            for index, drive in enumerate(self.drives):
                self.specs.append(self._prepare(index, drive))
        except BaseException:
            self._cleanup()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.write_back()
        finally:
            self._cleanup()

    def _workdir(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="emu-qemu-drives-")
        return Path(self._tmp.name)

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def _prepare(self, index: int, drive: DrivePlan) -> str:
        if not Path(drive.path).is_file():
            raise EmuError(f"-drive file={drive.path}: no such file")
        fmt = drive.format or self._probe(drive.path)
        readonly = ",readonly=on" if drive.readonly else ""
        if fmt != "raw":
            raw = self._workdir() / f"drive{index}.raw"
            self._run([self.qemu_img or "qemu-img", "convert", "-q", "-f", fmt, "-O", "raw", drive.path, str(raw)],
                      f"-drive file={drive.path},format={fmt}")
            if not drive.readonly and not drive.snapshot:
                st = raw.stat()
                self.writebacks.append(WriteBack(raw, drive.path, fmt, (st.st_mtime_ns, st.st_size)))
            return f"file={raw}{readonly}"
        if drive.snapshot and not drive.readonly:
            copy = self._workdir() / f"drive{index}.raw"
            shutil.copyfile(drive.path, copy)
            return f"file={copy}"
        path = drive.path
        if "," in path:  # emu's --drive syntax has no comma escaping: go through a link
            link = self._workdir() / f"drive{index}.raw"
            link.symlink_to(Path(path).resolve())
            path = str(link)
        return f"file={path}{readonly}"

    def _probe(self, path: str) -> str:
        """The image format as qemu-img sees it; raw when qemu-img is not installed."""
        if self.qemu_img is None:
            return "raw"
        out = self._run([self.qemu_img, "info", "--output=json", path], f"-drive file={path}")
        try:
            return str(json.loads(out)["format"])
        except (ValueError, KeyError):
            raise EmuError(f"-drive file={path}: qemu-img info gave no format") from None

    def _run(self, cmd: list[str], what: str) -> str:
        if self.qemu_img is None:
            raise EmuError(f"{what}: {QEMU_IMG_HINT}")
        try:
            res = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as err:
            raise EmuError(f"{what}: cannot run qemu-img ({err.strerror})") from None
        if res.returncode != 0:
            last = (res.stderr.strip().splitlines() or ["failed"])[-1]
            raise EmuError(f"{what}: {last}")
        return res.stdout

    def write_back(self) -> None:
        """Convert changed raw copies back into their images (`qemu-img convert -n`)."""
        for wb in self.writebacks:
            st = wb.raw.stat()
            if (st.st_mtime_ns, st.st_size) == wb.stamp:
                continue  # the guest wrote nothing: leave the image untouched
            self._run([self.qemu_img or "qemu-img", "convert", "-q", "-n", "-f", "raw", "-O", wb.format,
                       str(wb.raw), wb.target], f"writing back -drive file={wb.target}")
        self.writebacks.clear()

