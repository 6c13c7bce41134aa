"""A tiny S-mode guest with a shell prompt whose commands end the way broken kernels do,
for `emu test`'s detector verdicts (the reference guest cannot panic or loop on a fault
from its shell).

Prompt `t> `; it echoes the line typed, then acts on its first character:

- `o`: prints `ok` and shows the prompt again;
- `p`: prints a Rust-style kernel panic (`panicked at ...`) and spins, as zCore's panic
  handler does: emu's panic detector stops it (PANIC);
- `f`: points stvec at a load from unmapped memory and takes that load fault for ever
  (FAULT-LOOP, at the symbol `fault_here`);
- `h`: masks every interrupt and waits in wfi with no timer armed (HANG);
- anything else: prints `?` and shows the prompt again.

Console through the legacy SBI calls (putchar 1, getchar 2), one hart.
"""
from __future__ import annotations

from pathlib import Path

from tests.guest import build

PROMPT = "t> "
SOURCE = r"""
main:
    la a0, s_prompt
    call puts
getline:
    li s1, 0                # first character of the line
1:  call getc
    mv s2, a0
    call putc               # echo
    li t0, 10
    beq s2, t0, dispatch
    li t0, 13
    beq s2, t0, 1b
    bnez s1, 1b
    mv s1, s2
    j 1b
dispatch:
    li t0, 'o'
    beq s1, t0, cmd_ok
    li t0, 'p'
    beq s1, t0, cmd_panic
    li t0, 'f'
    beq s1, t0, cmd_fault
    li t0, 'h'
    beq s1, t0, cmd_hang
    beqz s1, main
    la a0, s_what
    call puts
    j main
cmd_ok:
    la a0, s_ok
    call puts
    j main
cmd_panic:
    la a0, s_panic
    call puts
    .globl panic_spin
panic_spin:
    j panic_spin
cmd_fault:
    la t0, fault_here
    csrw stvec, t0
    li t1, 0x40000000       # no memory there: load access fault, taken at fault_here again
    .align 2
    .globl fault_here
fault_here:
    ld t2, 0(t1)
    j fault_here
cmd_hang:
    csrw sie, zero
    csrci sstatus, 2
    .globl hang_wfi
hang_wfi:
    wfi
    j hang_wfi

getc:                       # a0 = next console byte (legacy SBI getchar polls)
    li a7, 2
    ecall
    bltz a0, getc
    ret
putc:                       # a0 = byte
    li a7, 1
    ecall
    ret
puts:                       # a0 = NUL-terminated string
    addi sp, sp, -16
    sd ra, 8(sp)
    sd s0, 0(sp)
    mv s0, a0
1:  lbu a0, 0(s0)
    beqz a0, 2f
    call putc
    addi s0, s0, 1
    j 1b
2:  ld s0, 0(sp)
    ld ra, 8(sp)
    addi sp, sp, 16
    ret

    .section .rodata
s_prompt: .asciz "t> "
s_ok:     .asciz "ok\n"
s_what:   .asciz "?\n"
s_panic:  .asciz "panicked at 'minishell: told to panic', minishell.S:1:1\n"
"""


def build_minishell(workdir: Path) -> Path:
    return build(SOURCE, workdir, "minishell")
