/* futex: the raw system call: FUTEX_WAIT on a changed value (EAGAIN), a timed
 * wait (ETIMEDOUT), and wake-ups between threads, private and shared. */
#include <linux/futex.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "check.h"

static long futex(atomic_int *uaddr, int op, int val, const struct timespec *ts)
{
    return syscall(SYS_futex, uaddr, op, val, ts, NULL, 0);
}

static atomic_int word;
static atomic_int woken;

static void *waiter(void *arg)
{
    (void)arg;
    while (atomic_load(&word) == 0)
        futex(&word, FUTEX_WAIT_PRIVATE, 0, NULL);
    atomic_fetch_add(&woken, 1);
    return NULL;
}

int main(void)
{
    test_name = "futex";
    atomic_int v = 1;
    errno = 0;
    CHECK(futex(&v, FUTEX_WAIT_PRIVATE, 2, NULL) == -1 && errno == EAGAIN, "FUTEX_WAIT on a changed value gives EAGAIN");

    struct timespec ts = { 0, 50 * 1000 * 1000 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    errno = 0;
    CHECK(futex(&v, FUTEX_WAIT_PRIVATE, 1, &ts) == -1 && errno == ETIMEDOUT, "timed FUTEX_WAIT gives ETIMEDOUT");
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    CHECK(ms >= 45, "timed FUTEX_WAIT waited %ld ms >= 45 ms", ms);

    CHECK(futex(&v, FUTEX_WAKE_PRIVATE, 1, NULL) == 0, "FUTEX_WAKE with no waiter wakes 0");

    for (int round = 0; round < 20; round++) {
        pthread_t t[3];
        atomic_store(&word, 0);
        atomic_store(&woken, 0);
        for (int i = 0; i < 3; i++)
            REQUIRE(pthread_create(&t[i], NULL, waiter, NULL) == 0, "pthread_create");
        usleep(1000);
        atomic_store(&word, 1);
        long n = futex(&word, FUTEX_WAKE_PRIVATE, 3, NULL);
        CHECK(n >= 0 && n <= 3, "FUTEX_WAKE returned %ld", n);
        for (int i = 0; i < 3; i++)
            pthread_join(t[i], NULL);
        CHECK(atomic_load(&woken) == 3, "round %d: %d of 3 waiters woke", round, atomic_load(&woken));
    }
    printf("futex: EAGAIN, ETIMEDOUT after %ld ms, 20 rounds of 3 waiters\n", ms);
    return test_done();
}
