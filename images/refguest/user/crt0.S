/* U-mode entry: the kernel starts us at 0x40000000 with sp set and a0 = command line. */
    .section .text.start, "ax"
    .globl _start
_start:
    call    umain              /* splits the command line, calls main, then exit() */
1:  j       1b
