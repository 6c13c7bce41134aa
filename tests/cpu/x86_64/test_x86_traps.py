"""x86_64 exceptions: each vector the CPU model raises enters the guest's IDT with the
frame (rip, cs, rflags, rsp, ss), error code and CR2 the hardware gives, natively
(QEMU's do_interrupt in the patched engine), in kernel and in user mode."""
from __future__ import annotations

from tests.cpu.x86_64.x86guest import ENTER_USER, KCODE, KDATA, UCODE, UDATA, USER_ALIAS, build, needs_x86, run

pytestmark = needs_x86

NP_SELECTOR = 0x68  # the not-present data descriptor after the TSS descriptors


def test_each_exception_vector_with_its_frame_and_error_code(tmp_path):
    elf = build("""
main:
    mov rax, 0x00CF12000000FFFF   # a data descriptor with P = 0
    mov [rip + gdt_spare], rax    # selector 0x68
    EXPECT_FAULT 1f
    xor edx, edx
    xor eax, eax
    .globl f_de
f_de:
    div rdx                       # 0: divide error
1:  EXPECT_FAULT 2f
    pushfq
    or qword ptr [rsp], 0x100     # TF: a debug trap after the next instruction
    popfq
    .globl f_db
f_db:
    nop
    .globl f_db_after
f_db_after:
    nop
2:  EXPECT_FAULT 3f
    .globl f_bp
f_bp:
    int3                          # 3: breakpoint (a trap: rip after it)
    .globl f_bp_after
f_bp_after:
3:  EXPECT_FAULT 4f
    .globl f_ud
f_ud:
    ud2                           # 6: invalid opcode
4:  EXPECT_FAULT 5f
    mov rax, cr0
    or rax, 8                     # CR0.TS
    mov cr0, rax
    .globl f_nm
f_nm:
    fld1                          # 7: device not available
5:  clts
    EXPECT_FAULT 6f
    mov ax, 0x68
    .globl f_np
f_np:
    mov ds, ax                    # 11: segment not present, error = selector
6:  EXPECT_FAULT 61f
    mov ax, 0x68
    .globl f_ss
f_ss:
    mov ss, ax                    # 12: stack segment not present, error = selector
61: EXPECT_FAULT 7f
    mov ax, 0x1000
    .globl f_gp
f_gp:
    mov ds, ax                    # 13: beyond the GDT limit, error = selector
7:  EXPECT_FAULT 8f
    mov rax, 0x80000000
    .globl f_pf_read
f_pf_read:
    mov rbx, [rax]                # 14: not present, read, supervisor
8:  EXPECT_FAULT 9f
    mov rax, 0x80000008
    .globl f_pf_write
f_pf_write:
    mov [rax], rbx                # 14: not present, write
9:  EXPECT_FAULT 10f
    fninit
    fnstcw [rip + cw]
    and word ptr [rip + cw], ~4   # unmask x87 zero-divide
    fldcw [rip + cw]
    fld1
    fldz
    fdivp st(1), st
    .globl f_mf
f_mf:
    fwait                         # 16: x87 error (CR0.NE)
10: EXPECT_FAULT 11f
    .globl f_int
f_int:
    int 0x81                      # a software interrupt through an IST gate
11: EXPECT_FAULT 12f
    lea rax, [rip + idt]
    and byte ptr [rax + 13 * 16 + 5], 0x7F   # #GP's gate not present
    mov ax, 0x1000
    .globl f_df
f_df:
    mov ds, ax                    # #GP, whose delivery faults: 8, double fault
12: mov ax, KDATA
    mov ds, ax
    POWER_OFF
    .data
cw: .word 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    recs = r.records()
    got = [(x["vector"], x["error"], x["rip"]) for x in recs]
    assert got == [
        (0, 0, r.sym("f_de")),
        (1, 0, r.sym("f_db_after")),  # a trap: after the traced instruction
        (3, 0, r.sym("f_bp_after")),
        (6, 0, r.sym("f_ud")),
        (7, 0, r.sym("f_nm")),
        (11, NP_SELECTOR, r.sym("f_np")),
        (12, NP_SELECTOR, r.sym("f_ss")),
        (13, 0x1000, r.sym("f_gp")),
        (14, 0, r.sym("f_pf_read")),
        (14, 2, r.sym("f_pf_write")),
        (16, 0, r.sym("f_mf")),
        (0x81, 0, r.sym("f_int") + 2),  # int n: rip after it (CD 81)
        (8, 0, r.sym("f_df")),
    ]
    assert recs[8]["cr2"] == 0x8000_0000 and recs[9]["cr2"] == 0x8000_0008
    for x in recs:
        assert (x["cs"], x["ss"]) == (KCODE, KDATA)  # kernel mode, no stack switch
        assert x["hrsp"] == x["rsp"] or x["vector"] == 0x81
    assert recs[1]["rflags"] & 0x100  # TF was set in the interrupted context
    assert recs[11]["hrsp"] == r.sym("ist_stack_top")  # IST 1: the handler ran on its own stack
    assert r.machine.cpu.engine.native_counts()[14] == 2


def test_page_fault_and_general_protection_from_user_mode(tmp_path):
    elf = build(f"""
main:
    EXPECT_FAULT 1f
{ENTER_USER}
1:  EXPECT_FAULT 2f
    lea rax, [rip + user_hlt]
    add rax, {USER_ALIAS}
    push {UDATA}
    push rbx
    push 0x202
    push {UCODE}
    push rax
    iretq
2:  POWER_OFF

    .globl user_code
user_code:
    mov rax, 0x80001234
    .globl u_pf
u_pf:
    mov rbx, [rax]                # not present, read, user: error 4
    .globl user_hlt
user_hlt:
    hlt                           # privileged at CPL 3: #GP(0)
    .bss
    .fill 4096, 1, 0
    .globl user_stack_top
user_stack_top:
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    pf, gp = r.records()
    user_sp = r.sym("user_stack_top") + USER_ALIAS
    assert (pf["vector"], pf["error"], pf["cr2"]) == (14, 4, 0x8000_1234)
    assert pf["rip"] == r.sym("u_pf") + USER_ALIAS
    assert (pf["cs"], pf["ss"], pf["rsp"]) == (UCODE, UDATA, user_sp)
    assert pf["rflags"] & 0x200
    assert pf["hrsp"] == r.sym("trap_stacks_top")  # TSS.RSP0 of CPU 0
    assert (gp["vector"], gp["error"], gp["rip"]) == (13, 0, r.sym("user_hlt") + USER_ALIAS)
    assert (gp["cs"], gp["ss"]) == (UCODE, UDATA)


def test_the_same_fault_forever_is_reported_as_a_fault_loop(tmp_path):
    elf = build("""
main:
    lea rax, [rip + f_loop]
    mov [rip + resume], rax
    mov [rip + resume_rsp], rsp
    .globl f_loop
f_loop:
    ud2
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 122, r.result.reason
