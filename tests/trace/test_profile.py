"""Trace profile expressions: registers by the profile's arch, addresses, memory with an index."""
from __future__ import annotations

import pytest

from emu.cpu.riscv.traceprobe import RiscvTraceProbes
from emu.cpu.x86_64.traceprobe import X86TraceProbes
from emu.errors import EmuError
from emu.trace.profile import Expr, Point, Profile
from emu.trace.tracer import Tracer


@pytest.mark.parametrize("text,expr", [
    ("s11", Expr("s11")),
    ("r15", Expr("r15")),
    ("rbx+0x4c", Expr("rbx", offset=0x4C)),  # an address: the register plus an offset, no memory read
    ("sp - 16", Expr("sp", offset=-16)),
    ("[s11-4]:4", Expr("s11", True, -4, 4)),
    ("[sp+712]", Expr("sp", True, 712, 8)),
    ("[r14+rbp+0x38]", Expr("r14", True, 0x38, 8, "rbp")),  # x86's base + index + displacement
    ("[ r14 + rbp ]:2", Expr("r14", True, 0, 2, "rbp")),
])
def test_expressions(text, expr):
    assert Expr.parse(text) == expr


@pytest.mark.parametrize("text", ["", "[a0", "a0+", "[a0+8]:3", "[a0+a1+a2]", "8", "a0*2"])
def test_bad_expressions_are_one_line_errors(text):
    with pytest.raises(EmuError, match="bad expression"):
        Expr.parse(text)


class _Probe:
    def __init__(self, probes) -> None:
        self.registers = probes.registers


def _tracer(probes) -> Tracer:
    t = Tracer.__new__(Tracer)  # only the register check: no machine
    t.probe = _Probe(probes)
    return t


def test_registers_are_the_adapters():
    """A profile names its arch's registers; the CPU adapter's probes say which exist, so an
    x86 register in a riscv profile (or a typo) is a one-line error before the run."""
    x86 = Profile("p", [], [], [Point("submit", Expr.parse("[r14+rbp+8]"), {"num": Expr.parse("[r15-4]:4")})], [],
                  arch="x86_64")
    _tracer(X86TraceProbes)._check_registers(x86)
    with pytest.raises(EmuError, match=r"unknown x86_64 register 'r14'.*submit"):
        _tracer(RiscvTraceProbes)._check_registers(Profile("p", [], [], x86.points, [], arch="x86_64"))
    rv = Profile("p", [], [], [Point("pickup", Expr.parse("fp"), {"n": Expr.parse("[s11-4]:4")})], [])
    _tracer(RiscvTraceProbes)._check_registers(rv)
    assert X86TraceProbes.registers["r15"] == 15 and X86TraceProbes.registers["rsp"] == 4
    assert RiscvTraceProbes.registers["s11"] == 27 and RiscvTraceProbes.registers["fp"] == 8
