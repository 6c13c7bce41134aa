"""Offsets into Unicorn 2.1.4's riscv64 CPU-context blob, and their start-up self-test.

The blob (`uc_context`) is a 40-byte header followed by QEMU's CPURISCVState.  The
adapter reads `badaddr` (the faulting address, which Unicorn does not put in stval)
and writes `mhartid` (read-only through the API) there.  These offsets are specific to
the Unicorn version, so the machine refuses to start when the self-test disagrees.
"""
from __future__ import annotations

import ctypes

import unicorn
from unicorn import UcError
from unicorn.riscv_const import (
    UC_RISCV_REG_A0,
    UC_RISCV_REG_MHARTID,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_PRIV,
    UC_RISCV_REG_SATP,
)

from emu.errors import EmuError

UNICORN_VERSION = "2.1.4"
OFF_A0 = 120
OFF_PC = 552
OFF_BADADDR = 584
OFF_MHARTID = 656


def blob_address(ctx: unicorn.UcContext) -> int:
    return ctypes.cast(ctx.context, ctypes.c_void_p).value or 0


def blob_u64(ctx: unicorn.UcContext, offset: int) -> ctypes.c_uint64:
    """A live view of one 64-bit field of a saved context."""
    return ctypes.c_uint64.from_address(blob_address(ctx) + offset)


def self_test(uc: unicorn.Uc, scratch: int) -> None:
    """Check the blob offsets on `uc`, using one page of RAM at `scratch` (clobbered).

    Runs an S-mode fetch under an empty Sv39 table: the instruction page fault must put
    the address into `badaddr`.  Raises EmuError with a clear message on mismatch.
    """
    if unicorn.__version__ != UNICORN_VERSION:
        raise EmuError(f"emu needs unicorn=={UNICORN_VERSION} (found {unicorn.__version__}): CPU-context offsets differ")
    problems: list[str] = []
    uc.reg_write(UC_RISCV_REG_A0, 0x1122334455667788)
    uc.reg_write(UC_RISCV_REG_PC, 0x80001234)
    ctx = uc.context_save()
    if blob_u64(ctx, OFF_A0).value != 0x1122334455667788:
        problems.append("a0")
    if blob_u64(ctx, OFF_PC).value != 0x80001234:
        problems.append("pc")
    blob_u64(ctx, OFF_MHARTID).value = 5
    uc.context_restore(ctx)
    uc.reg_write(UC_RISCV_REG_PRIV, 3)
    if uc.reg_read(UC_RISCV_REG_MHARTID) != 5:
        problems.append("mhartid")
    # Instruction page fault at `target`: empty root table at `scratch`.
    uc.mem_write(scratch, bytes(4096))
    target = scratch + 0x10_0000
    seen: list[int] = []

    def on_intr(uc: unicorn.Uc, intno: int, _ud: object) -> None:
        seen.append(intno)
        seen.append(blob_u64(uc.context_save(), OFF_BADADDR).value)
        uc.emu_stop()

    hook = uc.hook_add(unicorn.UC_HOOK_INTR, on_intr)
    uc.reg_write(UC_RISCV_REG_PRIV, 1)
    uc.reg_write(UC_RISCV_REG_SATP, (8 << 60) | (scratch >> 12))
    try:
        uc.emu_start(target, 0, count=1)
    except UcError:
        pass
    uc.hook_del(hook)
    uc.reg_write(UC_RISCV_REG_SATP, 0)
    uc.reg_write(UC_RISCV_REG_PRIV, 3)
    if seen[:2] != [12, target]:
        problems.append("badaddr")
    if problems:
        raise EmuError(
            f"this Unicorn build does not match the CPU-context layout emu relies on ({', '.join(problems)}); "
            f"install unicorn=={UNICORN_VERSION}"
        )
