/* bench [N]: N null system calls (getpid); mean latency in time-CSR ticks, and the hart
 * that executed them (one getcpu before and one after the timed loop). */
#include "ulib.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    if (n < 1)
        n = 1;
    long hart = getcpu(), pid = getpid(), mixed = 0;   /* warm-up calls, outside the timing */
    uint64_t t0 = rdtime();
    for (int i = 0; i < n; i++)
        if (getpid() != pid)
            mixed = 1;
    uint64_t t1 = rdtime();
    if (getcpu() != hart)
        mixed = 1;
    if (mixed)
        printf("bench: %d calls, mean %lu ticks, executed on several harts\n", n,
               (unsigned long)((t1 - t0) / (uint64_t)n));
    else
        printf("bench: %d calls, mean %lu ticks, executed on hart %ld\n", n,
               (unsigned long)((t1 - t0) / (uint64_t)n), hart);
    return 0;
}
