/* System call numbers and shared ABI structs of the reference guest.
 * Where Linux has the same call, its riscv64 number is reused; the rest are ours (500+). */
#ifndef REF_SYSNUM_H
#define REF_SYSNUM_H

#define SYS_read      63   /* read(fd=0, buf, len) -> bytes (waits for console input) */
#define SYS_write     64   /* write(fd=1|2, buf, len) -> len */
#define SYS_exit      93   /* exit(code), never returns */
#define SYS_yield     124  /* yield() -> 0 */
#define SYS_getcpu    168  /* getcpu() -> hart that executed this call */
#define SYS_getpid    172  /* getpid() -> pid */
#define SYS_gettid    178  /* gettid() -> tid (== pid: one thread per task) */
#define SYS_gettime   500  /* gettime() -> microseconds since boot */
#define SYS_sleep_ms  501  /* sleep_ms(ms) -> 0 */
#define SYS_spawn     502  /* spawn(cmdline) -> pid, or -1 if no such program */
#define SYS_wait      503  /* wait(pid or -1, int *status) -> pid, or -1 if no such child */
#define SYS_ps        504  /* ps(struct ps_entry *buf, max) -> number of entries */
#define SYS_poweroff  505  /* poweroff() shuts the machine down (SBI SRST), never returns */

/* task states as reported by SYS_ps */
#define PS_READY    1
#define PS_RUNNING  2
#define PS_SYSCALL  3   /* parked in a system call (sysno says which) */
#define PS_ZOMBIE   4

struct ps_entry {
    int pid, ppid, state, sysno;
    char name[16];
};

#endif
