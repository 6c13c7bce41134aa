"""x86_64 SMP on one engine: each CPU keeps its own TLB across switches (two CPUs map the
same virtual page to different frames through their own CR3 and never see each other's
translation, slices interleaving every few hundred instructions)."""
from __future__ import annotations

from tests.cpu.x86_64.x86guest import build, needs_x86, run

pytestmark = needs_x86

START_AP = """
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4500     # INIT to APIC 1
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4608     # SIPI: the trampoline at 0x8000
"""


def test_each_cpu_keeps_its_own_tlb(tmp_path):
    elf = build(f"""
main:
{START_AP}
    xor ebx, ebx
    call tlb_test
1:  pause
    cmp qword ptr [rip + tlb_done], 2
    jb 1b
    POWER_OFF

ap_main:
    CPU_ID rbx, ebx
    call tlb_test
2:  hlt
    jmp 2b

# This CPU's own page tables: the shared ones, but VA 0x80000000 on its own 2 MiB frame.
tlb_test:
    lea r8, [rip + tlbpages]
    imul rax, rbx, 0x3000
    add r8, rax                      # pml4, pdpt, pd of this CPU
    lea rsi, [rip + pdpt]
    lea rdi, [r8 + 0x1000]
    mov ecx, 512
    rep movsq
    lea rax, [r8 + 0x2000]
    or rax, 7
    mov [r8 + 0x1000 + 16], rax
    mov rax, rbx
    shl rax, 21
    add rax, 0x2000000
    or rax, 0x83
    mov [r8 + 0x2000], rax
    lea rax, [r8 + 0x1000]
    or rax, 7
    mov [r8], rax
    mov cr3, r8
    mov rdi, 0x80000000
    mov [rdi], rbx
    mov ecx, 100000
3:  cmp [rdi], rbx
    je 4f
    lock inc qword ptr [rip + tlb_errors]
4:  dec ecx
    jnz 3b
    mov rax, [rdi]
    lea rdx, [rip + seen]
    mov [rdx + rbx * 8], rax
    lock inc qword ptr [rip + tlb_done]
    ret
    .data
    .globl tlb_done, tlb_errors, seen
tlb_done: .quad 0
tlb_errors: .quad 0
seen: .quad -1, -1
    .bss
    .align 4096
tlbpages: .fill 0x6000, 1, 0
""", tmp_path)
    r = run(elf, cpus=2, quantum=300)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("tlb_errors") == 0
    assert (r.word("seen", 0), r.word("seen", 1)) == (0, 1)
    assert r.result.stats["switches"] > 100  # the two CPUs really took turns
    assert r.u64(0x200_0000) == 0 and r.u64(0x220_0000) == 1  # each wrote its own frame
