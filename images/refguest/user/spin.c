/* spin [MS]: CPU-bound for MS milliseconds (default 2000), checking the clock now and
 * then; only timer preemption lets anything else run on hart 0 meanwhile. */
#include "ulib.h"

int main(int argc, char **argv)
{
    int ms = argc > 1 ? atoi(argv[1]) : 2000;
    long end = gettime() + ms * 1000L;
    volatile uint64_t x = 1;
    do {
        for (int i = 0; i < (1 << 16); i++)
            x = x * 6364136223846793005UL + 1442695040888963407UL;
    } while (gettime() < end);
    printf("spin: done after %d ms\n", ms);
    return 0;
}
