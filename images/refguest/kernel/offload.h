/* The offload request: one per task, built on hart 0 at a syscall trap.
 * A tracer reads these fields at (a0 + offset) on entry to the ref_* stage
 * functions; the offsets are checked at compile time in offload.c and
 * documented in README.md. */
#ifndef REF_OFFLOAD_H
#define REF_OFFLOAD_H
#include <stdint.h>

struct task;
struct ref_req;
typedef void (*ref_waker_t)(struct ref_req *req);

struct ref_req {
    struct task *task;        /*   0 the task that made the call */
    uint64_t num;             /*   8 syscall number (a7) */
    uint64_t args[6];         /*  16 a0..a5 */
    int64_t ret;              /*  64 return value, valid when completed */
    uint64_t completed;       /*  72 0 -> 1 when the result is written */
    ref_waker_t waker;        /*  80 called by the executor to wake the task (ref_wake) */
    uint64_t pid;             /*  88 pid of the task */
    uint64_t seq;             /*  96 request sequence number, 1, 2, ... */
    uint64_t submit_hart;     /* 104 hart that trapped (always 0) */
    uint64_t exec_hart;       /* 112 hart that executed it (what getcpu returns) */
    uint64_t deadline;        /* 120 sleep_ms: wake-up time in time-CSR ticks */
    struct ref_req *next;     /* 128 submission queue / pending list link */
};

/* The submission queue hart 0 pushes onto and hart 1 takes from. */
struct ref_sq {
    spinlock_t lock;          /*   0 */
    uint32_t pad;
    volatile uint64_t count;  /*   8 requests waiting; hart 1 polls this word */
    struct ref_req *head;     /*  16 */
    struct ref_req *tail;     /*  24 */
};

#endif
