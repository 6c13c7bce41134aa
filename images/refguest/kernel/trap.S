/* Trap entry and return for U-mode tasks (hart 0 only; hart 1 never leaves S-mode).
 * While a task runs, sscratch holds its struct trapframe; in the kernel sscratch is 0,
 * so a trap from S-mode (a kernel bug) is recognised and reported. */
#define TF_SEPC 256
#define TF_KSP  264
#define TF_KTP  272

    /* TRAP_ENTRY name, handler: save the task's registers, call handler(tf) on a fresh
     * kernel stack. bug=lostwake points stvec at the second copy (offload.c), so the
     * default entry is not one instruction longer. */
    .macro TRAP_ENTRY name, handler
    .balign 4
    .globl \name
\name:
    csrrw   sp, sscratch, sp       /* sp = trapframe, sscratch = user sp */
    beqz    sp, kernel_trap
    sd      x1, 8(sp)
    .irp    r, 3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    sd      x\r, (\r * 8)(sp)
    .endr
    csrr    t0, sscratch
    sd      t0, 16(sp)             /* user sp */
    csrw    sscratch, zero
    csrr    t0, sepc
    sd      t0, TF_SEPC(sp)
    mv      a0, sp
    ld      tp, TF_KTP(a0)
    ld      sp, TF_KSP(a0)         /* fresh kernel stack on every trap */
    call    \handler              /* never returns: ends in user_return or the idle loop */
1:  j       1b
    .endm

    .section .text
    TRAP_ENTRY trap_entry, trap_user

kernel_trap:
    csrrw   sp, sscratch, sp       /* back to the kernel sp; sscratch = 0 again */
    call    trap_kernel            /* panics */
2:  j       2b

    /* user_return(struct trapframe *tf): load the task's registers and sret to U-mode */
    .globl user_return
user_return:
    ld      t0, TF_SEPC(a0)
    csrw    sepc, t0
    csrw    sscratch, a0
    ld      x1, 8(a0)
    ld      x2, 16(a0)
    .irp    r, 3,4,5,6,7,8,9,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    ld      x\r, (\r * 8)(a0)
    .endr
    ld      a0, 80(a0)
    sret

    TRAP_ENTRY trap_entry_lostwake, trap_user_lostwake
