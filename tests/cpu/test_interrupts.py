"""Timer, IPI, HSM, PLIC/UART interrupts and the time CSR, on one and two harts."""
from __future__ import annotations

import os

from tests.guest import build, needs_binutils, run

pytestmark = needs_binutils

TIME, IPI, HSM = 0x54494D45, 0x735049, 0x48534D


def test_rdtime_emulated_and_monotonic_across_harts(tmp_path):
    # Hart 0 publishes its time; hart 1 checks its own reads never go below what it saw
    # published, and both check their own reads never go backwards.
    elf = build(f"""
main:
    bnez a0, second
    li a0, 1
    la a1, _start
    li a2, 0
    SBI {HSM}, 0
    li s1, 20000
1:  rdtime t0
    la t1, published
    ld t2, 0(t1)
    bltu t0, t2, bad
    sd t0, 0(t1)
    addi s1, s1, -1
    bnez s1, 1b
2:  la t1, done1
    ld t1, 0(t1)
    beqz t1, 2b
    EXIT_PASS
bad:
    li t0, 0x100000
    li t1, (1 << 16) | 0x3333
    sw t1, 0(t0)
second:
    li s1, 20000
    li s2, 0
1:  la t1, published
    ld t2, 0(t1)
    csrr t0, time
    bltu t0, t2, bad
    bltu t0, s2, bad
    mv s2, t0
    addi s1, s1, -1
    bnez s1, 1b
    la t1, done1
    li t2, 1
    sd t2, 0(t1)
3:  j 3b
    .data
published: .dword 0
done1: .dword 0
    .text
""", tmp_path)
    r = run(elf, harts=2)
    assert r.result.exit_code == 0, r.result.reason
    stats = r.result.stats["harts"]
    assert stats[0]["rdtime"] >= 20000 and stats[1]["rdtime"] >= 20000


def test_timer_interrupt_delivery(tmp_path):
    elf = build(f"""
main:
    rdtime s1
    li t0, 10000            # 1 ms at 10 MHz
    add a0, s1, t0
    mv s2, a0
    SBI {TIME}, 0
    li t0, 0x20             # sie.STIE
    csrs sie, t0
    csrsi sstatus, 2        # SIE
1:  la t0, rec
    ld t0, 0(t0)
    bnez t0, 1f
    wfi
    j 1b
1:
    csrci sstatus, 2
    rdtime t1
    la t0, out
    sd s2, 0(t0)            # deadline
    sd t1, 8(t0)            # time after the interrupt
    EXIT_PASS
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    cause, _epc, _tval = r.traps()[0]
    assert cause == (1 << 63) | 5
    deadline, after = r.word("out", 0), r.word("out", 1)
    assert deadline <= after < deadline + 2000  # on time, not a quantum late
    assert r.result.stats["wfi_parks"] >= 1  # WFI parked the hart; idle skip woke it


def test_hsm_start_passes_hartid_and_opaque_and_ipis_go_both_ways(tmp_path):
    elf = build(f"""
main:
    bnez a0, second
    li t0, 2                # sie.SSIE
    csrs sie, t0
    li a0, 1
    la a1, _start
    li a2, 0x1234abcd       # opaque
    SBI {HSM}, 0
    la t0, out
    sd a0, 16(t0)           # hart_start's error code
    # wait until hart 1 is ready, then IPI it
1:  la t0, ready
    ld t0, 0(t0)
    beqz t0, 1b
    li a0, 2                # mask: hart 1
    li a1, 0
    SBI {IPI}, 0
    csrsi sstatus, 2
2:  la t0, rec              # hart 1 IPIs back: two traps in all
    ld t0, 0(t0)
    li t1, 2
    beq t0, t1, 2f
    wfi
    j 2b
2:
    csrci sstatus, 2
    li a0, 1
    SBI {HSM}, 2            # hart 1 status
    la t0, out
    sd a1, 24(t0)
    EXIT_PASS
second:
    la t0, out
    sd a0, 0(t0)            # hartid
    sd a1, 8(t0)            # opaque
    li t0, 2
    csrs sie, t0
    la t0, ready
    li t1, 1
    sd t1, 0(t0)
    csrsi sstatus, 2
3:  la t2, rec
    ld t2, 0(t2)
    bnez t2, 3f
    wfi
    j 3b
3:
    csrci sstatus, 2
    li t0, 2
    csrc sip, t0
    li a0, 1                # mask: hart 0
    li a1, 0
    SBI {IPI}, 0
4:  wfi
    j 4b
    .data
ready: .dword 0
    .text
""", tmp_path)
    r = run(elf, harts=2)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("out", 0) == 1
    assert r.word("out", 1) == 0x1234ABCD
    assert r.word("out", 2) == 0  # SBI_SUCCESS
    assert r.word("out", 3) == 0  # hart 1 STARTED (parked in WFI counts as started)
    causes = sorted(t[0] for t in r.traps())
    assert causes == [(1 << 63) | 1, (1 << 63) | 1]  # one SSI on each hart


def test_plic_claim_complete_from_uart_rx(tmp_path):
    elf = build("""
main:
    li s0, 0x10000000       # UART
    li t0, 1
    sb t0, 1(s0)            # IER: received data available
    li s1, 0x0c000000       # PLIC
    li t0, 1
    sw t0, 40(s1)           # priority[10] = 1
    li t0, 0x0c002080       # enable, context 1 (hart 0 S-mode)
    li t1, 1 << 10
    sw t1, 0(t0)
    li t2, 0x0c201000       # threshold, context 1
    sw zero, 0(t2)
    li t0, 0x200            # sie.SEIE
    csrs sie, t0
    csrsi sstatus, 2
1:  la t0, rec
    ld t0, 0(t0)
    bnez t0, 1f
    wfi
    j 1b
1:
    csrci sstatus, 2
    li t2, 0x0c201004
    lw t3, 0(t2)            # claim
    lbu t4, 0(s0)           # the byte
    lw t5, 0(t2)            # second claim: nothing pending
    sw t3, 0(t2)            # complete
    la t0, out
    sd t3, 0(t0)
    sd t4, 8(t0)
    sd t5, 16(t0)
    EXIT_PASS
""", tmp_path)
    rfd, wfd = os.pipe()
    os.write(wfd, b"A")
    try:
        r = run(elf, stdin=rfd)
    finally:
        os.close(rfd)
        os.close(wfd)
    assert r.result.exit_code == 0, r.result.reason
    assert r.traps()[0][0] == (1 << 63) | 9
    assert r.word("out", 0) == 10
    assert r.word("out", 1) == ord("A")
    assert r.word("out", 2) == 0
