/* The U-mode programs, each linked on its own at 0x40000000 and embedded here as a
 * flat binary. program_table: { name, start, end } triples, ended by zeros. */
    .macro program name
    .section .rodata.prog_image, "a"
    .balign 16
1:  .incbin "\name\().bin"
2:
    .section .rodata.prog_name, "a"
3:  .asciz "\name"
    .section .rodata.prog_table, "a"
    .balign 8
    .quad 3b, 1b, 2b
    .endm

    .section .rodata.prog_table, "a"
    .balign 8
    .globl program_table
program_table:
    program shell
    program hello
    program echo
    program getcpu
    program bench
    program sleep
    program spin
    program ps
    program fault
    program stress
    .section .rodata.prog_table, "a"
    .quad 0, 0, 0
