"""x86_64 floating-point exception flags: what SSE and x87 operations leave in MXCSR and
the x87 status word, as libc's `fetestexcept` reads them (musl: `stmxcsr` | `fnstsw`).

Unicorn's QEMU 5.0 x86 kept SSE flags in softfloat's status and never copied them into
MXCSR, and raised no x87 flag but zero-divide; the patched engine backports QEMU 5.1/5.2's
flag handling (patches/unicorn/README.md).  Every flag is masked (the reset MXCSR and
control word), so no operation may trap (#XM, #MF) either.
"""
from __future__ import annotations

import struct

from unicorn import x86_const as X

from tests.cpu.x86_64.x86guest import build, needs_x86, run

pytestmark = needs_x86

IE, DE, ZE, OE, UE, PE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
MASKED = 0x1F80  # MXCSR at reset: every exception masked, round to nearest
FTZ, DAZ = 0x8000, 0x0040
INDEFINITE = 0x8000_0000_0000_0000

# (name, MXCSR loaded before, instructions, flags expected after), one stmxcsr each
SSE_CASES = [
    ("exact", MASKED, "movsd xmm0, [rip + one]; addsd xmm0, [rip + one]", 0),
    ("0/0", MASKED, "movsd xmm0, [rip + zero]; divsd xmm0, [rip + zero]", IE),
    ("1/0", MASKED, "movsd xmm0, [rip + one]; divsd xmm0, [rip + zero]", ZE),
    ("1/3", MASKED, "movsd xmm0, [rip + one]; divsd xmm0, [rip + three]", PE),
    ("max*2", MASKED, "movsd xmm0, [rip + dmax]; mulsd xmm0, [rip + two]", OE | PE),
    ("float max*2", MASKED, "movss xmm0, [rip + fmax]; mulss xmm0, [rip + ftwo]", OE | PE),
    ("min/3", MASKED, "movsd xmm0, [rip + dmin]; divsd xmm0, [rip + three]", UE | PE),
    ("1+denormal", MASKED, "movsd xmm0, [rip + one]; addsd xmm0, [rip + denorm]", DE | PE),
    ("sqrt(-1)", MASKED, "movsd xmm0, [rip + minus1]; sqrtsd xmm0, xmm0", IE),
    ("cvttsd2si 1e300", MASKED, "cvttsd2si rax, [rip + big]; mov [rip + cvt_result], rax", IE),
    ("comisd qnan", MASKED, "movsd xmm0, [rip + qnan]; comisd xmm0, [rip + one]", IE),
    ("ucomisd qnan", MASKED, "movsd xmm0, [rip + qnan]; ucomisd xmm0, [rip + one]", 0),
    ("sticky", MASKED, "movsd xmm0, [rip + zero]; divsd xmm0, [rip + zero]; "
                       "movsd xmm0, [rip + one]; divsd xmm0, [rip + three]", IE | PE),
    ("ldmxcsr clears", MASKED, "movsd xmm0, [rip + zero]; divsd xmm0, [rip + zero]; "
                               "ldmxcsr [rip + mx_load]", 0),
    ("ldmxcsr sets", MASKED | ZE | DE, "nop", ZE | DE),
    ("FTZ min/3", MASKED | FTZ, "movsd xmm0, [rip + dmin]; divsd xmm0, [rip + three]; "
                                "movsd [rip + ftz_result], xmm0", UE | PE),
    ("DAZ 1+denormal", MASKED | DAZ, "movsd xmm0, [rip + one]; addsd xmm0, [rip + denorm]; "
                                     "movsd [rip + daz_result], xmm0", 0),
]

# (name, instructions, flags expected in the status word), one fnstsw each after fninit
X87_CASES = [
    ("exact", "fld1; fld1; faddp", 0),
    ("0/0", "fldz; fldz; fdivp", IE),
    ("1/0", "fld1; fldz; fdivp", ZE),
    ("1/3", "fld1; fld qword ptr [rip + three]; fdivp", PE),
    ("double max to float", "fld qword ptr [rip + dmax]; fstp dword ptr [rip + scratch]", OE | PE),
    ("double min/3 to float", "fld qword ptr [rip + dmin]; fstp dword ptr [rip + scratch]", UE | PE),
    ("sqrt(-1)", "fld qword ptr [rip + minus1]; fsqrt", IE),
    ("fistp 1e300", "fld qword ptr [rip + big]; fistp qword ptr [rip + scratch]", IE),
    ("fcom qnan", "fld qword ptr [rip + qnan]; fcomp qword ptr [rip + one]", IE),
    ("fucom qnan", "fld qword ptr [rip + qnan]; fld1; fucompp", 0),
    ("fnclex clears", "fldz; fldz; fdivp; fnclex", 0),
]


def _program() -> str:
    lines = ["main:"]
    for i, (_name, mxcsr, insns, _want) in enumerate(SSE_CASES):
        lines += [f"    mov dword ptr [rip + mx_load], {mxcsr:#x}", "    ldmxcsr [rip + mx_load]",
                  f"    mov dword ptr [rip + mx_load], {MASKED:#x}",  # for "ldmxcsr clears"
                  f"    {insns}", f"    stmxcsr [rip + sse_out + {4 * i}]"]
    lines += [
        # fxsave sees the flags an operation left since the last ldmxcsr
        f"    mov dword ptr [rip + mx_load], {MASKED:#x}", "    ldmxcsr [rip + mx_load]",
        "    movsd xmm0, [rip + zero]", "    divsd xmm0, [rip + zero]",
        "    fxsave [rip + fx_area]",
    ]
    for i, (_name, insns, _want) in enumerate(X87_CASES):
        lines += ["    fninit", f"    {insns}", "    fnstsw ax", f"    mov [rip + x87_out + {2 * i}], ax"]
    lines += [
        # fnstenv's status word carries the flags too
        "    fninit", "    fldz", "    fldz", "    fdivp", "    fnstenv [rip + env_area]",
        # leave 1/0 pending in the engine's status: the register read must merge it
        f"    mov dword ptr [rip + mx_load], {MASKED:#x}", "    ldmxcsr [rip + mx_load]",
        "    movsd xmm0, [rip + one]", "    divsd xmm0, [rip + zero]",
        "    POWER_OFF",
        "    .data",
        "    .align 16",
        "zero: .double 0.0", "one: .double 1.0", "two: .double 2.0", "three: .double 3.0",
        "minus1: .double -1.0", "big: .double 1e300",
        "dmax: .quad 0x7FEFFFFFFFFFFFFF", "dmin: .quad 0x0010000000000000", "denorm: .quad 1",
        "qnan: .quad 0x7FF8000000000000",
        "fmax: .long 0x7F7FFFFF", "ftwo: .float 2.0",
        "mx_load: .long 0",
        "    .align 8",
        "cvt_result: .quad 0", "ftz_result: .quad 0", "daz_result: .quad 0", "scratch: .quad 0",
        f"sse_out: .fill {len(SSE_CASES)}, 4, 0",
        f"x87_out: .fill {len(X87_CASES)}, 2, 0",
        "    .align 16",
        "fx_area: .fill 512, 1, 0",
        "env_area: .fill 28, 1, 0",
    ]
    return "\n".join(lines) + "\n"


def test_sse_and_x87_operations_set_the_exception_flags_libc_reads(tmp_path):
    r = run(build(_program(), tmp_path))
    assert r.result.exit_code == 0, r.result.reason
    assert r.records() == []  # every exception masked: no #XM, no #MF

    def mem(name: str, offset: int, size: int) -> int:
        data = r.machine.cpu.read_phys(r.sym(name) + offset, size)
        assert data is not None
        return int.from_bytes(data, "little")

    got = {name: mem("sse_out", 4 * i, 4) for i, (name, *_rest) in enumerate(SSE_CASES)}
    want = {name: (mxcsr & ~0x3F) | flags for name, mxcsr, _insns, flags in SSE_CASES}
    assert got == want
    assert mem("cvt_result", 0, 8) == INDEFINITE
    assert mem("ftz_result", 0, 8) == 0  # flushed to zero by MXCSR.FTZ, not left denormal
    assert struct.unpack("<d", struct.pack("<Q", mem("daz_result", 0, 8)))[0] == 1.0
    assert mem("fx_area", 24, 4) == MASKED | IE  # fxsave's MXCSR field

    got = {name: mem("x87_out", 2 * i, 2) & 0x3F for i, (name, *_rest) in enumerate(X87_CASES)}
    assert got == {name: flags for name, _insns, flags in X87_CASES}
    assert mem("env_area", 4, 2) & 0x3F == IE  # fnstenv's status word

    assert r.machine.cpu.rreg(X.UC_X86_REG_MXCSR) == MASKED | ZE  # emu's (and GDB's) register read
