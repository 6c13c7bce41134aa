/*
 * /init for emu's Linux regression guest (PID 1 of the initramfs).
 *
 * Built static against glibc:
 *   riscv64-linux-gnu-gcc -static -O2 -Wall -Wextra -pthread -o init init.c -lm
 *
 * 1. Mounts /proc, /sys and devtmpfs on /dev.
 * 2. Runs the self-checks, one console line each ("check NAME: ..."), then
 *    "selftest: ok" or "selftest: FAIL <check>...". The disk check reads /dev/vda
 *    when there is one; the network check runs with emu.net=A.B.C.D:PORT (eth0
 *    as 10.0.2.15/24, slirp's address, then one TCP exchange with A.B.C.D:PORT).
 * 3. With emu.work=N on the kernel command line, runs the cross-CPU system
 *    call workload ("work ..." lines, then "work: ok" or "work: FAIL ...").
 * 4. If the kernel command line has emu.selftest=poweroff, powers off through
 *    reboot(2) (SBI SRST). Otherwise offers a "linux> " prompt on the console.
 *
 * Run as "/init true [K]" by anything but the kernel, it exits at once with
 * status K (the workload's fork+exec target).
 *
 * PID 1 must never exit (the kernel would panic), so every path ends in
 * power_off(), which never returns.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ioctl.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 64
#define SELFTEST_STRESS_N 20000UL

/* Online CPUs as /sys/devices/system/cpu/online lists them. */
static int online[MAX_CPUS];
static int nonline;
static char online_text[128];

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* Reads a whole (small) file into buf, NUL-terminated, trailing newline cut. */
static int read_text(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = '\0';
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    return 0;
}

/* Parses a kernel CPU list ("0-3,5") into online[]. Returns the count or -1. */
static int parse_cpu_list(const char *s)
{
    int n = 0;
    while (*s) {
        char *end;
        long lo = strtol(s, &end, 10), hi = lo;
        if (end == s)
            return -1;
        s = end;
        if (*s == '-') {
            hi = strtol(s + 1, &end, 10);
            if (end == s + 1)
                return -1;
            s = end;
        }
        for (long c = lo; c <= hi; c++) {
            if (n >= MAX_CPUS || c < 0 || c >= MAX_CPUS)
                return -1;
            online[n++] = (int)c;
        }
        if (*s == ',')
            s++;
        else if (*s)
            return -1;
    }
    return n;
}

/* Re-reads the online CPU list from sysfs. */
static int refresh_online(void)
{
    if (read_text("/sys/devices/system/cpu/online", online_text, sizeof online_text) < 0)
        return -1;
    nonline = parse_cpu_list(online_text);
    return nonline > 0 ? 0 : -1;
}

/* Looks for a space-separated word of /proc/cmdline that is `word` (exact) or
 * starts with it (!exact). Returns the rest of that word (in buf), or NULL. */
static const char *cmdline_find(const char *word, int exact, char *buf, size_t size)
{
    if (read_text("/proc/cmdline", buf, size) < 0)
        return NULL;
    size_t len = strlen(word);
    for (char *p = buf; (p = strstr(p, word)) != NULL; p += len)
        if ((p == buf || p[-1] == ' ') && (!exact || p[len] == '\0' || p[len] == ' ')) {
            p[len + strcspn(p + len, " ")] = '\0';
            return p + len;
        }
    return NULL;
}

/* Is `word` one of the space-separated words of /proc/cmdline? */
static int cmdline_has(const char *word)
{
    char buf[4096];
    return cmdline_find(word, 1, buf, sizeof buf) != NULL;
}

static void power_off(void) __attribute__((noreturn));
static void power_off(void)
{
    printf("init: powering off\n");
    fflush(stdout);
    sync();
    reboot(RB_POWER_OFF);
    /* Only reached if the kernel refused: PID 1 must still not exit. */
    printf("init: reboot(RB_POWER_OFF) failed: %s\n", strerror(errno));
    fflush(stdout);
    for (;;)
        pause();
}

/* ------------------------------------------------------------------------ */
/* Check: online CPUs                                                        */
/* ------------------------------------------------------------------------ */

static int check_cpus(void)
{
    long sc = sysconf(_SC_NPROCESSORS_ONLN);
    if (refresh_online() < 0) {
        printf("check cpus: cannot read /sys/devices/system/cpu/online\n");
        return -1;
    }
    /* The affinity mask PID 1 inherits should cover every online CPU too. */
    cpu_set_t set;
    int naff = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    printf("check cpus: %ld online (%s)\n", sc, online_text);
    if (sc != nonline || naff != nonline) {
        printf("check cpus: mismatch: sysconf %ld, sysfs %d, affinity %d\n", sc, nonline, naff);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Check: one child process pinned to each CPU reports where it ran         */
/* ------------------------------------------------------------------------ */

static int check_pinned(void)
{
    pid_t pids[MAX_CPUS];
    int ok = 1;

    fflush(stdout);
    /* Start them all first so that several CPUs are busy at once. */
    for (int i = 0; i < nonline; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            cpu_set_t set;
            CPU_ZERO(&set);
            CPU_SET(online[i], &set);
            if (sched_setaffinity(0, sizeof set, &set) != 0)
                _exit(255);
            /* Yield a few times: the answer must not change. */
            int cpu = sched_getcpu();
            for (int k = 0; k < 10; k++) {
                sched_yield();
                if (sched_getcpu() != cpu)
                    _exit(254);
            }
            _exit(cpu < 0 ? 253 : cpu);
        }
        if (pids[i] < 0) {
            printf("check pinned: fork: %s\n", strerror(errno));
            ok = 0;
        }
    }

    char seen[256] = "";
    size_t len = 0;
    for (int i = 0; i < nonline; i++) {
        int status;
        if (pids[i] <= 0)
            continue;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status)) {
            printf("check pinned: child for cpu %d did not exit normally\n", online[i]);
            ok = 0;
            continue;
        }
        int ran = WEXITSTATUS(status);
        len += snprintf(seen + len, sizeof seen - len, "%s%d", i ? "," : "", ran);
        if (len >= sizeof seen)
            len = sizeof seen - 1;
        if (ran != online[i]) {
            printf("check pinned: child pinned to cpu %d reported %d%s\n", online[i], ran,
                   ran == 255 ? " (setaffinity failed)" : ran == 254 ? " (moved)" : "");
            ok = 0;
        }
    }
    printf("check pinned: %d children ran on cpus %s\n", nonline, seen);
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* SMP stress: one thread pinned per CPU                                     */
/* ------------------------------------------------------------------------ */
/*
 * Each thread, N times: an atomic increment (AMO or LR/SC), a mutex-protected
 * increment (futex wait/wake across harts), and an FP accumulation (FP state
 * must survive preemption and migration). Every 64th iteration it maps 4
 * pages, writes and reads them, and unmaps them: munmap in a process whose
 * threads run on several harts forces remote TLB shootdowns. The threads
 * share one address space, so a virtual address one thread unmaps is soon
 * mapped again by another on a different hart: a stale translation left by a
 * missed shootdown shows up as a non-zero "fresh" page or a readback
 * mismatch. All totals must be exact.
 */

/* Each munmap is a synchronous remote fence to every other hart: on QEMU with
 * OpenSBI and more vCPUs than host cores each one costs milliseconds, hence
 * one round per 64 iterations (override with -DMMAP_EVERY=n). */
#ifndef MMAP_EVERY
#define MMAP_EVERY 64
#endif
#define MMAP_PAGES 4

struct stress {
    unsigned long n;
    uint64_t atomic_total;
    uint64_t mutex_total;
    uint64_t mmap_rounds;
    pthread_mutex_t lock;
    int go;  /* start flag: 0 wait, 1 run, 2 abort */
};

struct worker {
    struct stress *s;
    int cpu;        /* CPU this thread is pinned to */
    int ran_on;     /* sched_getcpu() at the end */
    double fp_sum;  /* must end as exactly n */
    char error[96];
};

static void *stress_thread(void *arg)
{
    struct worker *w = arg;
    struct stress *s = w->s;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t rounds = 0;
    volatile double one = 1.0;
    double fp = 0.0;

    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof set, &set) != 0)
        snprintf(w->error, sizeof w->error, "setaffinity to cpu %d failed", w->cpu);
    /* Start together, so that the threads really run concurrently. */
    int go;
    while ((go = __atomic_load_n(&s->go, __ATOMIC_ACQUIRE)) == 0)
        sched_yield();
    if (go != 1)
        return NULL;

    for (unsigned long i = 0; i < s->n; i++) {
        __atomic_fetch_add(&s->atomic_total, 1, __ATOMIC_SEQ_CST);

        pthread_mutex_lock(&s->lock);
        s->mutex_total++;
        pthread_mutex_unlock(&s->lock);

        fp += one;

        if (i % MMAP_EVERY == 0) {
            size_t size = (size_t)page * MMAP_PAGES;
            uint64_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
            if (p == MAP_FAILED) {
                snprintf(w->error, sizeof w->error, "mmap: %s", strerror(errno));
                break;
            }
            uint64_t tag = ((uint64_t)w->cpu << 32) | i;
            for (int k = 0; k < MMAP_PAGES; k++) {
                uint64_t *q = (uint64_t *)((char *)p + (size_t)k * page);
                if (*q != 0) {  /* fresh anonymous memory is zero */
                    snprintf(w->error, sizeof w->error, "fresh page not zero");
                    break;
                }
                *q = tag + k;
            }
            for (int k = 0; k < MMAP_PAGES && !w->error[0]; k++)
                if (*(uint64_t *)((char *)p + (size_t)k * page) != tag + k)
                    snprintf(w->error, sizeof w->error, "page readback mismatch");
            if (munmap(p, size) != 0)
                snprintf(w->error, sizeof w->error, "munmap: %s", strerror(errno));
            rounds++;
            if (w->error[0])
                break;
        }
    }
    __atomic_fetch_add(&s->mmap_rounds, rounds, __ATOMIC_SEQ_CST);
    w->fp_sum = fp;
    w->ran_on = sched_getcpu();
    return NULL;
}

/* Runs the stress with n iterations per thread; writes a one-line summary
 * (without prefix) into msg. Returns 0 when every total is exact. */
static int run_stress(unsigned long n, char *msg, size_t size)
{
    struct stress s = { .n = n };
    struct worker w[MAX_CPUS];
    pthread_t tid[MAX_CPUS];

    if (refresh_online() < 0) {
        snprintf(msg, size, "cannot read online cpus");
        return -1;
    }
    int nt = nonline;
    pthread_mutex_init(&s.lock, NULL);
    int started = 0;
    for (int i = 0; i < nt; i++) {
        w[i] = (struct worker){ .s = &s, .cpu = online[i], .ran_on = -1 };
        if (pthread_create(&tid[i], NULL, stress_thread, &w[i]) != 0)
            break;
        started++;
    }
    /* Run, or on a failed pthread_create release the started threads idle. */
    __atomic_store_n(&s.go, started == nt ? 1 : 2, __ATOMIC_RELEASE);
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&s.lock);
    if (started < nt) {
        snprintf(msg, size, "pthread_create failed after %d of %d threads", started, nt);
        return -1;
    }

    uint64_t want = (uint64_t)n * (uint64_t)nt;
    uint64_t want_rounds = (uint64_t)nt * ((n + MMAP_EVERY - 1) / MMAP_EVERY);
    int ok = s.atomic_total == want && s.mutex_total == want && s.mmap_rounds == want_rounds;
    const char *why = "";
    for (int i = 0; i < nt; i++) {
        if (w[i].error[0]) {
            ok = 0;
            why = w[i].error;
        } else if (w[i].fp_sum != (double)n) {
            ok = 0;
            why = "fp sum wrong";
        } else if (w[i].ran_on != w[i].cpu) {
            ok = 0;
            why = "thread not on its cpu";
        }
    }
    snprintf(msg, size,
             "%d threads x %lu: atomic %llu/%llu mutex %llu/%llu mmap %llu/%llu fp %s%s%s",
             nt, n, (unsigned long long)s.atomic_total, (unsigned long long)want,
             (unsigned long long)s.mutex_total, (unsigned long long)want,
             (unsigned long long)s.mmap_rounds, (unsigned long long)want_rounds,
             ok || !why[0] ? "exact" : "?", why[0] ? " - " : "", why);
    return ok ? 0 : -1;
}

static int check_stress(void)
{
    char msg[256];
    int r = run_stress(SELFTEST_STRESS_N, msg, sizeof msg);
    printf("check stress: %s\n", msg);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Check: floating point                                                     */
/* ------------------------------------------------------------------------ */

static int check_fp(void)
{
    /* volatile inputs: the compiler cannot fold any of this at build time. */
    volatile double half = 0.5, two = 2.0, three = 3.0;
    volatile float tenth = 0.1f;

    double sum = 0.0;                   /* 0.5 * (1 + ... + 1000): exact in binary */
    for (int k = 1; k <= 1000; k++)
        sum += half * k;
    double root = sqrt(two);            /* fsqrt.d */
    double third = 1.0 / three;         /* fdiv.d; 1/3*3 rounds back to exactly 1 */
    double fma_ = fma(root, root, -2.0); /* fmadd.d: rounding error of sqrt(2)^2 */
    float f = 0.0f;
    for (int k = 0; k < 10; k++)        /* single precision */
        f += tenth;
    long conv = (long)(sum * 4.0);      /* fcvt.l.d */

    int ok = sum == 250250.0 && fabs(root * root - 2.0) < 1e-15 && third * 3.0 == 1.0 &&
             fabs(fma_) < 1e-15 && fabsf(f - 1.0f) < 1e-6f && conv == 1001000;
    printf("check fp: sum %.1f sqrt(2) %.15f 1/3*3 %.1f float %.6f -> %s\n", sum, root,
           third * 3.0, (double)f, ok ? "exact" : "WRONG");
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Check: user-mode rdtime                                                   */
/* ------------------------------------------------------------------------ */

static inline uint64_t rdtime(void)
{
#if defined(__x86_64__)
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    uint64_t t;
    __asm__ __volatile__("rdtime %0" : "=r"(t));
    return t;
#endif
}

static int check_rdtime(void)
{
    enum { READS = 1000 };
    uint64_t first = rdtime(), prev = first;
    int backwards = 0;
    for (int i = 1; i < READS; i++) {
        uint64_t t = rdtime();
        if (t < prev)
            backwards++;
        prev = t;
    }
    int ok = backwards == 0 && prev > first;
    printf("check rdtime: %d reads, %s, advanced %llu ticks\n", READS,
           backwards ? "went BACKWARDS" : "monotonic", (unsigned long long)(prev - first));
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Check: /dev/vda magic (only when the machine has a disk)                  */
/* ------------------------------------------------------------------------ */

static int check_disk(void)
{
    static const char magic[] = "EMUDISK1";
    unsigned char sector[512];

    int fd = open("/dev/vda", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENXIO || errno == ENODEV) {
            printf("check disk: skipped (no /dev/vda)\n");
            return 0;
        }
        printf("check disk: open /dev/vda: %s\n", strerror(errno));
        return -1;
    }
    ssize_t n = read(fd, sector, sizeof sector);
    close(fd);
    if (n != (ssize_t)sizeof sector) {
        printf("check disk: short read of /dev/vda (%zd)\n", n);
        return -1;
    }
    if (memcmp(sector, magic, sizeof magic - 1) != 0) {
        printf("check disk: /dev/vda does not start with %s\n", magic);
        return -1;
    }
    printf("check disk: /dev/vda starts with %s\n", magic);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Check: a TCP exchange through eth0 (only with emu.net=A.B.C.D:PORT)       */
/* ------------------------------------------------------------------------ */

#define NET_GUEST "10.0.2.15" /* what slirp's DHCP would hand out */
#define NET_HELLO "hello from the guest\n"

/* eth0 up as 10.0.2.15/24: the host's 10.0.2.2 is then on the link, no route needed. */
static int net_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, "eth0");
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, NET_GUEST, &sin->sin_addr);
    int rc = ioctl(s, SIOCSIFADDR, &ifr);
    inet_pton(AF_INET, "255.255.255.0", &sin->sin_addr);
    if (rc == 0)
        rc = ioctl(s, SIOCSIFNETMASK, &ifr);
    if (rc == 0)
        rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    if (rc == 0)
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    close(s);
    return rc;
}

static int check_net(void)
{
    char buf[4096];
    const char *peer = cmdline_find("emu.net=", 0, buf, sizeof buf);
    if (peer == NULL) {
        printf("check net: skipped (no emu.net=)\n");
        return 0;
    }
    char host[64];
    unsigned port = 0;
    struct sockaddr_in to = { .sin_family = AF_INET };
    if (sscanf(peer, "%63[0-9.]:%u", host, &port) != 2 || port == 0 || port > 65535
        || inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        printf("check net: bad emu.net=%s (A.B.C.D:PORT)\n", peer);
        return -1;
    }
    to.sin_port = htons(port);
    if (net_up() != 0) {
        printf("check net: eth0: %s\n", strerror(errno));
        return -1;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        printf("check net: socket: %s\n", strerror(errno));
        return -1;
    }
    struct timeval tv = { .tv_sec = 20 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(s, (struct sockaddr *)&to, sizeof to) != 0) {
        printf("check net: connect %s:%u: %s\n", host, port, strerror(errno));
        close(s);
        return -1;
    }
    char reply[256];
    size_t got = 0;
    ssize_t n = write(s, NET_HELLO, strlen(NET_HELLO));
    while (n > 0 && got < sizeof reply - 1 && memchr(reply, '\n', got) == NULL) {
        n = read(s, reply + got, sizeof reply - 1 - got);
        if (n > 0)
            got += (size_t)n;
    }
    close(s);
    reply[got] = '\0';
    reply[strcspn(reply, "\n")] = '\0';
    if (got == 0) {
        printf("check net: no answer from %s:%u (%s)\n", host, port, n < 0 ? strerror(errno) : "closed");
        return -1;
    }
    printf("check net: %s:%u answered \"%s\"\n", host, port, reply);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Self-test driver                                                          */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*fn)(void);
} checks[] = {
    { "cpus", check_cpus },     { "pinned", check_pinned }, { "stress", check_stress },
    { "fp", check_fp },         { "rdtime", check_rdtime }, { "disk", check_disk },
    { "net", check_net },
};

static int selftest(void)
{
    char failed[128] = "";
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].fn() != 0) {
            size_t len = strlen(failed);
            snprintf(failed + len, sizeof failed - len, "%s%s", len ? " " : "", checks[i].name);
        }
        fflush(stdout);
    }
    if (failed[0])
        printf("selftest: FAIL %s\n", failed);
    else
        printf("selftest: ok\n");
    fflush(stdout);
    return failed[0] ? -1 : 0;
}

/* ------------------------------------------------------------------------ */
/* Workload: cross-CPU system calls ("work N", emu.work=N)                   */
/* ------------------------------------------------------------------------ */
/*
 * Syscall-heavy SMP load for benchmarking (scripts/bench_harts.py): every part
 * bounces between the first and the last online CPU, so on 2 harts nearly
 * every step is a wakeup of a task on the other hart (an IPI) or a context
 * switch. Each part prints one line with its counts and a checksum of the
 * values exchanged, computed in a fixed order: the output depends on N and the
 * number of CPUs only, never on timing.
 */

#define WORK_DEFAULT_N 10UL
#define WORK_MAX_N 100000UL
/* Iterations per unit of N. */
#define WORK_PIPE_ROUNDS 200UL     /* pipe ping-pong round trips */
#define WORK_FUTEX_ROUNDS 200UL    /* condvar ping-pong round trips, and mutex increments per thread */
#define WORK_EXECS 2UL             /* fork + exec of /init */
#define WORK_SIGNAL_ROUNDS 100UL   /* sigqueue/sigwaitinfo round trips */
#define WORK_CLOCK_CALLS 1000UL    /* clock_gettime calls per CPU */
#define WORK_YIELDS 100UL          /* sched_yield calls per thread, two threads per CPU */

#define MIX_INIT 0xcbf29ce484222325ULL

/* Order-dependent 64-bit checksum step (FNV-1a on words, with a fold). */
static uint64_t mix(uint64_t h, uint64_t v)
{
    h = (h ^ v) * 0x100000001b3ULL;
    return h ^ (h >> 29);
}

/* The two CPUs the ping-pong parts use (the same one on a uniprocessor). */
static int work_cpu[2];

static int pin_to(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);  /* 0: the calling thread */
}

/* Results a child process hands back to PID 1. */
struct work_result {
    uint64_t count;
    uint64_t sum;
    char error[96];
};

static struct work_result *shared_result(void)
{
    void *p = mmap(NULL, sizeof(struct work_result), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    return p == MAP_FAILED ? NULL : memset(p, 0, sizeof(struct work_result));
}

static void set_error(char *error, size_t size, const char *what)
{
    if (!error[0])
        snprintf(error, size, "%s: %s", what, errno ? strerror(errno) : "wrong value");
}
#define FAIL_IN(r, what) set_error((r)->error, sizeof (r)->error, what)

/* Waits for a child; records a failure in r unless it exited with status 0. */
static void reap(pid_t pid, struct work_result *r, const char *who)
{
    int status;
    errno = 0;
    if (pid <= 0)
        return;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        FAIL_IN(r, who);
}

/* Prints the part's line; returns 0 if it passed. */
static int work_report(const char *part, struct work_result *r, uint64_t want, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    int ok = !r->error[0] && r->count == want;
    printf("work %s: %s, checksum %016llx %s%s%s\n", part, what, (unsigned long long)r->sum,
           ok ? "ok" : "FAIL", r->error[0] ? " - " : "", r->error);
    return ok ? 0 : -1;
}

/* Pipes: a driver on one CPU writes i, an echo process on the other CPU
 * answers f(i) on a second pipe. */
static uint64_t pipe_reply(uint64_t v)
{
    return v * 0x9e3779b97f4a7c15ULL + 1;
}

static int work_pipes(unsigned long rounds)
{
    struct work_result *r = shared_result();
    int ab[2], ba[2];
    if (!r || pipe(ab) != 0 || pipe(ba) != 0) {
        printf("work pipes: setup: %s FAIL\n", strerror(errno));
        return -1;
    }
    fflush(stdout);
    pid_t echo = fork();
    if (echo == 0) {
        close(ab[1]);
        close(ba[0]);
        if (pin_to(work_cpu[1]) != 0)
            _exit(2);
        uint64_t v;
        ssize_t n;
        while ((n = read(ab[0], &v, sizeof v)) == (ssize_t)sizeof v) {
            v = pipe_reply(v);
            if (write(ba[1], &v, sizeof v) != (ssize_t)sizeof v)
                _exit(3);
        }
        _exit(n == 0 ? 0 : 4);
    }
    pid_t driver = echo < 0 ? -1 : fork();
    if (driver == 0) {
        close(ab[0]);
        close(ba[1]);
        if (pin_to(work_cpu[0]) != 0)
            FAIL_IN(r, "setaffinity");
        uint64_t h = MIX_INIT;
        for (uint64_t i = 0; i < rounds && !r->error[0]; i++) {
            uint64_t v = i, back;
            errno = 0;
            if (write(ab[1], &v, sizeof v) != (ssize_t)sizeof v)
                FAIL_IN(r, "write");
            else if (read(ba[0], &back, sizeof back) != (ssize_t)sizeof back)
                FAIL_IN(r, "read");
            else if (back != pipe_reply(i))
                FAIL_IN(r, "reply");
            else {
                h = mix(h, back);
                r->count++;
            }
        }
        r->sum = h;
        _exit(0);  /* closing ab[1] ends the echo loop */
    }
    if (echo < 0 || driver < 0)
        FAIL_IN(r, "fork");
    close(ab[0]);
    close(ab[1]);
    close(ba[0]);
    close(ba[1]);
    reap(driver, r, "driver");
    reap(echo, r, "echo");
    int ret = work_report("pipes", r, rounds, "%lu round trips cpu %d<->%d", rounds, work_cpu[0], work_cpu[1]);
    munmap(r, sizeof *r);
    return ret;
}

/* Futexes: two threads pinned on the two CPUs hand a turn back and forth
 * under a mutex and condition variable, then both hammer one mutex. */
struct pingpong {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned long rounds;
    uint64_t turn;      /* handoffs so far; side turn % 2 may go */
    uint64_t sum;
    uint64_t counter;   /* contended increments */
    int failed;
};

struct pp_side {
    struct pingpong *pp;
    int side;
};

static void *pingpong_thread(void *arg)
{
    struct pp_side *me = arg;
    struct pingpong *pp = me->pp;
    if (pin_to(work_cpu[me->side]) != 0)
        __atomic_store_n(&pp->failed, 1, __ATOMIC_RELAXED);
    for (unsigned long i = 0; i < pp->rounds; i++) {
        pthread_mutex_lock(&pp->lock);
        while (pp->turn % 2 != (uint64_t)me->side)
            pthread_cond_wait(&pp->cond, &pp->lock);
        pp->sum = mix(pp->sum, pp->turn * 2 + (uint64_t)me->side);
        pp->turn++;
        pthread_cond_signal(&pp->cond);
        pthread_mutex_unlock(&pp->lock);
    }
    for (unsigned long i = 0; i < pp->rounds; i++) {
        pthread_mutex_lock(&pp->lock);
        pp->counter++;
        pthread_mutex_unlock(&pp->lock);
    }
    return NULL;
}

static int work_futex(unsigned long rounds)
{
    struct pingpong pp = { .rounds = rounds, .sum = MIX_INIT };
    struct pp_side sides[2] = { { &pp, 0 }, { &pp, 1 } };
    struct work_result r = { 0 };
    pthread_t tid[2];
    int started = 0;
    pthread_mutex_init(&pp.lock, NULL);
    pthread_cond_init(&pp.cond, NULL);
    for (; started < 2; started++)
        if (pthread_create(&tid[started], NULL, pingpong_thread, &sides[started]) != 0)
            break;
    if (started < 2) {
        /* The lone thread would wait for its turn forever: give it every turn. */
        printf("work futex: pthread_create failed FAIL\n");
        fflush(stdout);
        power_off();
    }
    for (int i = 0; i < 2; i++)
        pthread_join(tid[i], NULL);
    pthread_cond_destroy(&pp.cond);
    pthread_mutex_destroy(&pp.lock);
    r.sum = pp.sum;
    r.count = pp.turn == 2 * rounds && pp.counter == 2 * rounds ? rounds : 0;
    if (pp.failed)
        snprintf(r.error, sizeof r.error, "setaffinity failed");
    return work_report("futex", &r, rounds, "%lu condvar round trips cpu %d<->%d, mutex %llu/%lu",
                       rounds, work_cpu[0], work_cpu[1], (unsigned long long)pp.counter, 2 * rounds);
}

/* fork + exec: each child, pinned on the CPUs in turn, execs "/init true K",
 * which exits at once with status K. */
static int work_exec(unsigned long count)
{
    struct work_result r = { .sum = MIX_INIT };
    fflush(stdout);
    for (unsigned long i = 0; i < count && !r.error[0]; i++) {
        int want = (int)(i * 37 % 101);
        pid_t pid = fork();
        if (pid == 0) {
            char arg[16];
            snprintf(arg, sizeof arg, "%d", want);
            if (pin_to(online[i % (unsigned long)nonline]) != 0)
                _exit(125);
            execl("/init", "/init", "true", arg, (char *)NULL);
            _exit(126);
        }
        int status;
        errno = 0;
        if (pid < 0)
            FAIL_IN(&r, "fork");
        else if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != want)
            FAIL_IN(&r, "exit status");
        else {
            r.sum = mix(r.sum, (uint64_t)WEXITSTATUS(status));
            r.count++;
        }
    }
    return work_report("exec", &r, count, "%lu fork+exec of /init on cpus 0-%d", count, online[nonline - 1]);
}

/* Signals: a driver process queues SIGUSR1 with value i to an echo process on
 * the other CPU, which answers with 3i+1; both take them with sigwaitinfo. */
static int work_signals(unsigned long rounds)
{
    struct work_result *r = shared_result();
    sigset_t usr1, old;
    if (!r) {
        printf("work signals: mmap: %s FAIL\n", strerror(errno));
        return -1;
    }
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigprocmask(SIG_BLOCK, &usr1, &old);  /* inherited: nothing is ever delivered */
    fflush(stdout);
    pid_t echo = fork();
    if (echo == 0) {
        if (pin_to(work_cpu[1]) != 0)
            _exit(2);
        for (;;) {
            siginfo_t info;
            if (sigwaitinfo(&usr1, &info) != SIGUSR1)
                _exit(3);
            int v = info.si_value.sival_int;
            if (v < 0)
                _exit(0);
            if (sigqueue(info.si_pid, SIGUSR1, (union sigval){ .sival_int = 3 * v + 1 }) != 0)
                _exit(4);
        }
    }
    pid_t driver = echo < 0 ? -1 : fork();
    if (driver == 0) {
        if (pin_to(work_cpu[0]) != 0)
            FAIL_IN(r, "setaffinity");
        uint64_t h = MIX_INIT;
        for (unsigned long i = 0; i < rounds && !r->error[0]; i++) {
            siginfo_t info;
            errno = 0;
            if (sigqueue(echo, SIGUSR1, (union sigval){ .sival_int = (int)i }) != 0)
                FAIL_IN(r, "sigqueue");
            else if (sigwaitinfo(&usr1, &info) != SIGUSR1)
                FAIL_IN(r, "sigwaitinfo");
            else if (info.si_pid != echo || info.si_value.sival_int != 3 * (int)i + 1)
                FAIL_IN(r, "reply");
            else {
                h = mix(h, (uint64_t)info.si_value.sival_int);
                r->count++;
            }
        }
        r->sum = h;
        sigqueue(echo, SIGUSR1, (union sigval){ .sival_int = -1 });
        _exit(0);
    }
    if (echo < 0 || driver < 0) {
        FAIL_IN(r, "fork");
        if (echo > 0)
            sigqueue(echo, SIGUSR1, (union sigval){ .sival_int = -1 });
    }
    reap(driver, r, "driver");
    reap(echo, r, "echo");
    sigprocmask(SIG_SETMASK, &old, NULL);
    int ret = work_report("signals", r, rounds, "%lu sigqueue round trips cpu %d<->%d", rounds, work_cpu[0],
                          work_cpu[1]);
    munmap(r, sizeof *r);
    return ret;
}

/* Per-CPU threads: clock_gettime (the vDSO: U-mode rdtime) and sched_yield. */
struct cpu_worker {
    int cpu;
    int yield;            /* 0: clock_gettime loop, 1: sched_yield loop */
    unsigned long n;
    uint64_t done;
    int failed;
};

static void *cpu_worker_thread(void *arg)
{
    struct cpu_worker *w = arg;
    if (pin_to(w->cpu) != 0)
        w->failed = 1;
    struct timespec prev = { 0, 0 }, now;
    for (unsigned long i = 0; i < w->n; i++) {
        if (w->yield) {
            if (sched_yield() != 0)
                w->failed = 1;
        } else {
            if (clock_gettime(CLOCK_MONOTONIC, &now) != 0 || now.tv_sec < prev.tv_sec ||
                (now.tv_sec == prev.tv_sec && now.tv_nsec < prev.tv_nsec))
                w->failed = 1;
            prev = now;
        }
        w->done++;
    }
    return NULL;
}

/* Runs per_cpu threads pinned on every online CPU; r gets the totals. */
static void run_cpu_workers(int yield, int per_cpu, unsigned long n, struct work_result *r)
{
    struct cpu_worker w[2 * MAX_CPUS];
    pthread_t tid[2 * MAX_CPUS];
    int nt = 0;
    for (int i = 0; i < nonline; i++)
        for (int k = 0; k < per_cpu; k++) {
            w[nt] = (struct cpu_worker){ .cpu = online[i], .yield = yield, .n = n };
            if (pthread_create(&tid[nt], NULL, cpu_worker_thread, &w[nt]) != 0) {
                snprintf(r->error, sizeof r->error, "pthread_create failed");
                goto join;
            }
            nt++;
        }
join:
    r->sum = MIX_INIT;
    for (int i = 0; i < nt; i++) {
        pthread_join(tid[i], NULL);
        r->count += w[i].done;
        r->sum = mix(r->sum, w[i].done);
        if (w[i].failed && !r->error[0])
            snprintf(r->error, sizeof r->error, "%s failed on cpu %d",
                     yield ? "sched_yield" : "clock_gettime (or it went backwards)", w[i].cpu);
    }
}

static int work_clock(unsigned long calls)
{
    struct work_result r = { 0 };
    run_cpu_workers(0, 1, calls, &r);
    return work_report("clock", &r, calls * (unsigned long)nonline,
                       "%d threads x %lu clock_gettime, monotonic", nonline, calls);
}

static int work_yield(unsigned long calls)
{
    struct work_result r = { 0 };
    run_cpu_workers(1, 2, calls, &r);
    return work_report("yield", &r, 2 * calls * (unsigned long)nonline, "%d threads x %lu sched_yield",
                       2 * nonline, calls);
}

/* Runs every part with counts scaled by n; prints "work: ok" or "work: FAIL <parts>". */
static int work(unsigned long n)
{
    char failed[128] = "";
    if (refresh_online() < 0) {
        printf("work: FAIL cannot read online cpus\n");
        return -1;
    }
    work_cpu[0] = online[0];
    work_cpu[1] = online[nonline - 1];
    static const char *const names[] = { "pipes", "futex", "exec", "signals", "clock", "yield" };
    for (int part = 0; part < 6; part++) {
        int r;
        switch (part) {
        case 0: r = work_pipes(n * WORK_PIPE_ROUNDS); break;
        case 1: r = work_futex(n * WORK_FUTEX_ROUNDS); break;
        case 2: r = work_exec(n * WORK_EXECS); break;
        case 3: r = work_signals(n * WORK_SIGNAL_ROUNDS); break;
        case 4: r = work_clock(n * WORK_CLOCK_CALLS); break;
        default: r = work_yield(n * WORK_YIELDS); break;
        }
        if (r != 0) {
            size_t len = strlen(failed);
            snprintf(failed + len, sizeof failed - len, "%s%s", len ? " " : "", names[part]);
        }
        fflush(stdout);
    }
    if (failed[0])
        printf("work: FAIL %s\n", failed);
    else
        printf("work: ok\n");
    fflush(stdout);
    return failed[0] ? -1 : 0;
}

/* Parses N for "work N" / emu.work=N (empty: the default). Returns 0 if bad. */
static unsigned long work_arg(const char *s)
{
    char *end;
    if (!*s)
        return WORK_DEFAULT_N;
    unsigned long n = strtoul(s, &end, 10);
    return *end || n > WORK_MAX_N ? 0 : n;
}

/* ------------------------------------------------------------------------ */
/* Interactive prompt                                                        */
/* ------------------------------------------------------------------------ */

static void cmd_cat(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        printf("cat: %s: %s\n", path, strerror(errno));
        return;
    }
    ssize_t n;
    int last = '\n';
    fflush(stdout);
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        last = buf[n - 1];
    }
    if (n < 0)
        printf("cat: %s: %s\n", path, strerror(errno));
    else if (last != '\n')
        putchar('\n');
    close(fd);
}

static void shell(void)
{
    char line[1024];
    for (;;) {
        printf("linux> ");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin))
            break;  /* EOF on the console */
        line[strcspn(line, "\r\n")] = '\0';

        char *cmd = line;
        while (*cmd == ' ' || *cmd == '\t')
            cmd++;
        char *arg = cmd + strcspn(cmd, " \t");
        if (*arg) {
            *arg++ = '\0';
            while (*arg == ' ' || *arg == '\t')
                arg++;
        }

        if (!*cmd) {
            continue;
        } else if (!strcmp(cmd, "echo")) {
            printf("%s\n", arg);
        } else if (!strcmp(cmd, "cpus")) {
            if (refresh_online() == 0)
                printf("%d\n", nonline);
            else
                printf("error: cannot read online cpus\n");
        } else if (!strcmp(cmd, "stress")) {
            char *end;
            unsigned long n = strtoul(arg, &end, 10);
            if (!*arg || *end || n == 0 || n > 100000000UL) {
                printf("error: usage: stress N (1..100000000)\n");
            } else {
                char msg[256];
                int r = run_stress(n, msg, sizeof msg);
                printf("stress: %s %s\n", r == 0 ? "ok" : "FAIL", msg);
            }
        } else if (!strcmp(cmd, "work")) {
            unsigned long n = work_arg(arg);
            if (n == 0)
                printf("error: usage: work [N] (1..%lu, default %lu)\n", WORK_MAX_N, WORK_DEFAULT_N);
            else
                work(n);
        } else if (!strcmp(cmd, "cat")) {
            if (*arg)
                cmd_cat(arg);
            else
                printf("error: usage: cat FILE\n");
        } else if (!strcmp(cmd, "selftest")) {
            selftest();
        } else if (!strcmp(cmd, "poweroff")) {
            power_off();
        } else if (!strcmp(cmd, "help")) {
            printf("commands: echo TEXT | cpus | stress N | work [N] | cat FILE | selftest | poweroff | help\n");
        } else {
            printf("error: unknown command '%s' (try help)\n", cmd);
        }
    }
    printf("\ninit: end of input\n");
    power_off();
}

/* ------------------------------------------------------------------------ */

static void mount_fs(const char *src, const char *dir, const char *type)
{
    mkdir(dir, 0755);  /* already in the initramfs; harmless if it exists */
    if (mount(src, dir, type, 0, NULL) != 0)
        printf("init: mount %s on %s: %s\n", type, dir, strerror(errno));
}

int main(int argc, char **argv)
{
    /* "/init true [K]" (not as PID 1): exit at once with status K, for work's fork+exec. */
    if (argc >= 2 && !strcmp(argv[1], "true") && getpid() != 1)
        return argc >= 3 ? atoi(argv[2]) & 0x7f : 0;

    /* The kernel opened /dev/console as fds 0, 1 and 2. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("init: emu selftest init, pid %d\n", (int)getpid());

    mount_fs("proc", "/proc", "proc");
    mount_fs("sysfs", "/sys", "sysfs");
    mount_fs("devtmpfs", "/dev", "devtmpfs");  /* for /dev/vda */

    selftest();

    /* emu.work=N: the workload right after the selftest (N empty: the default). */
    char buf[4096];
    const char *w = cmdline_find("emu.work=", 0, buf, sizeof buf);
    if (w) {
        unsigned long n = work_arg(w);
        if (n)
            work(n);
        else
            printf("work: FAIL bad emu.work=%s (1..%lu)\n", w, WORK_MAX_N);
        fflush(stdout);
    }

    if (cmdline_has("emu.selftest=poweroff"))
        power_off();
    shell();  /* never returns */
}
