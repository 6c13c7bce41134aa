"""x86_64 floating-point exception flags: what SSE and x87 operations leave in MXCSR and
the x87 status word, as libc's `fetestexcept` reads them (musl: `stmxcsr` | `fnstsw`).

Unicorn's QEMU 5.0 x86 kept SSE flags in softfloat's status and never copied them into
MXCSR, and raised no x87 flag but zero-divide; the patched engine backports QEMU 5.1/5.2's
flag handling and its softfloat fprem/fprem1 (patches/unicorn/README.md).  Every flag is
masked (the reset MXCSR and control word), so no operation may trap (#XM, #MF) either.
One guest run stores every case's result; the tests read them back by name.
"""
from __future__ import annotations

import struct
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest
from unicorn import x86_const as X

from tests.cpu.x86_64.x86guest import Run, build, needs_x86, run

pytestmark = needs_x86

IE, DE, ZE, OE, UE, PE = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
MASKED = 0x1F80  # MXCSR at reset: every exception masked, round to nearest
FTZ, DAZ = 0x8000, 0x0040
INDEFINITE = 0x8000_0000_0000_0000
I63 = 2**63 - 1  # exact in the x87's 64-bit significand, not in a double's 53
C0, C1, C2, C3 = 0x0100, 0x0200, 0x0400, 0x4000

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
    ("log2(-1)", "fld1; fld qword ptr [rip + minus1]; fyl2x", IE),
]


def _atan_inv(n: int) -> Decimal:
    """atan(1/n) by its series (Machin's formula needs n = 5 and 239)."""
    x, total, k = Decimal(1) / n, Decimal(0), 0
    term = x
    while term > Decimal(10) ** -60:
        total += term / (2 * k + 1) * (-1) ** k
        k += 1
        term = x ** (2 * k + 1)
    return total


getcontext().prec = 60
LN2 = Decimal(2).ln()
# (name, instructions leaving one result in st(0), its exact value): the x87's
# transcendental instructions, each given exactly representable arguments
X87_MATH = [
    ("f2xm1(0.5)", "fld qword ptr [rip + half]; f2xm1", Decimal(2).sqrt() - 1),
    ("fyl2x(10, 1)", "fld1; fild qword ptr [rip + ten]; fyl2x", Decimal(10).ln() / LN2),
    ("fyl2xp1(0.25, 1)", "fld1; fld qword ptr [rip + quarter]; fyl2xp1", Decimal("1.25").ln() / LN2),
    ("fpatan(1, 1)", "fld1; fld1; fpatan", 4 * _atan_inv(5) - _atan_inv(239)),  # pi/4
]


def _significand(x: Decimal) -> tuple[int, int]:
    """(unbiased exponent, 64-bit significand rounded to nearest) of a positive x."""
    f = Fraction(x)
    e = f.numerator.bit_length() - f.denominator.bit_length()
    if f < Fraction(2) ** e:
        e -= 1
    return e, round(f / Fraction(2) ** (e - 63))


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
        # fprem / fprem1 on a 64-bit significand: the remainder and the quotient's low bits
        "    fninit", "    fild qword ptr [rip + ten]", "    fild qword ptr [rip + i63]", "    fprem",
        "    fnstsw ax", "    mov [rip + fprem_sw], ax", "    fistp qword ptr [rip + fprem_result]",
        "    fninit", "    fild qword ptr [rip + ten]", "    fild qword ptr [rip + i63]", "    fprem1",
        "    fnstsw ax", "    mov [rip + fprem1_sw], ax", "    fistp qword ptr [rip + fprem1_result]",
        *[line for i, (_name, insns, _value) in enumerate(X87_MATH)
          for line in ("    fninit", f"    {insns}", f"    fstp tbyte ptr [rip + math_out + {16 * i}]")],
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
        "qnan: .quad 0x7FF8000000000000", "ten: .quad 10", "half: .double 0.5", "quarter: .double 0.25", f"i63: .quad {I63}",
        "fmax: .long 0x7F7FFFFF", "ftwo: .float 2.0",
        "mx_load: .long 0",
        "    .align 8",
        "cvt_result: .quad 0", "ftz_result: .quad 0", "daz_result: .quad 0", "scratch: .quad 0",
        "fprem_result: .quad 0", "fprem1_result: .quad 0", "fprem_sw: .word 0", "fprem1_sw: .word 0",
        "    .align 8",
        f"sse_out: .fill {len(SSE_CASES)}, 4, 0",
        f"x87_out: .fill {len(X87_CASES)}, 2, 0",
        "    .align 16",
        "fx_area: .fill 512, 1, 0",
        f"math_out: .fill {16 * len(X87_MATH)}, 1, 0",
        "env_area: .fill 28, 1, 0",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One run of every case: what the guest stored, read back by name."""
    r = run(build(_program(), tmp_path_factory.mktemp("fpu")))
    assert r.result.exit_code == 0, r.result.reason
    return r


def mem(r: Run, name: str, offset: int, size: int) -> int:
    data = r.machine.cpu.read_phys(r.sym(name) + offset, size)
    assert data is not None
    return int.from_bytes(data, "little")


def test_no_masked_exception_traps(guest):
    assert guest.records() == []  # every exception masked: no #XM, no #MF


def test_sse_flags_in_stmxcsr_fxsave_and_the_register(guest):
    got = {name: mem(guest, "sse_out", 4 * i, 4) for i, (name, *_rest) in enumerate(SSE_CASES)}
    assert got == {name: (mxcsr & ~0x3F) | flags for name, mxcsr, _insns, flags in SSE_CASES}
    assert mem(guest, "cvt_result", 0, 8) == INDEFINITE
    assert mem(guest, "ftz_result", 0, 8) == 0  # flushed to zero by MXCSR.FTZ, not left denormal
    assert struct.unpack("<d", struct.pack("<Q", mem(guest, "daz_result", 0, 8)))[0] == 1.0
    assert mem(guest, "fx_area", 24, 4) == MASKED | IE  # fxsave's MXCSR field
    assert guest.machine.cpu.rreg(X.UC_X86_REG_MXCSR) == MASKED | ZE  # emu's (and GDB's) register read


def test_x87_flags_in_fnstsw_and_fnstenv(guest):
    got = {name: mem(guest, "x87_out", 2 * i, 2) & 0x3F for i, (name, *_rest) in enumerate(X87_CASES)}
    assert got == {name: flags for name, _insns, flags in X87_CASES}
    assert mem(guest, "env_area", 4, 2) & 0x3F == IE  # fnstenv's status word


def test_fprem_and_fprem1_keep_a_long_double_significand(guest):
    # fprem truncates the quotient, fprem1 rounds it; C0, C3, C1 are its bits 2, 1, 0
    q, q1 = I63 // 10, (I63 + 5) // 10
    assert (mem(guest, "fprem_result", 0, 8), mem(guest, "fprem1_result", 0, 8)) == (I63 - 10 * q,
                                                                                   (I63 - 10 * q1) % 2**64)
    cc = C0 | C1 | C2 | C3
    assert mem(guest, "fprem_sw", 0, 2) & cc == C0 * (q >> 2 & 1) | C3 * (q >> 1 & 1) | C1 * (q & 1)
    assert mem(guest, "fprem1_sw", 0, 2) & cc == C0 * (q1 >> 2 & 1) | C3 * (q1 >> 1 & 1) | C1 * (q1 & 1)


def test_x87_transcendentals_are_long_double_accurate(guest):
    """Within one unit in the last place of the 64-bit significand (QEMU 5.0's host doubles
    were off by about 2**11 of them)."""
    for i, (name, _insns, value) in enumerate(X87_MATH):
        sig, sign_exp = mem(guest, "math_out", 16 * i, 8), mem(guest, "math_out", 16 * i + 8, 2)
        exp, want = _significand(value)
        assert sign_exp == exp + 0x3FFF, name
        assert abs(sig - want) <= 1, (name, hex(sig), hex(want))
