/* Kernel-wide declarations of the reference guest. */
#ifndef REF_KERNEL_H
#define REF_KERNEL_H
#include <stddef.h>
#include <stdint.h>
#include "riscv.h"
#include "offload.h"
#include "../common/fmt.h"
#include "../common/sysnum.h"

#define MAX_HARTS   4
#define NTASK       16
#define PAGE_SIZE   4096UL
#define HZ          100                 /* hart 0 scheduler tick */

#define USER_BASE       0x40000000UL    /* programs are linked here */
#define USER_STACK_TOP  0x7ffff000UL    /* stack grows down from here (guard page above) */
#define USER_STACK_PAGES 4

#define noreturn __attribute__((noreturn))
/* stage markers: a real, un-inlined, un-cloned function with the plain symbol name */
#define STAGE __attribute__((noipa, used))

/* ---- boot (main.c) ---- */
enum mode { MODE_OFF, MODE_POLL, MODE_IPI };
extern enum mode offload_mode;
extern const char *const mode_names[];
extern uint64_t timebase_hz;

struct cpu {
    uint64_t hartid;
    uint64_t stack_top;
    struct task *cur;          /* hart 0: task running in U-mode, or NULL */
    uint64_t satp;             /* satp currently loaded on this hart */
};
extern struct cpu cpus[MAX_HARTS];

static inline struct cpu *this_cpu(void)
{
    struct cpu *c;
    __asm__ volatile("mv %0, tp" : "=r"(c));
    return c;
}

noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- SBI (sbi.c) ---- */
void sbi_putchar(int c);
void sbi_set_timer(uint64_t when);
void sbi_send_ipi(unsigned long hart_mask);
long sbi_hart_start(unsigned long hartid, unsigned long start, unsigned long opaque);
long sbi_probe(long eid);
noreturn void sbi_shutdown(int failure);

/* ---- device tree (fdt.c) ---- */
struct bootinfo {
    uint64_t mem_base, mem_size;
    uint64_t uart_base, plic_base;
    uint64_t timebase;
    uint32_t uart_irq;
    int nharts;
    uint64_t hart_mask;
    char bootargs[256];
};
int fdt_parse(const void *dtb, struct bootinfo *bi);

/* ---- console (console.c) and PLIC (plic.c) ---- */
void console_init(uint64_t uart_base);
void console_enable_rx(void);
void console_write(const char *s, size_t n);
void console_rx_irq(void);
int console_read(char *dst, int max);
int console_has_input(void);
void kprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void plic_init(uint64_t base, uint32_t irq, int hart);
uint32_t plic_claim(int hart);
void plic_complete(int hart, uint32_t irq);

/* ---- memory (mem.c) and paging (vm.c) ---- */
void mem_init(uint64_t start, uint64_t end);
void *page_alloc(void);
void page_free(void *p);
uint64_t pages_free(void);
void vm_init(uint64_t mem_base, uint64_t mem_size);
void vm_use(uint64_t satp);
void vm_use_kernel(void);
uint64_t *uvm_create(void);
int uvm_map(uint64_t *root, uint64_t va, void *page, int writable);
void uvm_free(uint64_t *root);
uint64_t uvm_satp(uint64_t *root);
int copy_in(uint64_t *root, void *dst, uint64_t uva, size_t n);
int copy_out(uint64_t *root, uint64_t uva, const void *src, size_t n);
int copy_in_str(uint64_t *root, char *dst, uint64_t uva, size_t max);

/* ---- tasks and hart 0 scheduler (task.c, sched.c) ---- */
struct trapframe {
    uint64_t x[32];      /* x0..x31 (x0 slot unused) */
    uint64_t sepc;       /* 256 */
    uint64_t ksp;        /* 264 kernel stack top of the hart */
    uint64_t ktp;        /* 272 kernel tp (struct cpu *) */
};

enum tstate { T_FREE, T_READY, T_RUNNING, T_BLOCKED, T_ZOMBIE };

struct task {
    struct trapframe tf;    /* must stay first: trap.S hands us &task->tf */
    struct ref_req req;     /* the task's outstanding system call */
    int pid, ppid, exit_code;
    volatile int state;
    int in_syscall;         /* resume with a0 = req.ret on next entry */
    uint64_t *root;         /* Sv39 root of its address space */
    uint64_t satp;
    char name[16];
    struct task *rq_next;
};

extern spinlock_t task_lock;
extern struct task tasks[NTASK];
int task_spawn(const char *cmdline, int ppid);
void task_start(int pid);
void task_exit(struct task *t, int code);
int task_wait(struct task *parent, int pid, int *status);   /* -2 = not yet */
int task_ps(struct ps_entry *out, int max);

void rq_push(struct task *t);
struct task *rq_pop(void);
int rq_empty(void);
noreturn void sched_run(void);
noreturn void task_enter(struct task *t);
void handle_kernel_interrupts(void);
void timer_tick(void);
void external_irq(void);

/* ---- trap (trap.S, trap.c) ---- */
void trap_entry(void);
void trap_entry_lostwake(void);
void trap_user(struct trapframe *tf);
void trap_user_lostwake(struct trapframe *tf);
noreturn void user_return(struct trapframe *tf);

/* ---- offload and syscalls (offload.c, syscall.c) ---- */
enum { REQ_DONE, REQ_PENDING, REQ_GONE };
extern struct ref_sq ref_sq;
extern volatile int server_ready;
void syscall_trap(struct task *t);
noreturn void server_main(void);
void pending_add(struct ref_req *req);
void poll_pending(void);
int sys_dispatch(struct ref_req *req);
void sys_after_wake(uint64_t num, int64_t ret);
void kick_server(void);
extern int lost_wakeup_planted;          /* bug=lostwake (offload.c) */

void ref_submit(struct ref_req *req);
void ref_pickup(struct ref_req *req);
int ref_execute(struct ref_req *req);
void ref_complete(struct ref_req *req);
void ref_wake(struct ref_req *req);
void ref_resume(struct ref_req *req);

#endif
