"""The x86_64 registers as GDB sees them (i386:x86-64): the target description, reading
and writing by GDB's numbers (amd64's: rax..r15 0-15, rip 16, eflags 17, cs..gs 18-23,
st0-7 24-31, the x87 control registers 32-39, xmm0-15 40-55, mxcsr 56, then fs_base and
gs_base), the `g` block, the CPU mode and the page-table root memory goes through.  The
GDB stub (emu/debug/stub.py) asks the CPU adapter for these and knows no architecture.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from unicorn import x86_const as X

from emu.cpu.gdbview import GdbRegisterView

if TYPE_CHECKING:
    from emu.cpu.x86_64.cpu import X86Cpu

GPRS = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + [f"r{i}" for i in range(8, 16)]
SEGS = ["cs", "ss", "ds", "es", "fs", "gs"]
X87_CTRL = ["fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop"]
UC_GPRS = [X.UC_X86_REG_RAX, X.UC_X86_REG_RBX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RSI,
           X.UC_X86_REG_RDI, X.UC_X86_REG_RBP, X.UC_X86_REG_RSP] + [getattr(X, f"UC_X86_REG_R{i}") for i in range(8, 16)]
UC_SEGS = [X.UC_X86_REG_CS, X.UC_X86_REG_SS, X.UC_X86_REG_DS, X.UC_X86_REG_ES, X.UC_X86_REG_FS, X.UC_X86_REG_GS]
UC_X87_CTRL = {32: X.UC_X86_REG_FPCW, 33: X.UC_X86_REG_FPSW, 34: X.UC_X86_REG_FPTAG, 38: X.UC_X86_REG_FOP}
RIP, EFLAGS, FIRST_SEG, FIRST_ST, FIRST_X87_CTRL, FIRST_XMM, MXCSR, FS_BASE, GS_BASE = 16, 17, 18, 24, 32, 40, 56, 57, 58
CR0_PE, CR0_PG = 1, 1 << 31
EFER_LMA = 1 << 10
MSR_EFER = 0xC000_0080


def reg_size(num: int) -> int:
    """Bytes of register `num` in GDB's packets."""
    if num < RIP or num in (RIP, FS_BASE, GS_BASE):
        return 8
    if FIRST_ST <= num < FIRST_X87_CTRL:
        return 10
    if FIRST_XMM <= num < MXCSR:
        return 16
    return 4


@cache
def target_xml() -> str:
    def reg(name: str, num: int, bits: int, kind: str, group: str = "") -> str:
        extra = f' group="{group}"' if group else ""
        return f'<reg name="{name}" bitsize="{bits}" regnum="{num}" type="{kind}"{extra}/>'

    core = "".join(reg(n, i, 64, "data_ptr" if n in ("rbp", "rsp") else "int64") for i, n in enumerate(GPRS))
    core += reg("rip", RIP, 64, "code_ptr") + reg("eflags", EFLAGS, 32, "i386_eflags")
    core += "".join(reg(n, FIRST_SEG + i, 32, "int32") for i, n in enumerate(SEGS))
    core += "".join(reg(f"st{i}", FIRST_ST + i, 80, "i387_ext") for i in range(8))
    core += "".join(reg(n, FIRST_X87_CTRL + i, 32, "int", "float") for i, n in enumerate(X87_CTRL))
    sse = "".join(reg(f"xmm{i}", FIRST_XMM + i, 128, "vec128") for i in range(16))
    sse += reg("mxcsr", MXCSR, 32, "i386_mxcsr", "vector")
    segments = reg("fs_base", FS_BASE, 64, "int") + reg("gs_base", GS_BASE, 64, "int")
    flags = ('<flags id="i386_eflags" size="4"><field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>'
             '<field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/><field name="ZF" start="6" end="6"/>'
             '<field name="SF" start="7" end="7"/><field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>'
             '<field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/></flags>')
    mxcsr = ('<flags id="i386_mxcsr" size="4"><field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/>'
             '<field name="ZE" start="2" end="2"/><field name="OE" start="3" end="3"/><field name="UE" start="4" end="4"/>'
             '<field name="PE" start="5" end="5"/></flags>')
    vec = ('<vector id="v4f" type="ieee_single" count="4"/><vector id="v2d" type="ieee_double" count="2"/>'
           '<vector id="v16i8" type="int8" count="16"/><vector id="v8i16" type="int16" count="8"/>'
           '<vector id="v4i32" type="int32" count="4"/><vector id="v2i64" type="int64" count="2"/>'
           '<union id="vec128"><field name="v4_float" type="v4f"/><field name="v2_double" type="v2d"/>'
           '<field name="v16_int8" type="v16i8"/><field name="v8_int16" type="v8i16"/>'
           '<field name="v4_int32" type="v4i32"/><field name="v2_int64" type="v2i64"/>'
           '<field name="uint128" type="uint128"/></union>')
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0">'
            "<architecture>i386:x86-64</architecture>"
            f'<feature name="org.gnu.gdb.i386.core">{flags}{core}</feature>'
            f'<feature name="org.gnu.gdb.i386.sse">{vec}{mxcsr}{sse}</feature>'
            f'<feature name="org.gnu.gdb.i386.segments">{segments}</feature>'
            "</target>")


class X86GdbRegisters(GdbRegisterView):
    """The loaded CPU's registers by GDB number (the caller loads the CPU: cpu.inspect)."""

    xml = staticmethod(target_xml)
    cpu: "X86Cpu"

    def reg_size(self, num: int) -> int:
        return reg_size(num)

    def _uc_reg(self, num: int) -> int | None:
        if num < RIP:
            return UC_GPRS[num]
        if num == RIP:
            return X.UC_X86_REG_RIP
        if num == EFLAGS:
            return X.UC_X86_REG_EFLAGS
        if FIRST_SEG <= num < FIRST_ST:
            return UC_SEGS[num - FIRST_SEG]
        if FIRST_XMM <= num < MXCSR:
            return X.UC_X86_REG_XMM0 + num - FIRST_XMM
        return {MXCSR: X.UC_X86_REG_MXCSR, FS_BASE: X.UC_X86_REG_FS_BASE, GS_BASE: X.UC_X86_REG_GS_BASE,
                **UC_X87_CTRL}.get(num)

    def read(self, num: int) -> int | None:
        if FIRST_ST <= num < FIRST_X87_CTRL:
            mantissa, exponent = self.cpu.uc.reg_read(X.UC_X86_REG_FP0 + num - FIRST_ST)
            return mantissa | exponent << 64
        if FIRST_X87_CTRL <= num < FIRST_XMM and num not in UC_X87_CTRL:
            return 0  # x87 instruction and operand pointers: not kept by the model
        reg = self._uc_reg(num)
        if reg is None:
            return None
        return self.cpu.uc.reg_read(reg) & ((1 << (8 * reg_size(num))) - 1)

    def write(self, num: int, value: int) -> bool:
        if FIRST_ST <= num < FIRST_XMM and num not in UC_X87_CTRL:
            return False
        reg = self._uc_reg(num)
        if reg is None:
            return False
        self.cpu.uc.reg_write(reg, value)
        return True

    def read_block(self) -> bytes:
        return b"".join((self.read(i) or 0).to_bytes(reg_size(i), "little") for i in range(GS_BASE + 1))

    def write_block(self, raw: bytes) -> None:
        off = 0
        for i in range(FIRST_ST):  # the general, rip, eflags and segment registers
            n = reg_size(i)
            if off + n > len(raw):
                return
            if i < FIRST_SEG:
                self.write(i, int.from_bytes(raw[off:off + n], "little"))
            off += n

    def mode_name(self) -> str:
        """The CPU mode and privilege, as thread info shows it (`long CPL0`)."""
        cpu = self.cpu
        if not cpu.rreg(X.UC_X86_REG_CR0) & CR0_PE:
            return "real"
        mode = "long" if cpu.uc.msr_read(MSR_EFER) & EFER_LMA else "protected"
        return f"{mode} CPL{cpu.rreg(X.UC_X86_REG_CS) & 3}"

    def translation(self) -> int:
        """The page-table root (CR3) a data access of the CPU goes through (0: paging off)."""
        if not self.cpu.rreg(X.UC_X86_REG_CR0) & CR0_PG:
            return 0
        return self.cpu.rreg(X.UC_X86_REG_CR3)
