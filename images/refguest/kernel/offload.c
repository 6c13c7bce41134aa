/* The offload protocol, modelled on zCore's offload fork.
 *
 *   hart 0: syscall trap -> build request -> ref_submit -> park task, run another
 *   hart 1: ref_pickup -> ref_execute -> (maybe pending: read, sleep, wait)
 *           -> ref_complete -> req->waker == ref_wake -> task back on hart 0's run queue
 *   hart 0: ref_resume (a0 = ret) -> sret
 *
 * With offload=off hart 0 runs ref_execute/ref_complete itself (and ref_wake for
 * calls that had to wait); ref_submit and ref_pickup are not used. */
#include "kernel.h"

_Static_assert(__builtin_offsetof(struct ref_req, task) == 0, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, num) == 8, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, args) == 16, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, ret) == 64, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, completed) == 72, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, waker) == 80, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, pid) == 88, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, seq) == 96, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, submit_hart) == 104, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, exec_hart) == 112, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, deadline) == 120, "req layout");
_Static_assert(__builtin_offsetof(struct ref_req, next) == 128, "req layout");
_Static_assert(__builtin_offsetof(struct ref_sq, count) == 8, "sq layout");

#define TASK_HART   0
#define SERVER_HART 1

struct ref_sq ref_sq;                 /* the submission queue (shared memory) */
volatile int server_ready;
static uint64_t req_seq;
static struct ref_req *pending;       /* requests waiting on the executing hart */

/* ---------------- the six stages (one real function each) ---------------- */

/* hart 0: a0 = request, filled in; push it on the submission queue */
STAGE void ref_submit(struct ref_req *req)
{
    lock(&ref_sq.lock);
    req->next = 0;
    if (ref_sq.tail)
        ref_sq.tail->next = req;
    else
        ref_sq.head = req;
    ref_sq.tail = req;
    ref_sq.count++;
    unlock(&ref_sq.lock);
    if (offload_mode == MODE_IPI)
        sbi_send_ipi(1UL << SERVER_HART);
}

/* hart 1: a0 = request just taken off the submission queue */
STAGE void ref_pickup(struct ref_req *req)
{
    req->next = 0;
}

/* executing hart: a0 = request; runs the system call once. Returns REQ_DONE (req->ret
 * written), REQ_PENDING (must wait; re-polled until done) or REQ_GONE (exit). */
STAGE int ref_execute(struct ref_req *req)
{
    req->exec_hart = this_cpu()->hartid;
    return sys_dispatch(req);
}

/* executing hart: a0 = request, req->ret (offset 64) holds the result; sets completed */
STAGE void ref_complete(struct ref_req *req)
{
    fence();
    __atomic_store_n(&req->completed, 1, __ATOMIC_RELEASE);
}

/* executing hart (req->waker): a0 = completed request; puts its task back on hart 0's
 * run queue and, in offload=ipi, sends hart 0 an IPI */
STAGE void ref_wake(struct ref_req *req)
{
    struct task *t = req->task;
    t->state = T_READY;
    rq_push(t);
    if (offload_mode == MODE_IPI && this_cpu()->hartid != TASK_HART)
        sbi_send_ipi(1UL << TASK_HART);
}

/* hart 0: a0 = completed request of the task about to return to U-mode; a0 := ret */
STAGE void ref_resume(struct ref_req *req)
{
    req->task->tf.x[10] = (uint64_t)req->ret;
}

/* ---------------- hart 0 side ---------------- */

void kick_server(void)
{
    sbi_send_ipi(1UL << SERVER_HART);
}

/* Once woken, the task owns its request again (its next syscall rewrites it):
 * nothing here reads req after the waker. */
static void finish(struct ref_req *req, int status)
{
    uint64_t num = req->num;
    int64_t ret = req->ret;
    ref_complete(req);
    if (status == REQ_DONE) {
        req->waker(req);
        sys_after_wake(num, ret);
    }
}

/* Fill in the task's request from its trap frame. A macro, not an inline function, so that
 * a debugger places these stores in syscall_trap itself (tests/debug/test_reverse.py), and
 * the default path is the same instructions as before bug=lostwake shared it. */
#define BUILD_REQUEST(t, req, waker_fn)                 \
    do {                                                \
        (req)->task = (t);                              \
        (req)->num = (t)->tf.x[17];                     \
        for (int i = 0; i < 6; i++)                     \
            (req)->args[i] = (t)->tf.x[10 + i];         \
        (req)->ret = 0;                                 \
        (req)->completed = 0;                           \
        (req)->waker = (waker_fn);                      \
        (req)->pid = (uint64_t)(t)->pid;                \
        (req)->seq = ++req_seq;                         \
        (req)->submit_hart = this_cpu()->hartid;        \
        (req)->exec_hart = ~0UL;                        \
        (req)->deadline = 0;                            \
        (req)->next = 0;                                \
        (t)->in_syscall = 1;                            \
    } while (0)

void syscall_trap(struct task *t)
{
    struct ref_req *req = &t->req;
    BUILD_REQUEST(t, req, ref_wake);

    if (offload_mode == MODE_OFF) {
        if (req->num == SYS_exit)
            vm_use_kernel();            /* its page tables are about to be freed */
        int status = ref_execute(req);
        if (status == REQ_DONE) {
            ref_complete(req);
            sys_after_wake(req->num, req->ret);
            poll_pending();             /* e.g. a child's exit may end a wait */
            if (req->num == SYS_yield && !rq_empty()) {
                t->state = T_READY;
                rq_push(t);
                sched_run();
            }
            task_enter(t);              /* ref_resume, sret */
        }
        this_cpu()->cur = 0;
        if (status == REQ_PENDING) {
            t->state = T_BLOCKED;
            pending_add(req);
        } else {
            ref_complete(req);          /* REQ_GONE: the task is a zombie or freed */
        }
        poll_pending();
        sched_run();
    }

    /* offload: park the task, hand the call to hart 1, run something else */
    t->state = T_BLOCKED;
    this_cpu()->cur = 0;
    vm_use_kernel();                    /* hart 1 may free this address space (exit) */
    ref_submit(req);
    sched_run();
}

/* ---------------- bug=lostwake: a planted lost wake-up ----------------
 *
 * Off by default; for the reverse-debugging example (README, "Going backwards"). The
 * client submits its request with a placeholder waker and registers the real one
 * (ref_wake) only afterwards, if the call has not completed by then: the "fast path"
 * of an async client that skips the wake-up when the server was quick. The check and
 * the registration are two steps: if hart 1 completes the call and calls the waker
 * between them, it calls the placeholder, and the task stays parked for good with its
 * request completed and ref_wake registered. Hart 0 gets its own trap entry
 * (stvec = trap_entry_lostwake), so the default path runs not one instruction more. */

int lost_wakeup_planted;

/* what hart 1 calls as the waker of a request whose real waker is not registered yet */
STAGE void no_waker(struct ref_req *req)
{
    (void)req;
}

/* the slow path: park the task, then register its waker -- BUG: hart 1 may have
 * completed the call and called the placeholder since syscall_trap_lostwake looked */
static __attribute__((noinline)) noreturn void park_task(struct task *t, struct ref_req *req)
{
    t->state = T_BLOCKED;
    this_cpu()->cur = 0;
    vm_use_kernel();
    req->waker = ref_wake;
    sched_run();
}

/* Submit first, so that hart 1 starts on the call at once, and park the task while it
 * works -- unless it has answered already ("done? then no wake-up is needed"). */
static noreturn void syscall_trap_lostwake(struct task *t)
{
    struct ref_req *req = &t->req;
    BUILD_REQUEST(t, req, no_waker);
    ref_submit(req);
    if (__atomic_load_n(&req->completed, __ATOMIC_ACQUIRE))
        task_enter(t);                  /* the fast path: resume at once */
    park_task(t, req);
}

/* hart 0's U-mode traps with bug=lostwake (trap.S); exit keeps the default path, as an
 * exited task's request is no longer its own */
void trap_user_lostwake(struct trapframe *tf)
{
    if (csr_read(scause) == EXC_ECALL_U && tf->x[17] != SYS_exit) {
        tf->sepc += 4;
        syscall_trap_lostwake((struct task *)tf);
    }
    trap_user(tf);
}

/* ---------------- the executing hart's pending set ---------------- */

void pending_add(struct ref_req *req)
{
    req->next = pending;
    pending = req;
}

void poll_pending(void)
{
    struct ref_req **pp = &pending;
    while (*pp) {
        struct ref_req *req = *pp;
        int status = sys_dispatch(req);
        if (status == REQ_PENDING) {
            pp = &req->next;
            continue;
        }
        *pp = req->next;
        finish(req, status);
    }
}

static uint64_t earliest_deadline(void)
{
    uint64_t when = ~0UL;
    for (struct ref_req *r = pending; r; r = r->next)
        if (r->num == SYS_sleep_ms && r->deadline < when)
            when = r->deadline;
    return when;
}

static struct ref_req *sq_pop(void)
{
    if (!__atomic_load_n(&ref_sq.count, __ATOMIC_ACQUIRE))
        return 0;
    lock(&ref_sq.lock);
    struct ref_req *req = ref_sq.head;
    if (req) {
        ref_sq.head = req->next;
        if (!ref_sq.head)
            ref_sq.tail = 0;
        ref_sq.count--;
    }
    unlock(&ref_sq.lock);
    return req;
}

/* ---------------- hart 1: the syscall server ---------------- */

void server_main(void)
{
    uint64_t armed = ~0UL;
    if (offload_mode == MODE_IPI)
        csr_write(sie, SIP_SSIP | SIP_STIP);   /* wake WFI; never taken (SIE = 0) */
    kprintf("refguest: hart %lu executes system calls (offload=%s)\n", this_cpu()->hartid,
            mode_names[offload_mode]);
    __atomic_store_n(&server_ready, 1, __ATOMIC_RELEASE);

    for (;;) {
        if (offload_mode == MODE_IPI)
            csr_clear(sip, SIP_SSIP);
        struct ref_req *req;
        while ((req = sq_pop()) != 0) {
            ref_pickup(req);
            int status = ref_execute(req);
            if (status == REQ_PENDING)
                pending_add(req);
            else
                finish(req, status);
        }
        poll_pending();
        if (offload_mode == MODE_IPI && !__atomic_load_n(&ref_sq.count, __ATOMIC_ACQUIRE)) {
            uint64_t when = earliest_deadline();
            if (when != armed || (csr_read(sip) & SIP_STIP)) {
                sbi_set_timer(when);            /* ~0 disarms and clears STIP */
                armed = when;
            }
            wfi();
        }
    }
}
