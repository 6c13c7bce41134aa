"""Build small x86_64 guest programs with the host's binutils and run them on an
in-process Machine with `--arch x86_64`.

Every program gets prelude.S first (GDT, IDT with one recording handler, TSS, page
tables with a user alias, syscall MSRs, the AP trampoline at 0x8000) and the 256 vector
stubs generated here; a test asserts on what the guest's handler recorded.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from emu.board import BoardSpec
from emu.machine import Machine, MachineOptions
from loader.image import load_kernel
from tests.guest import Run as GuestRun

AS = shutil.which("as") if sys.platform == "linux" and shutil.which("as") else None
LD = shutil.which("ld")
PRELUDE = Path(__file__).with_name("prelude.S")
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
REC_SIZE = 128  # bytes per record in `rec`
FIELDS = ("vector", "error", "rip", "cs", "rflags", "rsp", "ss", "cr2", "hrsp", "cpu")


def _x86_engine_missing() -> str | None:
    """Why x86 guests cannot run here, or None."""
    import platform

    if AS is None or LD is None or platform.machine() != "x86_64":
        return "x86_64 binutils missing (the host's as/ld build the guests)"
    try:
        import unicorn

        unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    except Exception as err:  # noqa: BLE001 - a riscv-only engine raises UcError(ARCH)
        return f"the loaded Unicorn has no x86 engine ({err}): run scripts/setup.sh"
    return None


# CPU 0 starts CPU 1 by INIT then SIPI (vector 8: the prelude's trampoline page) and goes on.
START_CPU1 = """
main:
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4500     # INIT, SIPI: start CPU 1
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4608
"""

needs_x86 = pytest.mark.skipif(_x86_engine_missing() is not None, reason=str(_x86_engine_missing()))


def _stubs() -> str:
    lines = ["    .section .text"]
    for v in range(256):
        lines.append(f"vec{v}:")
        if v not in ERROR_CODE_VECTORS:
            lines.append("    push 0")
        lines += [f"    push {v}", "    jmp vec_common"]
    lines += ["    .section .data", "    .align 8", "vec_table:"]
    lines += [f"    .quad vec{v}" for v in range(256)]
    return "\n".join(lines) + "\n"


def build(asm: str, workdir: Path, name: str = "guest") -> Path:
    """Assemble prelude + stubs + `asm` (intel syntax), link at 1 MiB with the AP
    trampoline at 0x8000; return the ELF path."""
    src = workdir / f"{name}.S"
    if "ap_main:" not in asm:
        asm += "\n    .section .text\nap_main:\n    jmp ap_idle\n"
    src.write_text(PRELUDE.read_text() + _stubs() + "    .section .text\n" + asm + "\n")
    obj = workdir / f"{name}.o"
    elf = workdir / f"{name}.elf"
    for cmd in ([str(AS), "--64", "-o", str(obj), str(src)],
                [str(LD), "-nostdlib", "-static", "-Ttext=0x100000", "--section-start=.tramp=0x8000",
                 "-z", "max-page-size=4096", "-o", str(elf), str(obj)]):
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode:
            raise AssertionError(f"{cmd[0]} failed:\n{res.stderr}")
    return elf


# The prelude's GDT selectors and the user alias of its code and data (prelude.S)
KCODE, KDATA, UCODE, UDATA = 0x08, 0x10, 0x23, 0x1B
USER_ALIAS = 0x4000_0000

# iretq to CPL 3 at `user_code` on `user_stack_top` (their user aliases), interrupts on
ENTER_USER = f"""
    lea rax, [rip + user_code]
    add rax, {USER_ALIAS}
    lea rbx, [rip + user_stack_top]
    add rbx, {USER_ALIAS}
    push {UDATA}
    push rbx
    push 0x202                    # IF on
    push {UCODE}
    push rax
    iretq
"""
# `main` runs `user_code` (what follows this) in user mode; its first fault back in the kernel
# (e.g. a `ud2`) powers the machine off
USER_PROGRAM = f"""
main:
    EXPECT_FAULT 1f
{ENTER_USER}
1:  POWER_OFF
    .globl user_code
user_code:
"""

@dataclass
class Run(GuestRun):
    """A finished x86 guest run: the riscv guests' accessors plus the x86 trap records."""

    def records(self) -> list[dict[str, int]]:
        """What the guest's handler recorded, in order."""
        base = self.sym("rec")
        count = self.u64(base)
        return [{f: self.u64(base + 8 + REC_SIZE * i + 8 * k) for k, f in enumerate(FIELDS)} for i in range(count)]

    def irqs(self, cpu: int, vector: int) -> int:
        return self.u64(self.sym("irq_count") + 8 * (256 * cpu + vector))


def run(elf: Path, cpus: int = 1, timeout: float = 20.0, quantum: int = 10_000, drives: tuple[str, ...] = ()) -> Run:
    spec = BoardSpec(harts=cpus, ram_size=64 << 20, arch="x86_64")
    kernel = load_kernel(elf, spec.ram.base, spec.ram.size, arch="x86_64")
    opts = MachineOptions(quantum=quantum, timeout=timeout, stdout=None, capture=True, report=sys.stderr,
                          drives=list(drives))
    m = Machine(spec, kernel, None, opts)
    return Run(m, m.run(), kernel)
