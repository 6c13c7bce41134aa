/* hello: the smallest program. */
#include "ulib.h"

int main(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("hello, world! (pid %ld)\n", getpid());
    return 0;
}
