/* threads: pthread create/join, a mutex-protected counter, a condition
 * variable hand-off, thread-local storage and a barrier, on all CPUs. */
#include <pthread.h>
#include <unistd.h>
#include "check.h"

#define NTHREADS 4
#define NITER 20000

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static long counter;
static int turn;               /* ping-pong between two threads via cond */
static __thread long tls_value;

static void *adder(void *arg)
{
    long id = (long)arg;
    tls_value = id * 1000;
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < NITER; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return (void *)(tls_value + id);   /* TLS must be per thread */
}

static void *pinger(void *arg)
{
    int me = (int)(long)arg;
    for (int i = 0; i < 200; i++) {
        pthread_mutex_lock(&lock);
        while (turn != me)
            pthread_cond_wait(&cond, &lock);
        turn = !me;
        pthread_cond_broadcast(&cond);
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

int main(void)
{
    test_name = "threads";
    pthread_t t[NTHREADS];
    REQUIRE(pthread_barrier_init(&barrier, NULL, NTHREADS) == 0, "pthread_barrier_init");
    for (long i = 0; i < NTHREADS; i++)
        REQUIRE(pthread_create(&t[i], NULL, adder, (void *)i) == 0, "pthread_create %ld", i);
    for (long i = 0; i < NTHREADS; i++) {
        void *ret;
        CHECK(pthread_join(t[i], &ret) == 0, "pthread_join %ld", i);
        CHECK((long)ret == i * 1001, "thread %ld TLS value %ld", i, (long)ret);
    }
    CHECK(counter == (long)NTHREADS * NITER, "counter %ld == %ld", counter, (long)NTHREADS * NITER);

    pthread_t a, b;
    REQUIRE(pthread_create(&a, NULL, pinger, (void *)0L) == 0, "pthread_create pinger");
    REQUIRE(pthread_create(&b, NULL, pinger, (void *)1L) == 0, "pthread_create ponger");
    CHECK(pthread_join(a, NULL) == 0 && pthread_join(b, NULL) == 0, "join ping-pong");
    printf("threads: %d threads x %d increments, 400 condvar hand-offs\n", NTHREADS, NITER);
    return test_done();
}
