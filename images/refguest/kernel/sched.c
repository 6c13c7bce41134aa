/* Hart 0's scheduler: a FIFO run queue (hart 1 pushes woken tasks onto it too),
 * round-robin preemption by the SBI timer, and the idle loop of each mode. */
#include "kernel.h"

static spinlock_t rq_lock;
static struct task *rq_head, *rq_tail;
static uint64_t tick_period;

void rq_push(struct task *t)
{
    lock(&rq_lock);
    t->rq_next = 0;
    if (rq_tail)
        rq_tail->rq_next = t;
    else
        rq_head = t;
    rq_tail = t;
    unlock(&rq_lock);
}

struct task *rq_pop(void)
{
    if (!__atomic_load_n(&rq_head, __ATOMIC_RELAXED))
        return 0;
    lock(&rq_lock);
    struct task *t = rq_head;
    if (t) {
        rq_head = t->rq_next;
        if (!rq_head)
            rq_tail = 0;
    }
    unlock(&rq_lock);
    return t;
}

int rq_empty(void) { return __atomic_load_n(&rq_head, __ATOMIC_RELAXED) == 0; }

void timer_tick(void)
{
    if (!tick_period)
        tick_period = timebase_hz / HZ;
    sbi_set_timer(rdtime() + tick_period);   /* also clears STIP */
}

void external_irq(void)
{
    uint32_t irq;
    while ((irq = plic_claim(0)) != 0) {
        console_rx_irq();
        plic_complete(0, irq);
    }
    if (offload_mode == MODE_IPI)
        kick_server();          /* a read() may be waiting on hart 1 */
}

/* hart 0 in the kernel (interrupts masked by SIE = 0): serve what is pending */
void handle_kernel_interrupts(void)
{
    uint64_t pending = csr_read(sip);
    if (pending & SIP_STIP)
        timer_tick();
    if (pending & SIP_SEIP)
        external_irq();
    if (pending & SIP_SSIP)
        csr_clear(sip, SIP_SSIP);
    if (offload_mode == MODE_OFF && (pending & (SIP_STIP | SIP_SEIP)))
        poll_pending();
}

/* Return to a task in U-mode; a task parked in a syscall gets its result first. */
void task_enter(struct task *t)
{
    struct cpu *c = this_cpu();
    c->cur = t;
    t->state = T_RUNNING;
    if (t->in_syscall) {
        t->in_syscall = 0;
        ref_resume(&t->req);
    }
    vm_use(t->satp);
    t->tf.ksp = c->stack_top;
    t->tf.ktp = (uint64_t)c;
    csr_clear(sstatus, SSTATUS_SPP);      /* sret to U-mode */
    csr_set(sstatus, SSTATUS_SPIE);
    user_return(&t->tf);
}

/* hart 0: run the next ready task, idling (per mode) until there is one */
void sched_run(void)
{
    this_cpu()->cur = 0;
    for (;;) {
        struct task *t = rq_pop();
        if (t)
            task_enter(t);
        switch (offload_mode) {
        case MODE_POLL:             /* busy-poll the run queue, like zCore's offload fork */
            handle_kernel_interrupts();
            break;
        case MODE_IPI:              /* sleep until the waker's IPI (or timer/UART) */
            csr_clear(sip, SIP_SSIP);
            if (!rq_empty())
                break;
            wfi();
            handle_kernel_interrupts();
            break;
        case MODE_OFF:
            if (!rq_empty())
                break;
            wfi();
            handle_kernel_interrupts();
            break;
        }
    }
}
