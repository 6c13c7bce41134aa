/* Traps from U-mode on hart 0: system calls, timer preemption, UART interrupts,
 * rdtime emulation and faults. */
#include "kernel.h"

/* csrrs rd, time, x0 (rdtime rd): emulated if the machine does not let U-mode read time */
static int emulate_rdtime(struct task *t)
{
    uint32_t insn;
    if (copy_in(t->root, &insn, t->tf.sepc, 4))
        return 0;
    if ((insn & ~(31U << 7)) != 0xc0102073)
        return 0;
    unsigned rd = (insn >> 7) & 31;
    if (rd)
        t->tf.x[rd] = rdtime();
    t->tf.sepc += 4;
    return 1;
}

void trap_user(struct trapframe *tf)
{
    struct task *t = (struct task *)tf;
    uint64_t cause = csr_read(scause);

    if (cause & SCAUSE_INTR) {
        int preempt = 0;
        switch (cause & ~SCAUSE_INTR) {
        case IRQ_S_TIMER:
            timer_tick();
            preempt = 1;
            break;
        case IRQ_S_EXT:
            external_irq();
            break;
        case IRQ_S_SOFT:
            csr_clear(sip, SIP_SSIP);   /* a waker's IPI: the woken task is on the run queue */
            break;
        }
        if (offload_mode == MODE_OFF)
            poll_pending();
        if (preempt && !rq_empty()) {
            t->state = T_READY;
            rq_push(t);
            sched_run();
        }
        task_enter(t);
    }
    if (cause == EXC_ECALL_U) {
        tf->sepc += 4;
        syscall_trap(t);                /* does not return */
    }
    if (cause == EXC_ILLEGAL && emulate_rdtime(t))
        task_enter(t);

    kprintf("refguest: Error: pid %d (%s) killed by a fault: scause %lx sepc %lx stval %lx\n", t->pid, t->name,
            cause, tf->sepc, csr_read(stval));
    vm_use_kernel();
    task_exit(t, -1);
    if (offload_mode == MODE_IPI)
        kick_server();                  /* its parent may be waiting on hart 1 */
    else if (offload_mode == MODE_OFF)
        poll_pending();
    sched_run();
}

void trap_kernel(void)
{
    panic("trap in S-mode on hart %lu: scause %lx sepc %lx stval %lx", this_cpu()->hartid,
          csr_read(scause), csr_read(sepc), csr_read(stval));
}
