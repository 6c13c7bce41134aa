/* The user library: system call stubs (ecall, a7 = number), printf, readline. */
#include "ulib.h"

static long sc(long n, long a0, long a1, long a2)
{
    register long r0 __asm__("a0") = a0;
    register long r1 __asm__("a1") = a1;
    register long r2 __asm__("a2") = a2;
    register long r7 __asm__("a7") = n;
    __asm__ volatile("ecall" : "+r"(r0) : "r"(r1), "r"(r2), "r"(r7) : "memory");
    return r0;
}

long write(int fd, const void *buf, unsigned long len) { return sc(SYS_write, fd, (long)buf, (long)len); }
long read(int fd, void *buf, unsigned long len) { return sc(SYS_read, fd, (long)buf, (long)len); }
long getpid(void) { return sc(SYS_getpid, 0, 0, 0); }
long gettid(void) { return sc(SYS_gettid, 0, 0, 0); }
long yield(void) { return sc(SYS_yield, 0, 0, 0); }
long sleep_ms(unsigned long ms) { return sc(SYS_sleep_ms, (long)ms, 0, 0); }
long gettime(void) { return sc(SYS_gettime, 0, 0, 0); }
long getcpu(void) { return sc(SYS_getcpu, 0, 0, 0); }
long spawn(const char *cmdline) { return sc(SYS_spawn, (long)cmdline, 0, 0); }
long wait(long pid, int *status) { return sc(SYS_wait, pid, (long)status, 0); }
long ps(struct ps_entry *buf, long max) { return sc(SYS_ps, (long)buf, max, 0); }

void exit(int code)
{
    sc(SYS_exit, code, 0, 0);
    for (;;)
        ;
}

void poweroff(void)
{
    sc(SYS_poweroff, 0, 0, 0);
    for (;;)
        ;
}

int printf(const char *f, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, f);
    int n = vfmt(buf, sizeof buf, f, ap);
    va_end(ap);
    write(1, buf, (unsigned long)n);
    return n;
}

int atoi(const char *s)
{
    int v = 0, neg = 0;
    if (*s == '-')
        neg = 1, s++;
    while (*s >= '0' && *s <= '9')
        v = v * 10 + (*s++ - '0');
    return neg ? -v : v;
}

/* Reads one character per read() call and echoes it; CR, LF or CR LF end the line. */
int readline(char *buf, int max)
{
    static char last;
    int n = 0;
    for (;;) {
        char c;
        if (read(0, &c, 1) != 1)
            continue;
        char prev = last;
        last = c;
        if (c == '\n' && prev == '\r')
            continue;
        if (c == '\r' || c == '\n') {
            write(1, "\n", 1);
            buf[n] = 0;
            return n;
        }
        if (c == 0x7f || c == '\b') {
            if (n) {
                n--;
                write(1, "\b \b", 3);
            }
            continue;
        }
        if (c < ' ' || n >= max - 1)
            continue;
        buf[n++] = c;
        write(1, &c, 1);
    }
}

int main(int argc, char **argv);

/* called by crt0 with the command line the kernel put on our stack */
void umain(char *cmdline)
{
    char *argv[16];
    int argc = 0;
    char *p = cmdline;
    while (*p && argc < 15) {
        while (*p == ' ')
            *p++ = 0;
        if (!*p)
            break;
        argv[argc++] = p;
        while (*p && *p != ' ')
            p++;
    }
    argv[argc] = 0;
    exit(main(argc, argv));
}
