"""Synchronous traps: cause, sepc and stval exactly as the hardware would report them."""
from __future__ import annotations

from tests.guest import build, needs_binutils, run

pytestmark = needs_binutils

SV39_SETUP = """
    # Sv39: identity gigapage for RAM at 0x80000000 (S only) and a U alias at 0xC0000000.
    la t0, pt_root
    li t1, 0x80000000
    srli t1, t1, 2
    ori t2, t1, 0xCF        # V R W X A D
    sd t2, 16(t0)           # VPN2 = 2
    ori t2, t1, 0xDF        # + U
    sd t2, 24(t0)           # VPN2 = 3: 0xC0000000 -> 0x80000000
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
"""


def test_exception_causes_epc_and_tval(tmp_path):
    elf = build("""
main:
    EXPECT_FAULT 1f
    .globl f_illegal
f_illegal:
    csrw mscratch, zero     # M-mode CSR from S: illegal, stval = instruction bits
1:  EXPECT_FAULT 2f
    .globl f_ebreak
f_ebreak:
    ebreak
2:  EXPECT_FAULT 3f
    .globl f_cebreak
f_cebreak:
    .half 0x9002            # c.ebreak
3:  EXPECT_FAULT 4f
    li t1, 0x40000000
    .globl f_load
f_load:
    ld t2, 8(t1)            # nothing there: load access fault
4:  EXPECT_FAULT 5f
    .globl f_store
f_store:
    sd t2, 16(t1)
5:  EXPECT_FAULT 6f
    .globl f_cload
f_cload:
    .half 0x6518            # c.ld a4, 8(a0): a0 = 0x40000000 below
6:  EXPECT_FAULT 7f
    la t1, f_fetch_target
    li t2, 0x40001000
    .globl f_fetch
f_fetch:
    jr t2                   # fetch from nothing: instruction access fault at 0x40001000
7:  EXPECT_FAULT 8f
    la t1, misaligned
    addi t1, t1, 1
    .globl f_amo
f_amo:
    amoadd.w t2, t2, (t1)   # misaligned AMO
8:  EXIT_PASS
    .data
misaligned: .dword 0
    .text
f_fetch_target:
""".replace("    .half 0x6518", "    li a0, 0x40000000\n    .globl f_cload2\nf_cload2:\n    .half 0x6518"), tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    traps = r.traps()
    insn = 0x34001073  # csrw mscratch, zero
    assert traps[0] == (2, r.sym("f_illegal"), insn)
    assert traps[1] == (3, r.sym("f_ebreak"), r.sym("f_ebreak"))
    assert traps[2][:2] == (3, r.sym("f_cebreak"))
    assert traps[3] == (5, r.sym("f_load"), 0x40000008)
    assert traps[4] == (7, r.sym("f_store"), 0x40000010)
    assert traps[5] == (5, r.sym("f_cload2"), 0x40000008)  # 2-byte instruction: sepc is its own address
    assert traps[6] == (1, 0x40001000, 0x40001000)
    assert traps[7][0] in (4, 6) and traps[7][1] == r.sym("f_amo")  # misaligned AMO
    assert len(traps) == 8


def test_user_ecall_and_page_faults_under_sv39(tmp_path):
    elf = build(SV39_SETUP.join(["""
main:
""", """
    EXPECT_FAULT 1f
    li t1, 0x12345678
    .globl f_lpf
f_lpf:
    ld t2, 0(t1)            # unmapped VA: load page fault, stval = VA
1:  EXPECT_FAULT 2f
    .globl f_spf
f_spf:
    sw t2, 4(t1)
2:  EXPECT_FAULT 3f
    li t1, 0x2000
    .globl f_ipf
f_ipf:
    jalr t1                 # instruction page fault at 0x2000
3:  EXPECT_FAULT 4f
    # enter U-mode at the alias of user_code
    la t0, user_code
    li t1, 0x40000000
    add t0, t0, t1
    csrw sepc, t0
    li t0, 0x100
    csrc sstatus, t0        # SPP = U
    sret
4:  csrw satp, zero
    sfence.vma
    EXIT_PASS
    .globl user_code
user_code:
    li a7, 64
    li a0, 0x77
    .globl u_ecall
u_ecall:
    ecall
    j user_code
"""]), tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    traps = r.traps()
    assert traps[0] == (13, r.sym("f_lpf"), 0x12345678)
    assert traps[1] == (15, r.sym("f_spf"), 0x1234567C)
    assert traps[2] == (12, 0x2000, 0x2000)
    assert traps[3] == (8, r.sym("u_ecall") + 0x40000000, 0)
    assert len(traps) == 4


def test_vectored_stvec_sends_exceptions_to_base(tmp_path):
    elf = build("""
main:
    la t0, trap
    ori t0, t0, 1           # vectored mode
    csrw stvec, t0
    EXPECT_FAULT 1f
    .globl f_brk
f_brk:
    ebreak
1:  EXIT_PASS
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0
    assert r.traps() == [(3, r.sym("f_brk"), r.sym("f_brk"))]


def test_fault_loop_is_reported_not_hung(tmp_path):
    elf = build("""
main:
    csrw stvec, zero        # no handler: every trap faults again at 0
    li t1, 0x40000000
    ld t2, 0(t1)
""", tmp_path)
    r = run(elf)
    from emu.errors import EXIT_FAULT_LOOP

    assert r.result.exit_code == EXIT_FAULT_LOOP


def test_test_finisher_exit_code(tmp_path):
    elf = build("""
main:
    li t0, 0x100000
    li t1, (42 << 16) | 0x3333
    sw t1, 0(t0)
1:  j 1b
""", tmp_path)
    assert run(elf).result.exit_code == 42


def test_a_hart_waiting_for_nothing_is_reported_as_a_hang(tmp_path):
    elf = build("""
main:
    csrw sie, zero          # nothing can wake it: no timer, no IPI, no device
1:  wfi
    j 1b
""", tmp_path)
    from emu.errors import EXIT_GUEST_HANG

    r = run(elf, harts=2)
    assert r.result.exit_code == EXIT_GUEST_HANG
    assert r.result.reason == "hang"
