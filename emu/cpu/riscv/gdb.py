"""The riscv64 registers as GDB sees them: the target description (qXfer:features:read),
reading and writing by GDB's numbers, the `g`/`G` block, the privilege mode and the page
table a memory access goes through.  The GDB stub (emu/debug/stub.py) asks the CPU adapter
for these and knows no architecture.

Register numbers follow GDB's riscv numbering: x0-x31 = 0-31, pc = 32, f0-f31 = 33-64,
CSR n = 65 + n, and the virtual `priv` register after the CSRs.
"""
from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from unicorn.riscv_const import (
    UC_RISCV_REG_F0,
    UC_RISCV_REG_FCSR,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_PRIV,
    UC_RISCV_REG_SATP,
    UC_RISCV_REG_SCAUSE,
    UC_RISCV_REG_SEPC,
    UC_RISCV_REG_SIE,
    UC_RISCV_REG_SIP,
    UC_RISCV_REG_SSCRATCH,
    UC_RISCV_REG_SSTATUS,
    UC_RISCV_REG_STVAL,
    UC_RISCV_REG_STVEC,
    UC_RISCV_REG_X0,
)

from emu.cpu.gdbview import GdbRegisterView

if TYPE_CHECKING:
    from emu.cpu.riscv.cpu import RiscvCpu

FIRST_CSR = 65
PRIV_REGNUM = FIRST_CSR + 4096
ABI = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "fp", "s1"] + [f"a{i}" for i in range(8)] + \
    [f"s{i}" for i in range(2, 12)] + [f"t{i}" for i in range(3, 7)]
FP_ABI = [f"ft{i}" for i in range(8)] + ["fs0", "fs1"] + [f"fa{i}" for i in range(8)] + \
    [f"fs{i}" for i in range(2, 12)] + [f"ft{i}" for i in range(8, 12)]
CSR_REGS = {0x001: "fflags", 0x002: "frm", 0x003: "fcsr", 0x100: "sstatus", 0x104: "sie", 0x105: "stvec",
            0x140: "sscratch", 0x141: "sepc", 0x142: "scause", 0x143: "stval", 0x144: "sip", 0x180: "satp"}


@cache
def target_xml() -> str:
    cpu = "".join(f'<reg name="{n}" bitsize="64" regnum="{i}" type="{"code_ptr" if n == "ra" else "data_ptr" if n in ("sp", "gp", "tp", "fp") else "int"}"/>'
                  for i, n in enumerate(ABI))
    cpu += '<reg name="pc" bitsize="64" regnum="32" type="code_ptr"/>'
    fpu = "".join(f'<reg name="{n}" bitsize="64" regnum="{33 + i}" type="ieee_double"/>' for i, n in enumerate(FP_ABI))
    fpu += "".join(f'<reg name="{CSR_REGS[c]}" bitsize="32" regnum="{FIRST_CSR + c}" type="int"/>' for c in (1, 2, 3))
    csr = "".join(f'<reg name="{n}" bitsize="64" regnum="{FIRST_CSR + c}" type="int"/>'
                  for c, n in CSR_REGS.items() if c > 3)
    return ('<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0">'
            "<architecture>riscv:rv64</architecture>"
            f'<feature name="org.gnu.gdb.riscv.cpu">{cpu}</feature>'
            f'<feature name="org.gnu.gdb.riscv.fpu">{fpu}</feature>'
            f'<feature name="org.gnu.gdb.riscv.csr">{csr}</feature>'
            f'<feature name="org.gnu.gdb.riscv.virtual"><reg name="priv" bitsize="64" regnum="{PRIV_REGNUM}" type="int"/></feature>'
            "</target>")


CSR_UC = {0x100: UC_RISCV_REG_SSTATUS, 0x104: UC_RISCV_REG_SIE, 0x105: UC_RISCV_REG_STVEC,
          0x140: UC_RISCV_REG_SSCRATCH, 0x141: UC_RISCV_REG_SEPC, 0x142: UC_RISCV_REG_SCAUSE,
          0x143: UC_RISCV_REG_STVAL, 0x144: UC_RISCV_REG_SIP, 0x180: UC_RISCV_REG_SATP}
PRIV_NAMES = {0: "U", 1: "S", 3: "M"}
GPR_BLOCK = 33  # x0..x31 and pc: the `g` packet
REG_BYTES = 8


class RiscvGdbRegisters(GdbRegisterView):
    """The loaded hart's registers by GDB number (the caller loads the hart: cpu.inspect)."""

    reg_bytes = REG_BYTES
    xml = staticmethod(target_xml)
    cpu: "RiscvCpu"
    watch_stops_before = True

    def read(self, num: int) -> int | None:
        cpu = self.cpu
        if num < 32:
            return cpu.rreg(UC_RISCV_REG_X0 + num)
        if num == 32:
            return cpu.rreg(UC_RISCV_REG_PC)
        if 33 <= num < 65:
            return cpu.rreg(UC_RISCV_REG_F0 + num - 33)
        if num == PRIV_REGNUM:
            return cpu.rreg(UC_RISCV_REG_PRIV)
        csr_no = num - FIRST_CSR
        if csr_no in (1, 2, 3):
            fcsr = cpu.mcsr_read(UC_RISCV_REG_FCSR)
            return {1: fcsr & 0x1F, 2: (fcsr >> 5) & 7, 3: fcsr}[csr_no]
        if csr_no in CSR_UC:
            return cpu.mcsr_read(CSR_UC[csr_no])
        return None

    def write(self, num: int, value: int) -> bool:
        cpu = self.cpu
        if num < 32:
            if num:
                cpu.wreg(UC_RISCV_REG_X0 + num, value)
        elif num == 32:
            cpu.wreg(UC_RISCV_REG_PC, value)
        elif 33 <= num < 65:
            cpu.wreg(UC_RISCV_REG_F0 + num - 33, value)
        elif num - FIRST_CSR in CSR_UC:
            cpu.mcsr_write(CSR_UC[num - FIRST_CSR], value)
        else:
            return False
        return True

    def read_block(self) -> bytes:
        return b"".join((self.read(i) or 0).to_bytes(REG_BYTES, "little") for i in range(GPR_BLOCK))

    def write_block(self, raw: bytes) -> None:
        for i in range(1, min(GPR_BLOCK, len(raw) // REG_BYTES)):
            self.write(i, int.from_bytes(raw[REG_BYTES * i:REG_BYTES * (i + 1)], "little"))

    def mode_name(self) -> str:
        """The privilege mode, as thread info shows it (`S-mode`)."""
        return f"{PRIV_NAMES.get(self.cpu.rreg(UC_RISCV_REG_PRIV), '?')}-mode"

    def translation(self) -> int:
        """The page-table root a data access of the hart goes through now (0: physical)."""
        if self.cpu.rreg(UC_RISCV_REG_PRIV) == 3:
            return 0
        return self.cpu.mcsr_read(UC_RISCV_REG_SATP)

    def insn_ending_at(self, end: int, start: int) -> int | None:
        """Instructions are 2 or 4 bytes (the low bits of their first half say which):
        walk from `start`, at most a page."""
        root, pc = self.translation(), start
        while pc < end and end - pc <= 4096:
            half = self.cpu.read_virt(pc, 2, root)
            if half is None:
                return None
            size = 4 if half[0] & 3 == 3 else 2
            if pc + size == end:
                return pc
            pc += size
        return None
