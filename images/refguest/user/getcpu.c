/* getcpu: which hart executed this task's system calls. */
#include "ulib.h"

int main(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("getcpu: system calls executed on hart %ld\n", getcpu());
    return 0;
}
