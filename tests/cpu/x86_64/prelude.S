# Common boot code for tests/cpu/x86_64 guests: entered in the 64-bit boot state (emu's
# boot.py: long mode, identity paging, interrupts off) at _start, or by an AP through the
# real-mode SIPI trampoline at 0x8000.  Each CPU loads the test's GDT (kernel and user
# segments, its own TSS), IDT (256 gates to one recording handler), page tables and the
# syscall MSRs, then the BSP runs `main` and the APs `ap_main`.
#
# The handler records (vector, error code, rip, cs, rflags, rsp, ss, cr2, handler rsp,
# cpu) for every entry into `rec`; an exception then resumes in the kernel at `resume`
# (with the stack saved by EXPECT_FAULT), an interrupt is acknowledged (EOI), counted in
# irq_count[cpu][vector] and returned from with iretq.
    .intel_syntax noprefix

    .equ KCODE, 0x08
    .equ KDATA, 0x10
    .equ UDATA, 0x1b
    .equ UCODE, 0x23
    .equ TSS0, 0x28
    .equ LAPIC, 0xFEE00000
    .equ USER_ALIAS, 0x40000000      # VA 1 GiB..2 GiB maps PA 0..1 GiB with U=1
    .equ MAX_CPUS, 4

    .macro EXPECT_FAULT label
    lea rax, [rip + \label]
    mov [rip + resume], rax
    mov [rip + resume_rsp], rsp
    .endm

    .macro POWER_OFF
    mov dx, 0x604
    mov ax, 0x2000
    out dx, ax
99: hlt
    jmp 99b
    .endm

    .macro CPU_ID reg, reg32
    mov \reg, LAPIC
    mov \reg32, [\reg + 0x20]
    shr \reg32, 24
    .endm

    .section .text
    .globl _start
_start:
    cli
    CPU_ID rbx, ebx
    lea rsp, [rip + stacks_top]
    mov rax, rbx
    shl rax, 14
    sub rsp, rax
    lgdt [rip + gdt_ptr]
    push KCODE
    lea rax, [rip + 1f]
    push rax
    retfq
1:  mov ax, KDATA
    mov ds, ax
    mov es, ax
    mov ss, ax
    xor eax, eax
    mov fs, ax
    mov gs, ax
    test rbx, rbx
    jnz 2f
    call build_tables            # the BSP builds the IDT, TSS descriptors and page tables
2:  lea rax, [rip + pml4]
    mov cr3, rax
    lidt [rip + idt_ptr]
    mov rax, rbx
    shl rax, 4
    add rax, TSS0
    ltr ax
    # syscall: EFER.SCE, STAR (kernel CS 0x08, user base 0x10: SS 0x1b, CS 0x23), LSTAR, FMASK (IF)
    mov ecx, 0xC0000080
    rdmsr
    or eax, 1
    wrmsr
    mov ecx, 0xC0000081
    xor eax, eax
    mov edx, (0x10 << 16) | KCODE
    wrmsr
    mov ecx, 0xC0000082
    lea rax, [rip + syscall_entry]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, 0xC0000084
    mov eax, 0x200
    xor edx, edx
    wrmsr
    # the local APIC: software-enabled, spurious vector 0xFF
    mov rax, LAPIC
    mov dword ptr [rax + 0xF0], 0x1FF
    lock inc qword ptr [rip + cpus_up]
    test rbx, rbx
    jnz ap_main
    jmp main

build_tables:
    # IDT: interrupt gates to vec_table[v]; DPL 3 for 3 (int3) and 0x80; IST 1 for 0x81
    lea rsi, [rip + vec_table]
    lea rdi, [rip + idt]
    xor ecx, ecx
3:  mov rax, [rsi + rcx * 8]
    mov rdx, rax
    and edx, 0xFFFF
    or edx, KCODE << 16
    mov r8, rax
    shr r8, 16
    and r8, 0xFFFF
    shl r8, 48
    or rdx, r8
    mov r8, 0x8E
    cmp ecx, 3
    je 4f
    cmp ecx, 0x80
    jne 5f
4:  mov r8, 0xEE
5:  shl r8, 40
    cmp ecx, 0x81
    jne 6f
    bts r8, 32                   # IST 1
6:  or rdx, r8
    mov [rdi], rdx
    shr rax, 32
    mov [rdi + 8], rax
    add rdi, 16
    inc ecx
    cmp ecx, 256
    jne 3b
    # TSS descriptors, one per CPU: RSP0 = the CPU's trap stack, IST1 = ist_stack
    xor ecx, ecx
9:  lea rax, [rip + tss]
    mov rdx, rcx
    imul rdx, 104
    add rax, rdx                 # rax = this CPU's TSS
    lea rdx, [rip + trap_stacks_top]
    mov r8, rcx
    shl r8, 12
    sub rdx, r8
    mov [rax + 4], rdx           # RSP0
    lea rdx, [rip + ist_stack_top]
    mov [rax + 36], rdx          # IST1
    mov word ptr [rax + 102], 104  # no I/O bitmap
    mov rdx, rax
    and rdx, 0xFFFFFF
    shl rdx, 16
    or rdx, 103                  # limit
    mov r8, rax
    shr r8, 24
    and r8, 0xFF
    shl r8, 56
    or rdx, r8
    mov r8, 0x89
    shl r8, 40
    or rdx, r8                   # present, 64-bit available TSS
    lea rdi, [rip + gdt_tss]
    mov r8, rcx
    shl r8, 4
    mov [rdi + r8], rdx
    shr rax, 32
    mov [rdi + r8 + 8], rax
    inc ecx
    cmp ecx, MAX_CPUS
    jne 9b
    # page tables: PDPT[0] identity 1 GiB (kernel), PDPT[1] -> PA 0 with U (user alias),
    # PDPT[3] identity 3..4 GiB (the local APIC), all 2 MiB pages
    lea rax, [rip + pdpt]
    or rax, 7
    mov [rip + pml4], rax
    lea rdi, [rip + pdpt]
    lea rax, [rip + pd_kernel]
    or rax, 7
    mov [rdi], rax
    lea rax, [rip + pd_user]
    or rax, 7
    mov [rdi + 8], rax
    lea rax, [rip + pd_mmio]
    or rax, 7
    mov [rdi + 24], rax
    xor ecx, ecx
10: mov rax, rcx
    shl rax, 21
    mov rdx, rax
    or rdx, 0x83                 # P RW PS
    lea rdi, [rip + pd_kernel]
    mov [rdi + rcx * 8], rdx
    mov rdx, rax
    or rdx, 0x87                 # P RW U PS
    lea rdi, [rip + pd_user]
    mov [rdi + rcx * 8], rdx
    mov rdx, rax
    mov r8, 0xC0000000
    add rdx, r8
    or rdx, 0x9B                 # P RW PWT PCD PS
    lea rdi, [rip + pd_mmio]
    mov [rdi + rcx * 8], rdx
    inc ecx
    cmp ecx, 512
    jne 10b
    ret

# The recording handler.  Stack on entry: vector, error, rip, cs, rflags, rsp, ss.
vec_common:
    push rax
    push rbx
    push rcx
    push rdx
    mov rax, 1
    lock xadd [rip + rec], rax
    shl rax, 7
    lea rbx, [rip + rec + 8]
    add rbx, rax
    mov rcx, [rsp + 32]
    mov [rbx], rcx
    mov rcx, [rsp + 40]
    mov [rbx + 8], rcx
    mov rcx, [rsp + 48]
    mov [rbx + 16], rcx
    mov rcx, [rsp + 56]
    mov [rbx + 24], rcx
    mov rcx, [rsp + 64]
    mov [rbx + 32], rcx
    mov rcx, [rsp + 72]
    mov [rbx + 40], rcx
    mov rcx, [rsp + 80]
    mov [rbx + 48], rcx
    mov rcx, cr2
    mov [rbx + 56], rcx
    lea rcx, [rsp + 88]
    mov [rbx + 64], rcx
    CPU_ID rcx, ecx
    mov [rbx + 72], rcx
    mov rcx, [rsp + 32]
    cmp rcx, 32
    jae 11f
    mov rcx, [rip + resume]      # an exception: resume in the kernel
    mov [rsp + 48], rcx
    mov qword ptr [rsp + 56], KCODE
    mov qword ptr [rsp + 80], KDATA
    mov rcx, [rip + resume_rsp]
    mov [rsp + 72], rcx
    and qword ptr [rsp + 64], ~0x100   # no single-stepping on
    jmp 12f
11: CPU_ID rdx, edx                   # an interrupt: count it, EOI
    shl rdx, 11
    lea rbx, [rip + irq_count]
    add rbx, rdx
    lock inc qword ptr [rbx + rcx * 8]
    cmp rcx, 0x80
    jae 12f                      # software interrupts need no EOI
    mov rbx, LAPIC
    mov dword ptr [rbx + 0xB0], 0
12: pop rdx
    pop rcx
    pop rbx
    pop rax
    add rsp, 16
    iretq

# syscall: count it, return rax + 1 to the caller with sysretq
syscall_entry:
    lock inc qword ptr [rip + syscalls]
    mov [rip + syscall_rcx], rcx
    mov [rip + syscall_r11], r11
    inc rax
    sysretq

# an AP's default work (a test without `ap_main` gets `ap_main: jmp ap_idle`)
ap_idle:
    sti
13: hlt
    jmp 13b

# The AP trampoline: real mode at 0x8000 (SIPI vector 8) to long mode, then _start.
    .section .tramp, "ax"
    .att_syntax
    .code16
    .globl ap_tramp
ap_tramp:
    cli
    xorw %ax, %ax
    movw %ax, %ds
    lgdtl tramp_gdt_ptr
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl $0x08, $tramp32
    .code32
tramp32:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl $pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000000, %eax
    movl %eax, %cr0
    ljmpl $0x18, $tramp64
    .code64
tramp64:
    movl $_start, %eax
    jmp *%rax
    .align 8
tramp_gdt:
    .quad 0, 0x00CF9A000000FFFF, 0x00CF92000000FFFF, 0x00AF9A000000FFFF
tramp_gdt_ptr:
    .word 31
    .long tramp_gdt
    .intel_syntax noprefix

    .section .data
    .align 16
gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF     # 0x08 kernel code 64
    .quad 0x00CF92000000FFFF     # 0x10 kernel data
    .quad 0x00CFF2000000FFFF     # 0x18 user data (DPL 3)
    .quad 0x00AFFA000000FFFF     # 0x20 user code 64 (DPL 3)
gdt_tss:
    .fill 2 * MAX_CPUS, 8, 0     # 0x28 + 16 * cpu: TSS descriptors
    .globl gdt_spare
gdt_spare:
    .quad 0                      # 0x68: free for a test's own descriptor
gdt_end:
gdt_ptr:
    .word gdt_end - gdt - 1
    .quad gdt
idt_ptr:
    .word 256 * 16 - 1
    .quad idt
    .globl rec, resume, resume_rsp, irq_count, syscalls, syscall_rcx, syscall_r11, cpus_up
resume: .quad 0
resume_rsp: .quad 0
syscalls: .quad 0
syscall_rcx: .quad 0
syscall_r11: .quad 0
cpus_up: .quad 0

    .section .bss
    .align 4096
pml4: .fill 512, 8, 0
pdpt: .fill 512, 8, 0
pd_kernel: .fill 512, 8, 0
pd_user: .fill 512, 8, 0
pd_mmio: .fill 512, 8, 0
idt: .fill 512, 8, 0
tss: .fill 104 * MAX_CPUS, 1, 0
    .align 16
rec: .fill 1 + 16 * 64, 8, 0
irq_count: .fill 256 * MAX_CPUS, 8, 0
    .align 16
    .fill 4096 * MAX_CPUS, 4, 0
stacks_top:
    .fill 4096 * MAX_CPUS, 1, 0
trap_stacks_top:
    .fill 4096, 1, 0
    .globl ist_stack_top
ist_stack_top:
    .quad 0
