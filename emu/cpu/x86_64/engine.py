"""The x86 part of emu's engine patch (patches/unicorn/README.md, x86), through ctypes:
a CPU's state outside the context blob, its interrupt line, INIT/SIPI, the virtual TSC's
factor and the MSR callback, and the context/TLB calls of a CPU switch."""
from __future__ import annotations

import ctypes
from typing import Callable

from unicorn import UcError
from unicorn.unicorn_py3.unicorn import uclib

MSR_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.POINTER(ctypes.c_uint64))


class CpuState(ctypes.Structure):
    """Mirror of `struct emu_x86_cpu` in the engine patch (a CPU's state outside the
    context blob, kept in its TLB set)."""

    _fields_ = [("irq", ctypes.c_int32), ("taken", ctypes.c_int32), ("apic_id", ctypes.c_uint32),
                ("halted", ctypes.c_uint32), ("irqs", ctypes.c_uint64)]


def _fn(name: str, argtypes: list) -> Callable[..., int]:
    f = getattr(uclib, name)
    f.argtypes, f.restype = argtypes, ctypes.c_int
    return f


class X86Engine:
    """The x86 calls for one `Uc` handle."""

    def __init__(self, handle: int, tsc_per_tick: int, on_msr: Callable[[int, int, int, object], int]) -> None:
        self._h = handle
        self._cpu_state = _fn("uc_emu_cpu_state", [ctypes.c_void_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)])
        self._irq_update = _fn("uc_emu_irq_update", [ctypes.c_void_p])
        self._init_sipi = _fn("uc_emu_init_sipi", [ctypes.c_void_p, ctypes.c_int])
        self._context_restore = _fn("uc_context_restore", [ctypes.c_void_p, ctypes.c_void_p])
        self._context_save = _fn("uc_context_save", [ctypes.c_void_p, ctypes.c_void_p])
        self._tlb_switch = _fn("uc_emu_tlb_switch", [ctypes.c_void_p, ctypes.c_void_p])
        setup = _fn("uc_emu_x86_setup", [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_void_p, ctypes.c_void_p])
        self._msr_cb = MSR_FN(on_msr)  # kept alive: the engine holds its address
        _check(setup(handle, tsc_per_tick, ctypes.cast(self._msr_cb, ctypes.c_void_p), None))

    def cpu_state(self, tlb_set: int) -> CpuState:
        """The engine-side state of the CPU owning `tlb_set` (live: the engine's memory)."""
        out = ctypes.c_void_p()
        _check(self._cpu_state(self._h, tlb_set, ctypes.byref(out)))
        return CpuState.from_address(out.value or 0)

    def load(self, blob: int, tlb_set: int) -> None:
        """A CPU switch: its context, then its TLB set, APIC ID and interrupt line."""
        _check(self._context_restore(self._h, blob))
        _check(self._tlb_switch(self._h, tlb_set))

    def save(self, blob: int) -> None:
        _check(self._context_save(self._h, blob))

    def irq_update(self) -> None:
        """The loaded CPU's offered vector changed: raise or drop its interrupt line."""
        self._irq_update(self._h)

    def init_sipi(self, vector: int) -> None:
        """INIT, then SIPI to `vector` (real mode at vector << 12), on the loaded CPU."""
        _check(self._init_sipi(self._h, vector))


def _check(err: int) -> None:
    if err:
        raise UcError(err)
