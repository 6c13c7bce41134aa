/* Boot: read the DTB, pick the offload mode, set up memory and paging, start the other
 * hart with SBI HSM. Hart 0 then runs tasks; hart 1 executes their system calls. */
#include "kernel.h"

#define KSTACK_SIZE 16384
#define HEAP_MAX    (16UL << 20)   /* pages handed to the allocator */

extern char __bss_start[], _end[], boot_stacks[];
extern void _secondary(void);

struct cpu cpus[MAX_HARTS];
enum mode offload_mode;
const char *const mode_names[] = { "off", "poll", "ipi" };
uint64_t timebase_hz;
static struct bootinfo bi;

void panic(const char *f, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, f);
    int n = vfmt(buf, sizeof buf, f, ap);
    va_end(ap);
    console_write("refguest: panic: ", 17);
    console_write(buf, (size_t)n);
    console_write("\n", 1);
    sbi_shutdown(1);
}

static void cpu_init(uint64_t hartid)
{
    struct cpu *c = &cpus[hartid];
    c->hartid = hartid;
    c->stack_top = (uint64_t)boot_stacks + (hartid + 1) * KSTACK_SIZE;
    __asm__ volatile("mv tp, %0" :: "r"(c));
    csr_write(stvec, (uint64_t)(lost_wakeup_planted ? trap_entry_lostwake : trap_entry));
    csr_write(sscratch, 0);
    csr_write(scounteren, 2);           /* let U-mode read the time CSR (rdtime) */
    vm_use_kernel();
}

/* The value of "KEY=value" among space- or ':'-separated words (its length in *len),
 * or NULL if there is no such word */
static const char *bootarg(const char *args, const char *key, size_t *len)
{
    size_t klen = strlen(key);
    for (const char *p = args; *p; p++) {
        if (p != args && p[-1] != ' ' && p[-1] != ':')
            continue;
        if (strncmp(p, key, klen))
            continue;
        const char *v = p + klen;
        for (*len = 0; v[*len] && v[*len] != ' ' && v[*len] != ':'; ++*len)
            ;
        return v;
    }
    return 0;
}

/* "offload=poll|ipi|off"; -1 if the value is bad */
static int parse_mode(const char *args, int nharts)
{
    size_t len;
    const char *v = bootarg(args, "offload=", &len);
    if (!v)
        return nharts >= 2 ? MODE_POLL : MODE_OFF;
    for (int m = MODE_OFF; m <= MODE_IPI; m++)
        if (strlen(mode_names[m]) == len && !strncmp(v, mode_names[m], len))
            return m;
    return -1;
}

/* "bug=lostwake" plants a lost wake-up (offload.c); 1 if asked for, -1 if the value is bad */
static int parse_bug(const char *args)
{
    size_t len;
    const char *v = bootarg(args, "bug=", &len);
    if (!v)
        return 0;
    return len == 8 && !strncmp(v, "lostwake", 8) ? 1 : -1;
}

static void start_hart(uint64_t hartid)
{
    long err = sbi_hart_start(hartid, (unsigned long)_secondary, 0);
    if (err)
        panic("SBI HSM hart_start(%lu) failed: %ld", hartid, err);
}

static noreturn void task_main(void)
{
    plic_init(bi.plic_base, bi.uart_irq, 0);
    console_enable_rx();
    csr_write(sie, SIP_SEIP | SIP_STIP | SIP_SSIP);
    timer_tick();
    if (offload_mode != MODE_OFF)
        while (!__atomic_load_n(&server_ready, __ATOMIC_ACQUIRE))
            ;
    if (task_spawn("shell", 0) != 1)
        panic("cannot start the shell");
    task_start(1);
    sched_run();
}

static noreturn void run_role(uint64_t hartid)
{
    if (hartid == 0)
        task_main();
    if (hartid == 1 && offload_mode != MODE_OFF)
        server_main();
    for (;;)                             /* any other hart: idle */
        wfi();
}

void kmain(uint64_t hartid, const void *dtb)
{
    __asm__ volatile("mv tp, %0" :: "r"(&cpus[hartid]));
    if (fdt_parse(dtb, &bi))
        panic("bad device tree at %p", dtb);
    console_init(bi.uart_base);
    timebase_hz = bi.timebase ? bi.timebase : 10000000;
    kprintf("\nrefguest: reference offload guest\n");
    kprintf("refguest: %d hart(s), RAM 0x%lx+%lu MiB, uart 0x%lx irq %u, plic 0x%lx, "
            "timebase %lu Hz\n", bi.nharts, bi.mem_base, bi.mem_size >> 20, bi.uart_base,
            bi.uart_irq, bi.plic_base, timebase_hz);
    kprintf("refguest: bootargs \"%s\"\n", bi.bootargs);
    if (!bi.uart_base || !bi.plic_base)
        panic("no ns16550a UART or PLIC in the device tree");

    int mode = parse_mode(bi.bootargs, bi.nharts);
    if (mode < 0) {
        kprintf("refguest: bad offload= value in bootargs (use offload=poll|ipi|off)\n");
        sbi_shutdown(1);
    }
    int have_hsm = sbi_probe(0x48534D) != 0;
    if (mode != MODE_OFF && (bi.nharts < 2 || (bi.hart_mask & 3) != 3 || !have_hsm)) {
        kprintf("refguest: offload=%s needs 2 harts (found %d)\n", mode_names[mode],
                have_hsm ? bi.nharts : 1);
        sbi_shutdown(1);
    }
    offload_mode = (enum mode)mode;
    kprintf("refguest: offload=%s\n", mode_names[offload_mode]);
    int bug = parse_bug(bi.bootargs);
    if (bug < 0 || (bug && mode == MODE_OFF)) {
        kprintf("refguest: bad bug= value in bootargs (use bug=lostwake with offload=poll|ipi)\n");
        sbi_shutdown(1);
    }
    if (bug) {
        lost_wakeup_planted = 1;
        kprintf("refguest: bug=lostwake: wakers registered after submit (a lost wake-up race)\n");
    }

    vm_init(bi.mem_base, bi.mem_size);
    uint64_t heap_end = bi.mem_base + bi.mem_size;
    if (heap_end > (uint64_t)_end + HEAP_MAX)
        heap_end = (uint64_t)_end + HEAP_MAX;   /* plenty, and a quick boot on slow machines */
    mem_init((uint64_t)_end, heap_end);
    cpu_init(hartid);

    /* roles are fixed: hart 0 runs tasks, hart 1 serves syscalls (whoever booted) */
    if (hartid != 0)
        start_hart(0);
    if (hartid != 1 && offload_mode != MODE_OFF)
        start_hart(1);
    run_role(hartid);
}

void secondary_main(uint64_t hartid)
{
    cpu_init(hartid);
    run_role(hartid);
}
