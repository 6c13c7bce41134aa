"""The patched Unicorn engine: emu's additions to Unicorn 2.1.4, reached through ctypes.

emu runs on Unicorn built from its PyPI sdist with `patches/unicorn/emu.patch` (built by
scripts/setup.sh; why and what: patches/unicorn/README.md).  The patch exports a few
functions next to Unicorn's own; this module binds them and refuses to run on a stock
engine, whose hart switches would silently be slower and whose traps and `rdtime` would
take the old Python paths.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

from unicorn.unicorn_py3.unicorn import uclib

from emu.errors import EmuError
from emu.sha import sha256

PATCH_DIR = Path(__file__).resolve().parent.parent.parent / "patches" / "unicorn"


def expected_patch_id() -> str | None:
    """The id setup.sh stamps into the engine it builds from this checkout's patch."""
    patches = sorted(PATCH_DIR.glob("*.patch"))
    if not patches:
        return None  # an installed copy without the source tree
    digest = sha256(b"".join(p.read_bytes() for p in patches)).hexdigest()
    return f"emu-{digest[:12]}"


def loaded_patch_id() -> str | None:
    """The patch id of the loaded libunicorn, or None for a stock engine."""
    fn = getattr(uclib, "uc_emu_patch", None)
    if fn is None:
        return None
    fn.restype = ctypes.c_char_p
    fn.argtypes = []
    return fn().decode()


def require_patched(expected: str | None = None) -> str:
    """Fail with one clear line unless the loaded engine carries this checkout's patch."""
    got = loaded_patch_id()
    want = expected or expected_patch_id()
    if got is None:
        raise EmuError(f"the loaded Unicorn ({uclib._name}) is the stock engine; emu needs its "
                       "patched build: run scripts/setup.sh")
    if want is not None and got != want:
        raise EmuError(f"the loaded Unicorn carries patch {got}, this checkout's is {want}: "
                       "run scripts/setup.sh")
    return got


class Engine:
    """emu's engine extensions for one `Uc` handle."""

    def __init__(self, uc_handle: int) -> None:
        require_patched()
        self._h = uc_handle
        self._tlb_new = _bind("uc_emu_tlb_new", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)])
        self._tlb_switch = _bind("uc_emu_tlb_switch", [ctypes.c_void_p, ctypes.c_void_p])
        self._tlb_flush_page = _bind("uc_emu_tlb_flush_page", [ctypes.c_void_p, ctypes.c_uint64])
        self._set_rdtime = _bind("uc_emu_set_rdtime", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p])
        self._native_traps = _bind("uc_emu_native_traps", [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint32])
        self._budget = _bind("uc_emu_budget", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                                               ctypes.c_void_p, ctypes.c_int])
        self._budget_args: tuple[int, int, int] | None = None
        self._gpr = _bind("uc_emu_gpr", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)])
        self.exact_stops = False
        counts = uclib.uc_emu_native_counts
        counts.argtypes = [ctypes.c_void_p]
        counts.restype = ctypes.POINTER(ctypes.c_uint64 * 64)
        self._counts = counts(uc_handle).contents  # the engine's own array: live counts

    def native_counts_address(self) -> int:
        """Address of the engine's uint64_t[64] native trap counts (for native helpers)."""
        return ctypes.addressof(self._counts)

    def tlb_new(self) -> int:
        """A new, empty TLB set (a hart's softmmu TLB and virtual-pc code cache)."""
        out = ctypes.c_void_p()
        _check(self._tlb_new(self._h, ctypes.byref(out)))
        return out.value or 0

    def tlb_switch(self, tlb_set: int) -> None:
        """Load `tlb_set` into the CPU (the current one is kept in its own set)."""
        self._tlb_switch(self._h, tlb_set)

    def tlb_flush_page(self, vaddr: int) -> None:
        """Flush one page (all MMU modes; 2**64-1: everything) from the loaded hart's TLB,
        in the set of every address space (ASID) it keeps."""
        self._tlb_flush_page(self._h, vaddr)

    def set_rdtime(self, fn_address: int, opaque: int) -> None:
        """Answer the time CSR with a native function `uint64_t fn(void *opaque, uint64_t pc)`."""
        _check(self._set_rdtime(self._h, fn_address, opaque))

    def gpr_address(self) -> int:
        """Address of the CPU's general registers x0..x31 (read in place by native code)."""
        out = ctypes.c_void_p()
        _check(self._gpr(self._h, ctypes.byref(out)))
        return out.value or 0

    def budget(self, budget_and_mark: int, fn_address: int, opaque: int) -> None:
        """Keep the slice budget inline in generated code: at `budget_and_mark`, three
        int64s (budget, mark, anchor).  Each block subtracts its size from the budget and
        calls `void fn(uc, pc, opaque)` when the budget is <= the mark or the block starts
        at the anchor.  Flushes translations."""
        self._budget_args = (budget_and_mark, fn_address, opaque)
        _check(self._budget(self._h, budget_and_mark, fn_address, opaque, int(self.exact_stops)))

    def set_exact_stops(self, exact: bool) -> None:
        """A stop asked for by a memory callback (a watchpoint) takes effect right after
        the access, not at the next block (each load and store then checks).  Flushes
        translations when it changes."""
        if exact != self.exact_stops:
            self.exact_stops = exact
            if self._budget_args:
                self.budget(*self._budget_args)

    def native_traps(self, causes: frozenset[int] | set[int], loop_limit: int) -> None:
        """Enter these exception causes through the guest's own vector when it delegates
        them to S-mode; `loop_limit` identical faults in a row go to the hook instead."""
        _check(self._native_traps(self._h, sum(1 << c for c in causes), loop_limit))

    def native_total(self, causes: frozenset[int]) -> int:
        """Traps of these causes entered natively so far."""
        return sum(self._counts[c] for c in causes)

    def native_counts(self) -> dict[int, int]:
        """Traps entered natively so far, by cause."""
        return {cause: n for cause, n in enumerate(self._counts) if n}


def _bind(name: str, argtypes: list) -> ctypes._CFuncPtr:
    fn = getattr(uclib, name)
    fn.argtypes = argtypes
    fn.restype = ctypes.c_int
    return fn


def _check(err: int) -> None:
    if err:
        from unicorn import UcError

        raise UcError(err)
