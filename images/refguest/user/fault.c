/* fault: store to address 0, which no task maps: the kernel kills the task with an
 * "Error:" line (what test runners look for) and the shell carries on. */
#include "ulib.h"

int main(int argc, char **argv)
{
    (void)argc, (void)argv;
    printf("fault: storing to address 0\n");
    *(volatile long *)0 = 1;
    printf("fault: still alive?\n");
    return 1;
}
