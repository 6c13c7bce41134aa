"""The riscv64 target description GDB reads with qXfer:features:read.

Register numbers follow GDB's riscv numbering: x0-x31 = 0-31, pc = 32, f0-f31 = 33-64,
CSR n = 65 + n, and the virtual `priv` register after the CSRs.
"""
from __future__ import annotations

from functools import cache

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
