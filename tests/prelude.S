# Common boot code for tests/cpu guests (S-mode, entered at 0x80200000, a0 = hartid, a1 = dtb).
    .option norvc
    .section .text
    .globl _start
_start:
    mv tp, a0
    la sp, stacks_top
    slli t0, a0, 12
    sub sp, sp, t0
    la t0, trap_stack_top
    slli t1, a0, 8
    sub t0, t0, t1
    csrw sscratch, t0
    la t0, trap
    csrw stvec, t0
    j main

# Generic trap handler: record (scause, sepc, stval); an interrupt masks sie and
# returns to sepc, an exception returns to S-mode at the address in `resume`.
    .align 4
    .globl trap
trap:
    csrrw sp, sscratch, sp
    sd t0, -8(sp)
    sd t1, -16(sp)
    sd t2, -24(sp)
    la t0, rec
    li t1, 1
    amoadd.d t1, t1, (t0)
    slli t2, t1, 5
    add t2, t2, t0
    csrr t1, scause
    sd t1, 8(t2)
    csrr t1, sepc
    sd t1, 16(t2)
    csrr t1, stval
    sd t1, 24(t2)
    csrr t1, scause
    bltz t1, 1f
    la t0, resume
    ld t0, 0(t0)
    csrw sepc, t0
    li t0, 0x100            # SPP = S
    csrs sstatus, t0
    j 2f
1:  csrw sie, zero
2:  ld t0, -8(sp)
    ld t1, -16(sp)
    ld t2, -24(sp)
    csrrw sp, sscratch, sp
    sret

# Set `resume` to the label after a faulting instruction.
.macro EXPECT_FAULT label
    la t6, \label
    la t5, resume
    sd t6, 0(t5)
.endm

.macro SBI eid, fid
    li a7, \eid
    li a6, \fid
    ecall
.endm

.macro EXIT_PASS
    li t0, 0x100000
    li t1, 0x5555
    sw t1, 0(t0)
9:  j 9b
.endm

    .section .data
    .align 3
    .globl rec
rec: .dword 0
    .space 32 * 64
resume: .dword 0
    .globl out
out: .space 8 * 64
    .align 12
    .space 4096 * 8
stacks_top:
    .space 4096
trap_stack_top:
    .align 12
    .globl pt_root
pt_root: .space 4096
    .section .text
