/* ps: list the tasks and their states. */
#include "ulib.h"

static const char *sysname(int n)
{
    switch (n) {
    case SYS_read: return "read";
    case SYS_write: return "write";
    case SYS_exit: return "exit";
    case SYS_yield: return "yield";
    case SYS_getcpu: return "getcpu";
    case SYS_getpid: return "getpid";
    case SYS_gettid: return "gettid";
    case SYS_gettime: return "gettime";
    case SYS_sleep_ms: return "sleep_ms";
    case SYS_spawn: return "spawn";
    case SYS_wait: return "wait";
    case SYS_ps: return "ps";
    case SYS_poweroff: return "poweroff";
    default: return "?";
    }
}

int main(int argc, char **argv)
{
    struct ps_entry list[16];
    char state[24];
    (void)argc, (void)argv;
    long n = ps(list, 16);
    printf("  PID  PPID  STATE           NAME\n");
    for (long i = 0; i < n; i++) {
        struct ps_entry *e = &list[i];
        if (e->state == PS_SYSCALL)
            fmt(state, sizeof state, "syscall %s", sysname(e->sysno));
        else
            fmt(state, sizeof state, "%s", e->state == PS_READY ? "ready"
                                           : e->state == PS_RUNNING ? "running" : "zombie");
        printf("%5d %5d  %-15s %s\n", e->pid, e->ppid, state, e->name);
    }
    return 0;
}
