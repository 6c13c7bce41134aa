"""Build small guest programs with Debian's binutils and run them on an in-process Machine.

Every program gets `prelude.S` first: a boot entry that sets up per-hart stacks and a
generic trap handler recording (scause, sepc, stval) for each trap into `rec`, so a
test asserts on exactly what the guest saw.
"""
from __future__ import annotations

import sys
import shutil
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from emu.board import BoardSpec
from emu.machine import Machine, MachineOptions, RunResult
from loader.image import KernelImage, load_kernel

AS = shutil.which("riscv64-unknown-elf-as") or shutil.which("riscv64-linux-gnu-as")
LD = shutil.which("riscv64-unknown-elf-ld") or shutil.which("riscv64-linux-gnu-ld")
PRELUDE = Path(__file__).with_name("prelude.S")

# The SBI HSM extension, and the guest start every two-hart test shares: hart 0 starts hart 1 at
# `_start` (a0 = 1) and goes on; hart 1 branches to the test's `hart1` label.
SBI_HSM = 0x48534D
START_HART1 = f"""
main:
    bnez a0, hart1
    li a0, 1
    la a1, _start
    li a2, 0
    SBI {SBI_HSM}, 0
"""

needs_binutils = pytest.mark.skipif(AS is None or LD is None,
                                    reason="riscv64 binutils missing: apt-get install binutils-riscv64-unknown-elf")


def build(asm: str, workdir: Path, name: str = "guest") -> Path:
    """Assemble PRELUDE + `asm`, link at 0x8020_0000, return the ELF path."""
    src = workdir / f"{name}.S"
    src.write_text(PRELUDE.read_text() + "\n" + asm + "\n")
    obj = workdir / f"{name}.o"
    elf = workdir / f"{name}.elf"
    subprocess.run([AS, "-march=rv64imafdc_zicsr_zifencei", "-o", str(obj), str(src)], check=True,
                   capture_output=True, text=True)
    subprocess.run([LD, "-Ttext=0x80200000", "-o", str(elf), str(obj)], check=True, capture_output=True, text=True)
    return elf


@dataclass
class Run:
    machine: Machine
    result: RunResult
    kernel: KernelImage

    @property
    def console(self) -> bytes:
        log = self.machine.console.log
        return bytes(log or b"")

    def sym(self, name: str) -> int:
        return self.kernel.symbols.by_name[name]

    def u64(self, addr: int) -> int:
        data = self.machine.cpu.read_phys(addr, 8)
        assert data is not None
        return struct.unpack("<Q", data)[0]

    def word(self, name: str, index: int = 0) -> int:
        return self.u64(self.sym(name) + 8 * index)

    def traps(self) -> list[tuple[int, int, int]]:
        """Recorded (scause, sepc, stval) in order."""
        base = self.sym("rec")
        count = self.u64(base)
        return [tuple(self.u64(base + 8 + 32 * i + 8 * k) for k in range(3)) for i in range(count)]  # type: ignore[misc]


def run(elf: Path, harts: int = 1, stdin: int | None = None, timeout: float = 20.0, **board: object) -> Run:
    spec = BoardSpec(harts=harts, ram_size=64 << 20, **board)  # type: ignore[arg-type]
    kernel = load_kernel(elf, spec.ram.base, spec.ram.size)
    opts = MachineOptions(quantum=10_000, timeout=timeout, stdin=stdin, stdout=None, capture=True,
                          report=sys.stderr)
    m = Machine(spec, kernel, None, opts)
    return Run(m, m.run(), kernel)
