/* The user library: system call stubs, printf, strings, readline. */
#ifndef REF_ULIB_H
#define REF_ULIB_H
#include <stdint.h>
#include "../common/fmt.h"
#include "../common/sysnum.h"

long write(int fd, const void *buf, unsigned long len);
long read(int fd, void *buf, unsigned long len);
long getpid(void);
long gettid(void);
long yield(void);
long sleep_ms(unsigned long ms);
long gettime(void);              /* microseconds since boot */
long getcpu(void);               /* the hart that executed this call */
long spawn(const char *cmdline);
long wait(long pid, int *status);
__attribute__((noreturn)) void exit(int code);
long ps(struct ps_entry *buf, long max);
__attribute__((noreturn)) void poweroff(void);

int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int atoi(const char *s);
int readline(char *buf, int max);   /* echoes as it reads; returns the length */

static inline uint64_t rdtime(void)
{
    uint64_t t;
    __asm__ volatile("rdtime %0" : "=r"(t));
    return t;
}

#endif
