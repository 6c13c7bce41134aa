/* stress [N]: N null system calls (getpid), each after a pseudo-random pause of 0 to 63
 * loop iterations (a fixed LCG: the same pauses every run), with a line every 10,000
 * calls. Unlike bench's even loop, the pauses move where timer ticks and the harts'
 * scheduling rounds fall in the system-call path from one call to the next: the load
 * that shows a race (bug=lostwake) once in a while. */
#include "ulib.h"

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    uint64_t lcg = 1;
    for (int i = 1; i <= n; i++) {
        lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
        for (volatile unsigned k = (unsigned)(lcg >> 58); k; k--)
            ;
        getpid();
        if (i % 10000 == 0 || i == n)
            printf("stress: %d calls\n", i);
    }
    return 0;
}
