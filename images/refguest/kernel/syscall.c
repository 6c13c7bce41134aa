/* System call bodies. They run on whichever hart executes requests (hart 1 when
 * offloading, hart 0 with offload=off) and touch user memory only through the task's
 * page table (copy_in/copy_out), never through the current satp. */
#include "kernel.h"

static int64_t sys_write(struct task *t, uint64_t fd, uint64_t buf, uint64_t len)
{
    char chunk[128];
    if (fd != 1 && fd != 2)
        return -1;
    for (uint64_t done = 0; done < len;) {
        uint64_t n = len - done < sizeof chunk ? len - done : sizeof chunk;
        if (copy_in(t->root, chunk, buf + done, n))
            return done ? (int64_t)done : -1;
        console_write(chunk, n);
        done += n;
    }
    return (int64_t)len;
}

static int sys_read(struct ref_req *req)
{
    char chunk[128];
    uint64_t len = req->args[2];
    if (req->args[0] != 0) {
        req->ret = -1;
        return REQ_DONE;
    }
    if (len == 0) {
        req->ret = 0;
        return REQ_DONE;
    }
    if (!console_has_input())
        return REQ_PENDING;
    int n = console_read(chunk, (int)(len < sizeof chunk ? len : sizeof chunk));
    req->ret = copy_out(req->task->root, req->args[1], chunk, (size_t)n) ? -1 : n;
    return REQ_DONE;
}

static int sys_wait(struct ref_req *req)
{
    int status = 0;
    int pid = task_wait(req->task, (int)req->args[0], &status);
    if (pid == -2)
        return REQ_PENDING;
    if (pid > 0 && req->args[1] &&
        copy_out(req->task->root, req->args[1], &status, sizeof status))
        pid = -1;
    req->ret = pid;
    return REQ_DONE;
}

static int64_t sys_ps(struct task *t, uint64_t buf, uint64_t max)
{
    struct ps_entry list[NTASK];
    int n = task_ps(list, max < NTASK ? (int)max : NTASK);
    if (copy_out(t->root, buf, list, sizeof list[0] * (size_t)n))
        return -1;
    return n;
}

/* First execution and every later poll of a request. */
int sys_dispatch(struct ref_req *req)
{
    struct task *t = req->task;
    uint64_t *a = req->args;
    char cmd[128];

    switch (req->num) {
    case SYS_write:
        req->ret = sys_write(t, a[0], a[1], a[2]);
        return REQ_DONE;
    case SYS_read:
        return sys_read(req);
    case SYS_getpid:
    case SYS_gettid:
        req->ret = t->pid;
        return REQ_DONE;
    case SYS_yield:
        req->ret = 0;
        return REQ_DONE;
    case SYS_getcpu:
        req->ret = (int64_t)req->exec_hart;
        return REQ_DONE;
    case SYS_gettime:
        req->ret = (int64_t)(rdtime() * 1000000 / timebase_hz);
        return REQ_DONE;
    case SYS_sleep_ms:
        if (!req->deadline) {
            req->deadline = rdtime() + a[0] * timebase_hz / 1000;
            req->ret = 0;
        }
        if (rdtime() < req->deadline)
            return REQ_PENDING;
        req->deadline = 0;
        return REQ_DONE;
    case SYS_spawn:
        req->ret = copy_in_str(t->root, cmd, a[0], sizeof cmd) < 0 ? -1 : task_spawn(cmd, t->pid);
        return REQ_DONE;                /* the child is queued by sys_after_wake */
    case SYS_wait:
        return sys_wait(req);
    case SYS_exit:
        req->ret = (int64_t)a[0];
        task_exit(t, (int)a[0]);
        return REQ_GONE;
    case SYS_ps:
        req->ret = sys_ps(t, a[0], a[1]);
        return REQ_DONE;
    case SYS_poweroff:
        kprintf("refguest: poweroff\n");
        sbi_shutdown(0);
    default:
        req->ret = -1;
        return REQ_DONE;
    }
}

/* After the caller was woken (or, with offload=off, right after completion). */
void sys_after_wake(uint64_t num, int64_t ret)
{
    if (num == SYS_spawn && ret > 0) {
        task_start((int)ret);
        if (offload_mode == MODE_IPI && this_cpu()->hartid != 0)
            sbi_send_ipi(1UL << 0);     /* hart 0 may have gone idle meanwhile */
    }
}
