"""The patched Unicorn engine (patches/unicorn): it is the one loaded, and what it changes holds.

- per-hart TLB sets with one shared translation cache: code that one hart writes into a
  page another hart has already executed is what that hart runs after its fence.i;
- fma(inf, 0, x) raises the invalid flag (RISC-V's rule, missing from Unicorn 2.1.4's softfloat);
- rdtime is answered natively and user ecalls enter the guest's vector without Python.
"""
from __future__ import annotations

import pytest

from emu.cpu.engine import expected_patch_id, loaded_patch_id, require_patched
from emu.errors import EmuError
from tests.guest import build, needs_binutils, run

HSM = 0x48534D


def test_the_patched_engine_is_loaded() -> None:
    want = expected_patch_id()
    assert want is not None and want.startswith("emu-")
    assert loaded_patch_id() == want, "scripts/setup.sh did not install this checkout's patched Unicorn"
    assert require_patched() == want
    with pytest.raises(EmuError, match="run scripts/setup.sh"):
        require_patched("emu-000000000000")


CODE_COHERENCE = f"""
main:
    bnez a0, other
    li s1, 1
start_next:                 # start harts 1 .. NHARTS-1 (they run `other`)
    li t0, NHARTS
    bge s1, t0, started
    mv a0, s1
    la a1, _start
    li a2, 0
    SBI {HSM}, 0
    addi s1, s1, 1
    j start_next
started:
    la s0, out
    call func               # the page is translated and cached now
    sd a0, 0(s0)
    li s2, 2                # rounds: the writer patches func to return 2, then 3
1:  la t0, turn
    sd s2, 0(t0)            # ask the writer for version s2
2:  la t0, done
    ld t0, 0(t0)
    bne t0, s2, 2b
    fence.i                 # the ISA's rule: the executing hart fences
    call func
    slli t1, s2, 3
    add t1, t1, s0
    sd a0, -8(t1)           # out[s2 - 1]
    addi s2, s2, 1
    li t0, 4
    bne s2, t0, 1b
    EXIT_PASS
other:
    li t0, NHARTS - 1
    bne a0, t0, idle        # the last hart writes; the others just wait
3:  la t0, turn
    ld t1, 0(t0)
    beqz t1, 3b
    la t2, done
    ld t3, 0(t2)
    beq t1, t3, 3b          # already written this version
    slli t4, t1, 20         # li a0, N = addi a0, zero, N: imm in bits 31:20
    li t5, 0x513
    or t4, t4, t5
    la t5, func
    sw t4, 0(t5)
    fence w, w
    sd t1, 0(t2)            # done = N
    j 3b
idle:
    wfi
    j idle
    .data
turn: .dword 0
done: .dword 0
    .text
    .align 12
    .globl func
func:
    li a0, 1
    ret
    .align 12
"""


@needs_binutils
@pytest.mark.parametrize("harts", [2, 4])
def test_code_written_by_another_hart_is_what_runs(tmp_path, harts: int) -> None:
    elf = build(CODE_COHERENCE.replace("NHARTS", str(harts)), tmp_path)
    r = run(elf, harts=harts)
    assert r.result.exit_code == 0, r.result.reason
    assert [r.word("out", i) for i in range(3)] == [1, 2, 3]


@needs_binutils
def test_fma_of_infinity_and_zero_raises_invalid(tmp_path) -> None:
    """fmadd.d inf * 0 + qNaN: RISC-V requires NV (fflags bit 4) and the default NaN."""
    elf = build("""
main:
    li t0, 0x6000           # sstatus.FS = dirty
    csrs sstatus, t0
    li t0, 0x7ff0000000000000
    fmv.d.x f1, t0          # inf
    fmv.d.x f2, zero        # 0
    li t0, 0x7ff8000000000001
    fmv.d.x f3, t0          # a quiet NaN with a payload
    csrw fflags, zero
    fmadd.d f4, f1, f2, f3
    frflags t1
    fmv.x.d t2, f4
    la t0, out
    sd t1, 0(t0)
    sd t2, 8(t0)
    EXIT_PASS
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("out", 0) == 0x10  # NV
    assert r.word("out", 1) == 0x7FF8000000000000  # the default NaN


@needs_binutils
def test_user_ecalls_and_rdtime_take_no_python(tmp_path) -> None:
    """1000 U-mode ecalls and 1000 rdtime reads: the engine enters stvec itself and the
    native clock answers time; the run's statistics show no Python trap or rdtime path."""
    elf = build("""
main:
    la t0, user_trap
    csrw stvec, t0
    la t0, user
    csrw sepc, t0
    li t0, 0x100            # SPP = U
    csrc sstatus, t0
    li t0, 0x40000          # SUM
    csrs sstatus, t0
    sret
user:
    li s0, 1000
1:  rdtime t0
    ecall
    addi s0, s0, -1
    bnez s0, 1b
    li a7, 99
    ecall
    .align 4
user_trap:
    li t0, 99
    beq a7, t0, 2f
    csrr t0, sepc
    addi t0, t0, 4
    csrw sepc, t0
    sret
2:  EXIT_PASS
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    stats = r.result.stats
    assert stats["native_traps"] == {"trap8": 1001}
    assert "trap8" not in stats["harts"][0]
    assert stats["harts"][0]["rdtime"] == 1000


STALE_CODE = """
main:
    # Sv39: RAM at 0x80000000 twice - executable (VPN2 2) and as data only, RW (VPN2 3:
    # 0xC0000000), like Linux's text and its linear map.
    la t0, pt_root
    li t1, 0x80000000
    srli t1, t1, 2
    ori t2, t1, 0xCF        # V R W X A D
    sd t2, 16(t0)
    ori t2, t1, 0xC7        # V R W A D, no X
    sd t2, 24(t0)
    srli t0, t0, 12
    li t1, 8 << 60
    or t0, t0, t1
    csrw satp, t0
    sfence.vma
    la s0, out
    la s1, func
    li t0, 0x40000000
    add s1, s1, t0          # func through the data alias
    li t0, 0x00100513       # li a0, 1: written before any code there is translated,
    sw t0, 0(s1)            # so this TLB entry takes the fast write path from now on
    fence.i
    call func
    sd a0, 0(s0)
    li t0, 0x00200513       # li a0, 2 through the same entry
    sw t0, 0(s1)
    fence.i
    call func
    sd a0, 8(s0)
    csrw satp, zero         # the test finisher is not mapped
    sfence.vma
    EXIT_PASS
    .align 12
    .globl func
func:
    li a0, 0
    ret
    .align 12
"""


@needs_binutils
def test_a_write_through_a_warm_data_mapping_reaches_code_translated_since(tmp_path) -> None:
    """Code translated from a page after a hart's TLB took the fast write path to it: the
    next write through that entry must still invalidate the translation (QEMU re-arms the
    slow path when it translates a page; Unicorn's stubbed dirty bitmap did not)."""
    r = run(build(STALE_CODE, tmp_path))
    assert r.result.exit_code == 0, r.result.reason
    assert [r.word("out", 0), r.word("out", 1)] == [1, 2]


ASID_SETS = """
    .equ VA, 0x40000000
    .equ PA_A, 0x80400000
    .equ PA_B, 0x80600000
    .equ PA_C, 0x80800000
main:
    li t0, PA_A
    li t1, 0xAAAA
    sd t1, 0(t0)
    li t0, PA_B
    li t1, 0xBBBB
    sd t1, 0(t0)
    li t0, PA_C
    li t1, 0xCCCC
    sd t1, 0(t0)
    # two Sv39 address spaces: 0x80000000 identity (a gigapage), VA -> a 2 MiB page
    la a0, root1
    la a1, l1a
    li a2, PA_A
    call tables
    la a0, root2
    la a1, l1b
    li a2, PA_B
    call tables
    la t0, root1
    srli t0, t0, 12
    li t1, (8 << 60) | (1 << 44)    # Sv39, ASID 1
    or s1, t0, t1
    la t0, root2
    srli t0, t0, 12
    li t1, (8 << 60) | (2 << 44)    # Sv39, ASID 2
    or s2, t0, t1
    la s0, out
    li s3, VA
    csrw satp, s1
    sfence.vma
    ld t0, 0(s3)
    sd t0, 0(s0)                    # ASID 1: A
    csrw satp, s2                   # another ASID: no fence needed
    ld t0, 0(s3)
    sd t0, 8(s0)                    # ASID 2: B
    csrw satp, s1
    ld t0, 0(s3)
    sd t0, 16(s0)                   # ASID 1 again: still A
    csrw satp, s2
    la t0, l1a                      # remap VA in ASID 1 to C, from ASID 2
    li t1, PA_C
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, 0xCF
    sd t1, 0(t0)
    li t2, 1
    sfence.vma s3, t2               # this page, ASID 1 only (not the loaded one)
    csrw satp, s1
    ld t0, 0(s3)
    sd t0, 24(s0)                   # ASID 1: C
    csrw satp, s2
    la t0, l1a                      # remap again, to B, and fence everything
    li t1, PA_B
    srli t1, t1, 12
    slli t1, t1, 10
    ori t1, t1, 0xCF
    sd t1, 0(t0)
    sfence.vma
    csrw satp, s1
    ld t0, 0(s3)
    sd t0, 32(s0)                   # ASID 1: B
    csrw satp, zero
    sfence.vma
    EXIT_PASS

tables:                             # a0 = root, a1 = level-1 table, a2 = where VA goes
    li t0, 0x80000000 >> 12
    slli t0, t0, 10
    ori t0, t0, 0xCF                # V R W X A D
    sd t0, 16(a0)                   # root[2]: 0x80000000 gigapage
    srli t0, a1, 12
    slli t0, t0, 10
    ori t0, t0, 1                   # V: next level
    sd t0, 8(a0)                    # root[1] -> level 1 (VA 0x40000000)
    srli t0, a2, 12
    slli t0, t0, 10
    ori t0, t0, 0xCF
    sd t0, 0(a1)                    # a 2 MiB page
    ret
    .data
    .align 12
root1: .zero 4096
root2: .zero 4096
l1a: .zero 4096
l1b: .zero 4096
"""


@needs_binutils
def test_each_address_space_keeps_its_translations_and_fences_reach_them_all(tmp_path) -> None:
    """Two ASIDs map one VA to different pages: switching satp between them needs no fence
    (each ASID has its own TLB set), and a fence issued while another ASID is loaded
    (one page and one ASID, then everything) reaches the other set."""
    r = run(build(ASID_SETS, tmp_path))
    assert r.result.exit_code == 0, r.result.reason
    assert [r.word("out", i) for i in range(5)] == [0xAAAA, 0xBBBB, 0xAAAA, 0xCCCC, 0xBBBB]
