"""Native helpers for the hot path, compiled on first use with the system C compiler.

Why not a setuptools extension: the helper is a plain C callback loaded with ctypes
(no Python C API), and building it lazily into a per-user cache keyed by the source
hash works the same for wheel, editable and in-tree runs, and for forked children.
"""
from __future__ import annotations

import ctypes
import os
from pathlib import Path

from emu.errors import EmuError
from emu.sha import sha256

_DIR = Path(__file__).parent


SPIN_REGS = 31


class BudgetStruct(ctypes.Structure):
    """Mirror of `struct emu_budget` in budget.c."""

    _fields_ = [
        ("budget", ctypes.c_int64),
        ("mark", ctypes.c_int64),
        ("anchor", ctypes.c_uint64),
        ("atomics", ctypes.c_uint64),
        ("stopped", ctypes.c_uint64),
        ("stop", ctypes.c_void_p),
        ("gpr", ctypes.c_void_p),
        ("trap_counts", ctypes.c_void_p),
        ("events", ctypes.c_uint64),
        ("spin_limit", ctypes.c_uint64),
        ("spinning", ctypes.c_uint64),
        ("step_at", ctypes.c_int64),
        ("resume_at", ctypes.c_int64),
        ("power", ctypes.c_uint64),
        ("backoff", ctypes.c_uint64),
        ("matches", ctypes.c_uint64),
        ("ring_n", ctypes.c_uint64),
        ("ring_pos", ctypes.c_uint64),
        ("ring", ctypes.c_uint64 * 32),
        ("last_atomics", ctypes.c_uint64),
        ("last_gpr", ctypes.c_uint64 * SPIN_REGS),
        ("counters_ok", ctypes.c_uint64),
    ]


class HartIoStruct(ctypes.Structure):
    """Mirror of `struct emu_hart_io` in budget.c: the native switch and slice runner."""

    _fields_ = [
        ("uc", ctypes.c_void_p),
        ("budget", ctypes.c_void_p),
        ("context_restore", ctypes.c_void_p),
        ("reg_read", ctypes.c_void_p),
        ("reg_write", ctypes.c_void_p),
        ("tlb_switch", ctypes.c_void_p),
        ("emu_start", ctypes.c_void_p),
        ("reg_priv", ctypes.c_int32),
        ("reg_mip", ctypes.c_int32),
        ("reg_pc", ctypes.c_int32),
        ("pad", ctypes.c_int32),
        ("priv_m", ctypes.c_uint64),
        ("mip_keep", ctypes.c_uint64),
        ("until", ctypes.c_uint64),
        ("pc", ctypes.c_uint64),
        ("priv", ctypes.c_uint64),
    ]


UART_TX_MAX = 4096


class UartFastStruct(ctypes.Structure):
    """Mirror of `struct emu_uart_fast` in uart_fast.c."""

    _fields_ = [
        ("fast", ctypes.c_uint64),
        ("rx_ready", ctypes.c_uint64),
        ("accesses", ctypes.c_uint64),
        ("events", ctypes.c_void_p),
        ("read", ctypes.c_void_p),
        ("write", ctypes.c_void_p),
        ("tx_len", ctypes.c_uint64),
        ("tx", ctypes.c_uint8 * UART_TX_MAX),
    ]


class SpinStruct(ctypes.Structure):
    """Mirror of `struct emu_spin` in budget.c: one hart's time-polling state."""

    _fields_ = [
        ("last_pc", ctypes.c_uint64),
        ("last_bytes", ctypes.c_int64),
        ("count", ctypes.c_int64),
        ("reads", ctypes.c_uint64),
        ("skipped_bytes", ctypes.c_int64),
    ]


class ClockStruct(ctypes.Structure):
    """Mirror of `struct emu_clock` in budget.c: what the native time CSR reads."""

    _fields_ = [
        ("hart_base", ctypes.c_int64),
        ("slice_budget", ctypes.c_int64),
        ("last_read", ctypes.c_int64),
        ("bytes_per_tick", ctypes.c_int64),
        ("skipped_bytes", ctypes.c_int64),
        ("spin_threshold", ctypes.c_int64),
        ("spin_gap", ctypes.c_int64),
        ("skip_max", ctypes.c_int64),
        ("budget", ctypes.POINTER(BudgetStruct)),
        ("spin", ctypes.POINTER(SpinStruct)),
    ]


def _cache_dir() -> Path:
    base = os.environ.get("EMU_CACHE_DIR") or os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emu" / "native"


def library_path() -> Path:
    """Path of the compiled helpers (every .c file here, one library), built if missing or stale."""
    sources = sorted(_DIR.glob("*.c"))
    digest = sha256(b"".join(p.name.encode() + p.read_bytes() for p in sources)).hexdigest()[:16]
    out = _cache_dir() / f"libemu_native-{digest}.so"
    if out.exists():
        return out
    import shutil  # building happens once per source change: keep start-up light
    import subprocess
    import tempfile

    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise EmuError("no C compiler found (install gcc): emu builds a small native helper on first use")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
    os.close(fd)
    res = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp, *map(str, sources)], capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        raise EmuError(f"building the native helper failed: {res.stderr.strip().splitlines()[-1] if res.stderr else cc}")
    os.replace(tmp, out)
    return out


_lib: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    global _lib  # noqa: PLW0603 - process-wide cache of a loaded shared library
    if _lib is None:
        _lib = ctypes.CDLL(str(library_path()))
    return _lib
