/* sleep MS: sleep_ms(MS), then check that at least MS milliseconds passed. */
#include "ulib.h"

int main(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: sleep MS\n");
        return 1;
    }
    int ms = atoi(argv[1]);
    long t0 = gettime();
    sleep_ms((unsigned long)ms);
    long us = gettime() - t0;
    if (us < ms * 1000L) {
        printf("sleep: ERROR woke after %ld us\n", us);
        return 1;
    }
    printf("sleep: slept %d ms\n", ms);
    return 0;
}
