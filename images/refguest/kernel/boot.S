/* Boot: OpenSBI enters _start at 0x80200000 in S-mode, a0 = hartid, a1 = DTB.
 * Harts started later through SBI HSM enter _secondary with a0 = hartid. */
#define MAX_HARTS 4
#define KSTACK_SHIFT 14            /* 16 KiB kernel stack per hart */

    .section .text.boot, "ax"
    .globl _start
_start:
    csrw    sie, zero
    csrci   sstatus, 2             /* SIE = 0: the kernel never takes interrupts */
    li      t0, MAX_HARTS
    bgeu    a0, t0, park
    la      t0, __bss_start        /* clear .bss (page tables, stacks, tasks) */
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:  la      sp, boot_stacks
    addi    t0, a0, 1
    slli    t0, t0, KSTACK_SHIFT
    add     sp, sp, t0
    call    kmain                  /* kmain(hartid, dtb), never returns */
    j       park

    .globl _secondary
_secondary:
    csrw    sie, zero
    csrci   sstatus, 2
    li      t0, MAX_HARTS
    bgeu    a0, t0, park
    la      sp, boot_stacks
    addi    t0, a0, 1
    slli    t0, t0, KSTACK_SHIFT
    add     sp, sp, t0
    call    secondary_main         /* secondary_main(hartid), never returns */
park:
    wfi
    j       park

    .section .bss.stack, "aw", @nobits
    .balign 4096
    .globl boot_stacks
boot_stacks:
    .space  (1 << KSTACK_SHIFT) * MAX_HARTS
