/* Tiny freestanding formatter shared by kernel and user programs. */
#ifndef REF_FMT_H
#define REF_FMT_H
#include <stdarg.h>
#include <stddef.h>

/* Supports %d %i %u %x %s %c %p %% with optional 'l', width and '0' flag.
 * Always NUL-terminates; returns the length written (truncated to n-1). */
int vfmt(char *buf, size_t n, const char *fmt, va_list ap);
int fmt(char *buf, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
int strncmp(const char *a, const char *b, size_t n);

#endif
