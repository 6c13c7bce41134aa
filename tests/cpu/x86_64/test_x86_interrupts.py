"""x86_64 system calls and interrupts: syscall/sysret, the local APIC timer into user
mode, IPIs between CPUs, an AP started by INIT/SIPI, HLT parking and wake-up, the
virtual TSC, per-CPU APIC IDs (CPUID, IA32_APIC_BASE)."""
from __future__ import annotations

from tests.cpu.x86_64.x86guest import ENTER_USER, UCODE, UDATA, USER_ALIAS, USER_PROGRAM, build, needs_x86, run

pytestmark = needs_x86

TSC_PER_TICK = 400

PERIODIC_TIMER = """
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x3E0], 0xB        # divide by 1
    mov dword ptr [rbx + 0x320], 0x20040    # periodic, vector 0x40
    mov dword ptr [rbx + 0x380], 200000     # every 200 us (1 GHz APIC bus)
"""
# main: a periodic APIC timer, then user_code at CPL 3; a fault there ends the run
TIMER_THEN_USER = f"""
main:
{PERIODIC_TIMER}
    EXPECT_FAULT 1f
{ENTER_USER}
1:  mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x380], 0          # timer off
    POWER_OFF
"""
USER_STACK = """
    .bss
    .fill 4096, 1, 0
    .globl user_stack_top
user_stack_top:
"""


def test_syscall_and_sysret_between_user_and_kernel(tmp_path):
    elf = build(f"""{USER_PROGRAM}    mov rax, 41
    .globl u_syscall
u_syscall:
    syscall                       # the kernel returns rax + 1 with sysretq
    .globl u_after
u_after:
    mov [rip + result], rax       # rip-relative: through the user alias
    mov [rip + user_cs], cs
    ud2                           # back to the kernel
    .data
    .globl result, user_cs
result: .quad 0
user_cs: .quad 0
{USER_STACK}""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("syscalls") == 1
    assert r.word("result") == 42
    assert r.word("user_cs") == UCODE  # sysret came back to CPL 3
    assert r.word("syscall_rcx") == r.sym("u_after") + USER_ALIAS  # rcx = return address
    assert r.word("syscall_r11") & 0x200  # r11 = the user's rflags
    [ud] = r.records()
    assert (ud["vector"], ud["cs"]) == (6, UCODE)
    assert r.machine.cpu.engine.native_counts()[33] == 1  # entered natively


def test_timer_interrupts_arrive_in_user_mode(tmp_path):
    elf = build(f"""{TIMER_THEN_USER}    .globl user_code
user_code:
    lea rcx, [rip + irq_count + 0x40 * 8]   # this CPU's count of vector 0x40 (user alias)
    .globl user_loop
user_loop:
    inc rdx
    cmp qword ptr [rcx], 3
    jb user_loop
    ud2
{USER_STACK}""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    recs = r.records()
    timers = [x for x in recs if x["vector"] == 0x40]
    assert len(timers) == 3 and r.irqs(0, 0x40) == 3
    loop = r.sym("user_loop") + USER_ALIAS
    for t in timers:
        assert (t["cs"], t["ss"]) == (UCODE, UDATA)  # interrupted user code
        assert loop <= t["rip"] < loop + 16
        assert t["rflags"] & 0x200
        assert t["hrsp"] == r.sym("trap_stacks_top")  # TSS.RSP0
    assert recs[-1]["vector"] == 6


def test_hlt_parks_until_the_apic_timer_wakes_it(tmp_path):
    elf = build("""
main:
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x3E0], 0xB        # divide by 1
    mov dword ptr [rbx + 0x320], 0x40       # one-shot, vector 0x40
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov [rip + t0], rax
    mov dword ptr [rbx + 0x380], 10000000   # 10 ms at the 1 GHz APIC bus (as QEMU)
    sti
    .globl f_hlt
f_hlt:
    hlt
    rdtsc
    shl rdx, 32
    or rax, rdx
    mov [rip + t1], rax
    POWER_OFF
    .data
    .globl t0, t1
t0: .quad 0
t1: .quad 0
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 0, r.result.reason
    [irq] = r.records()
    assert (irq["vector"], irq["rip"]) == (0x40, r.sym("f_hlt") + 1)  # woken after the hlt
    elapsed = r.word("t1") - r.word("t0")
    assert 100_000 * TSC_PER_TICK <= elapsed < 101_000 * TSC_PER_TICK  # the virtual TSC
    assert r.result.stats["wfi_parks"] >= 1  # parked, not spinning
    again = run(build_same(tmp_path))
    assert again.word("t1") - again.word("t0") == elapsed  # deterministic


def build_same(tmp_path):
    return tmp_path / "guest.elf"


def test_hlt_with_interrupts_off_is_a_hang(tmp_path):
    elf = build("""
main:
    cli
    hlt
""", tmp_path)
    r = run(elf)
    assert r.result.exit_code == 121, r.result.reason


def test_ap_started_by_init_sipi_and_ipis_both_ways(tmp_path):
    elf = build("""
main:
    mov ecx, 0x1b
    rdmsr
    mov [rip + bsp_apic_base], eax
    sti
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4500     # INIT to APIC 1
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4608     # SIPI: start at 0x8000
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x4608     # the second SIPI is ignored
1:  pause
    cmp qword ptr [rip + cpus_up], 2
    jb 1b
2:  pause
    cmp qword ptr [rip + ap_ready], 1
    jb 2b
    mov dword ptr [rbx + 0x310], 1 << 24
    mov dword ptr [rbx + 0x300], 0x50       # fixed IPI, vector 0x50, to APIC 1
    .globl bsp_hlt
bsp_hlt:
    hlt                                     # woken by the AP's answer
    cmp qword ptr [rip + irq_count + 0x51 * 8], 0
    je bsp_hlt
    POWER_OFF

ap_main:
    mov eax, 1
    cpuid
    shr ebx, 24
    mov [rip + ap_cpuid_id], rbx
    mov ecx, 0x1b
    rdmsr
    mov [rip + ap_apic_base], eax
    sti
    mov qword ptr [rip + ap_ready], 1
    .globl ap_hlt
ap_hlt:
    hlt
    cmp qword ptr [rip + irq_count + (256 + 0x50) * 8], 0
    je ap_hlt
    mov rbx, 0xFEE00000
    mov dword ptr [rbx + 0x310], 0
    mov dword ptr [rbx + 0x300], 0x51       # answer: vector 0x51 to APIC 0
3:  hlt
    jmp 3b
    .data
    .globl ap_cpuid_id, ap_apic_base, bsp_apic_base, ap_ready
ap_cpuid_id: .quad 0
ap_apic_base: .quad 0
bsp_apic_base: .quad 0
ap_ready: .quad 0
""", tmp_path)
    r = run(elf, cpus=2)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("cpus_up") == 2  # one start: the second SIPI did nothing
    assert r.word("ap_cpuid_id") == 1  # CPUID's APIC ID is the CPU's own
    assert r.word("bsp_apic_base") == 0xFEE0_0900 and r.word("ap_apic_base") == 0xFEE0_0800  # BSP bit
    ipis = {(x["cpu"], x["vector"]): x for x in r.records()}
    assert set(ipis) == {(1, 0x50), (0, 0x51)}
    assert ipis[1, 0x50]["rip"] == r.sym("ap_hlt") + 1  # HLT woken by the IPI
    assert ipis[0, 0x51]["rip"] == r.sym("bsp_hlt") + 1
    assert r.irqs(1, 0x50) == 1 and r.irqs(0, 0x51) == 1
