/* Tasks: creation from an embedded program, exit, wait and the ps listing. */
#include "kernel.h"

struct program { const char *name; const uint8_t *start, *end; };
extern const struct program program_table[];

spinlock_t task_lock;
struct task tasks[NTASK];
static int next_pid = 1;

static const struct program *find_program(const char *name, size_t len)
{
    for (const struct program *p = program_table; p->name; p++)
        if (strlen(p->name) == len && !strncmp(p->name, name, len))
            return p;
    return 0;
}

/* Build the address space: program image at USER_BASE, stack below USER_STACK_TOP,
 * the command line copied to the top of the stack and passed in a0. */
static int load(struct task *t, const struct program *prog, const char *cmdline)
{
    size_t size = (size_t)(prog->end - prog->start);
    size_t clen = strlen(cmdline) + 1;
    if (!(t->root = uvm_create()))
        return -1;
    for (size_t off = 0; off < size; off += PAGE_SIZE) {
        uint8_t *pg = page_alloc();
        if (!pg || uvm_map(t->root, USER_BASE + off, pg, 1))
            return -1;
        memcpy(pg, prog->start + off, size - off < PAGE_SIZE ? size - off : PAGE_SIZE);
    }
    for (int i = 1; i <= USER_STACK_PAGES; i++) {
        void *pg = page_alloc();
        if (!pg || uvm_map(t->root, USER_STACK_TOP - i * PAGE_SIZE, pg, 1))
            return -1;
    }
    uint64_t sp = (USER_STACK_TOP - clen) & ~15UL;
    if (copy_out(t->root, sp, cmdline, clen))
        return -1;
    t->satp = uvm_satp(t->root);
    memset(&t->tf, 0, sizeof t->tf);
    t->tf.sepc = USER_BASE;
    t->tf.x[2] = sp;
    t->tf.x[10] = sp;
    return 0;
}

/* returns the new pid, or -1 (unknown program, no slot, no memory); task_start runs it */
int task_spawn(const char *cmdline, int ppid)
{
    while (*cmdline == ' ')
        cmdline++;
    size_t nlen = 0;
    while (cmdline[nlen] && cmdline[nlen] != ' ')
        nlen++;
    const struct program *prog = find_program(cmdline, nlen);
    if (!prog)
        return -1;

    lock(&task_lock);
    struct task *t = 0;
    for (int i = 0; i < NTASK && !t; i++)
        if (tasks[i].state == T_FREE)
            t = &tasks[i];
    if (t) {
        t->state = T_BLOCKED;         /* reserved, not yet runnable */
        t->pid = next_pid++;
    }
    unlock(&task_lock);
    if (!t)
        return -1;

    t->ppid = ppid;
    t->exit_code = 0;
    t->in_syscall = 0;
    t->rq_next = 0;
    memset(t->name, 0, sizeof t->name);
    memcpy(t->name, prog->name, nlen < sizeof t->name ? nlen : sizeof t->name - 1);
    if (load(t, prog, cmdline)) {
        if (t->root)
            uvm_free(t->root);
        t->state = T_FREE;
        return -1;
    }
    t->state = T_READY;
    return t->pid;
}

/* Queue a spawned task on hart 0's run queue. Called after the parent was woken, so
 * the parent runs (and e.g. submits its wait) first: the same order in every mode. */
void task_start(int pid)
{
    for (int i = 0; i < NTASK; i++)
        if (tasks[i].pid == pid && tasks[i].state == T_READY) {
            rq_push(&tasks[i]);
            return;
        }
}

/* Called with task_lock held. Orphans and unwaited-for zombies are reaped at once. */
static void release(struct task *t)
{
    t->root = 0;
    t->state = T_FREE;
}

/* The task is parked (never current on hart 0, which runs on the kernel satp by now). */
void task_exit(struct task *t, int code)
{
    uvm_free(t->root);
    lock(&task_lock);
    t->root = 0;
    t->exit_code = code;
    for (int i = 0; i < NTASK; i++) {
        struct task *c = &tasks[i];
        if (c->state != T_FREE && c->ppid == t->pid) {
            c->ppid = 0;
            if (c->state == T_ZOMBIE)
                release(c);
        }
    }
    if (t->ppid == 0) {
        int pid = t->pid;
        release(t);
        unlock(&task_lock);
        if (pid == 1) {
            kprintf("refguest: the shell exited, powering off\n");
            sbi_shutdown(code != 0);
        }
        return;
    }
    t->state = T_ZOMBIE;
    unlock(&task_lock);
}

/* pid > 0: that child; pid <= 0: any child. Returns the reaped pid, -1 when there is no
 * such child, -2 when it has not exited yet. */
int task_wait(struct task *parent, int pid, int *status)
{
    int found = 0, ret = -1;
    lock(&task_lock);
    for (int i = 0; i < NTASK; i++) {
        struct task *c = &tasks[i];
        if (c->state == T_FREE || c->ppid != parent->pid || (pid > 0 && c->pid != pid))
            continue;
        found = 1;
        if (c->state == T_ZOMBIE) {
            *status = c->exit_code;
            ret = c->pid;
            release(c);
            break;
        }
    }
    unlock(&task_lock);
    return ret > 0 ? ret : found ? -2 : -1;
}

int task_ps(struct ps_entry *out, int max)
{
    int n = 0;
    lock(&task_lock);
    for (int i = 0; i < NTASK && n < max; i++) {
        struct task *t = &tasks[i];
        if (t->state == T_FREE || (!t->root && t->state != T_ZOMBIE))
            continue;
        out[n].pid = t->pid;
        out[n].ppid = t->ppid;
        out[n].state = t->state == T_READY ? PS_READY : t->state == T_RUNNING ? PS_RUNNING
                     : t->state == T_ZOMBIE ? PS_ZOMBIE : PS_SYSCALL;
        out[n].sysno = t->state == T_BLOCKED ? (int)t->req.num : 0;
        memcpy(out[n].name, t->name, sizeof out[n].name);
        n++;
    }
    unlock(&task_lock);
    return n;
}
