"""Names for what a trace records: system calls, SBI calls, causes, and demangled functions."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from emu.trace.analysis import event_label
from emu.trace.names import irq_name, sbi_name, syscall_name, syscall_table, trap_name
from emu.trace.syscalls_linux import LINUX_RISCV64_SYSCALLS
from emu.trace.syscalls_linux_x86_64 import LINUX_X86_64_SYSCALLS
from loader.demangle import demangle
from loader.symbols import Symbols


@pytest.mark.parametrize("num,name", [(172, "getpid"), (94, "exit_group"), (93, "exit"), (64, "write"),
                                      (63, "read"), (56, "openat"), (57, "close"), (220, "clone"),
                                      (221, "execve"), (260, "wait4"), (222, "mmap"), (215, "munmap"),
                                      (214, "brk"), (98, "futex"), (124, "sched_yield"), (113, "clock_gettime"),
                                      (101, "nanosleep"), (168, "getcpu"), (79, "newfstatat"), (80, "fstat"),
                                      (259, "riscv_flush_icache"), (435, "clone3"), (0, "io_setup")])
def test_linux_riscv64_table(num, name):
    assert LINUX_RISCV64_SYSCALLS[num] == name
    assert syscall_name(num) == f"{name} ({num})"


def test_table_is_the_whole_asm_generic_range_and_unknowns_keep_the_number():
    assert len(LINUX_RISCV64_SYSCALLS) > 300 and max(LINUX_RISCV64_SYSCALLS) >= 450
    assert 250 not in LINUX_RISCV64_SYSCALLS  # arch-specific range, unassigned on riscv64
    assert syscall_name(250) == "syscall 250"
    assert syscall_name(502, {502: "spawn"}) == "spawn (502)"
    assert syscall_name(124, {124: "yield"}) == "yield (124)"  # a profile's own name wins


@pytest.mark.parametrize("num,name", [(0, "read"), (1, "write"), (2, "open"), (3, "close"), (7, "poll"),
                                      (12, "brk"), (39, "getpid"), (56, "clone"), (57, "fork"), (59, "execve"),
                                      (60, "exit"), (61, "wait4"), (158, "arch_prctl"), (202, "futex"),
                                      (218, "set_tid_address"), (231, "exit_group"), (262, "newfstatat"),
                                      (334, "rseq"), (435, "clone3"), (450, "set_mempolicy_home_node")])
def test_linux_x86_64_table(num, name):
    """syscall_64.tbl's 64-bit ABI: `read` is 0 there, not riscv64's io_setup."""
    assert LINUX_X86_64_SYSCALLS[num] == name
    assert syscall_name(num, syscall_table("linux-x86_64")) == f"{name} ({num})"


def test_x86_64_table_leaves_out_the_x32_rows_and_each_adapter_names_its_abi():
    from emu.cpu.riscv.traceprobe import RiscvTraceProbes
    from emu.cpu.x86_64.traceprobe import X86TraceProbes

    assert len(LINUX_X86_64_SYSCALLS) == 362 and not set(range(512, 548)) & set(LINUX_X86_64_SYSCALLS)
    assert syscall_table(X86TraceProbes.syscall_abi) == LINUX_X86_64_SYSCALLS
    assert syscall_table(RiscvTraceProbes.syscall_abi) == LINUX_RISCV64_SYSCALLS
    assert syscall_table("linux-x86_64", {500: "mine", 0: "rd"})[0] == "rd"  # a profile's names win
    assert syscall_table("no-such-abi") == {}  # numbers stay numbers


def test_sbi_trap_and_interrupt_names():
    assert sbi_name(0x54494D45, 0) == "TIME set_timer"
    assert sbi_name(0x735049, 0) == "IPI send_ipi"
    assert sbi_name(0x52464E43, 1) == "RFENCE remote_sfence_vma"
    assert sbi_name(0x48534D, 0) == "HSM hart_start"
    assert sbi_name(0x53525354, 0) == "SRST system_reset"
    assert sbi_name(0x10, 3) == "BASE probe_extension"
    assert sbi_name(1, 0) == "legacy console_putchar"
    assert sbi_name(0x12345, 7) == "SBI 0x12345 fid 7"
    assert trap_name(8) == "user ecall" and trap_name(13) == "load page fault" and trap_name(2) == "illegal instruction"
    assert irq_name(5) == "supervisor timer interrupt" and irq_name(1) == "supervisor software interrupt"


def test_trap_names_follow_the_cpu_that_made_the_trace():
    """x86 vectors are not riscv causes: 14 is a page fault there, 6 invalid opcode, and a traced
    `syscall` (the adapter's 0x100) has a name, in the hang report's events and in trace rows."""
    from emu.reports import _fmt_event
    from emu.trace.analysis import event_label

    x86 = "linux-x86_64"
    assert trap_name(14, x86) == "page fault (#PF)" and trap_name(6, x86) == "invalid opcode (#UD)"
    assert trap_name(0x100, x86) == "syscall" and trap_name(14) == "exception 14"  # riscv: reserved
    assert _fmt_event(("trap", 0, 5, 0x100, 0x401000, 0, 3), x86) == "t=5 h0 trap syscall (256) epc=0x401000 tval=0x0"
    assert event_label("trap", {"cause": 13}, x86) == "trap: general protection (#GP)"
    assert event_label("trap", {"cause": 13}) == "trap: load page fault"


def test_per_hart_row_labels_are_not_mistaken_for_harts():
    """The hart-state count used to print as `hart 79099` in `hart 0: ...`."""
    assert event_label("hart", {"state": "park"}) == "WFI park"
    assert event_label("hart", {"state": "unpark", "why": ["ipi"]}) == "WFI wake"
    assert event_label("sbi", {"eid": 0x54494D45, "fid": 0}) == "SBI TIME set_timer"
    assert event_label("trap", {"cause": 15}) == "trap: store page fault"
    assert event_label("irq", {"cause": 9}) == "irq: supervisor external interrupt"


RUST = "_ZN13linux_syscall4file4file40_$LT$impl$u20$linux_syscall..Syscall$GT$9sys_write17hb3cee95fcdf46155E"


def test_demangle_rust_legacy_and_cxx():
    assert demangle(RUST) == "linux_syscall::file::file::<impl linux_syscall::Syscall>::sys_write"
    assert demangle("_ZN4core3ptr46drop_in_place$LT$alloc..sync..Arc$LT$T$GT$$GT$17h0123456789abcdefE") == \
        "core::ptr::drop_in_place<alloc::sync::Arc<T>>"
    assert demangle("_ZN3foo3barE") == "foo::bar"
    assert demangle("ref_submit") == "ref_submit"
    cxx = demangle("_ZNSt6vectorIiSaIiEE9push_backERKi")
    if cxx.startswith("_Z"):
        pytest.skip("no libstdc++ on this host")
    assert cxx == "std::vector<int, std::allocator<int> >::push_back(int const&)"


def test_lookup_names_the_enclosing_function_not_a_local_label():
    """A parked hart of a Rust kernel showed as `<.LBB146_169+0x2a>`."""
    syms = Symbols.from_entries([(0x1000, 0x100, RUST), (0x1080, 0, ".LBB146_169"), (0x1090, 0, "$x"),
                                 (0x1200, 0x10, "other"), (0x1300, 0, "label_only")])
    assert syms.describe(0x10aa) == "linux_syscall::file::file::<impl linux_syscall::Syscall>::sys_write+0xaa"
    assert syms.lookup(0x10aa) == RUST + "+0xaa"
    assert syms.describe(0x1200) == "other"
    assert syms.describe(0x1210) is None  # past the end of a sized function, no label in between
    assert syms.describe(0x1304) == "label_only+0x4"  # assembly labels without a size still name code
    assert ".LBB146_169" not in syms.by_name


def test_lookup_on_a_real_compiled_cxx_object(tmp_path):
    gxx = shutil.which("riscv64-unknown-elf-g++") or shutil.which("riscv64-linux-gnu-g++")
    if gxx is None:
        pytest.skip("no riscv64 C++ compiler")
    src = tmp_path / "t.cpp"
    src.write_text("namespace ns { struct S { int f(int x); }; int S::f(int x) {\n"
                   "  int s = 0; for (int i = 0; i < x; i++) { if (i % 3) s += i; else s -= x; } return s; } }\n")
    obj = tmp_path / "t.o"
    # -Wa,-L keeps the assembler's .L local labels in the symbol table, as in the kernels that show them
    subprocess.run([gxx, "-O1", "-c", "-Wa,-L", str(src), "-o", str(obj)], check=True, capture_output=True)
    from elftools.elf.elffile import ELFFile

    from loader.image import _symbols

    with open(obj, "rb") as f:
        syms = _symbols(ELFFile(f))
    addr = syms.by_name["_ZN2ns1S1fEi"]
    assert demangle("_ZN2ns1S1fEi") in ("ns::S::f(int)", "_ZN2ns1S1fEi")
    where = syms.describe(addr + 8)
    assert where is not None and where.endswith("+0x8") and not where.startswith(".L")
    assert where.startswith(demangle("_ZN2ns1S1fEi"))


def test_auto_profile_only_picks_a_profile_of_the_machines_arch():
    """The offload fork built for x86_64 has the riscv64 build's symbols; each built-in
    profile's register expressions are its arch's, so auto picks the one of the machine's arch."""
    from emu.trace.profile import auto_profile

    syms = Symbols.from_entries([(0x1000, 16, "linux_syscall::async_syscall::event_loop"),
                                 (0x2000, 64, "<linux_syscall::async_syscall::REMOTE_SYSCALL_REQUESTS as "
                                              "core::ops::deref::Deref>::deref::__stability::LAZY")])
    assert auto_profile(syms, "riscv64").name == "zcore-offload"
    assert auto_profile(syms, "x86_64").name == "zcore-offload-x86_64"
    assert auto_profile(syms, "aarch64") is None


def test_a_trace_names_its_calls_with_the_abi_its_header_records(tmp_path):
    """The header carries the CPU adapter's ABI, so `emu trace report` and Perfetto name x86_64's
    `read` (0) as read; a trace without the field (older emu) keeps riscv64's names."""
    import json

    from emu.trace.events import EventLog
    from emu.trace.output import read_trace, write_trace
    from emu.trace.report import summarise

    log = EventLog({"syscall"})
    for t, num in ((100, 0), (300, 1)):
        log.emit(t, 0, "syscall", {"num": num, "args": [0] * 6, "thread": "1:0", "epc": 0x1000})
        log.emit(t + 50, 0, "sysret", {"ret": 0, "thread": "1:0", "pc": 0x2000})
    path = tmp_path / "x86.json"
    write_trace(path, log, None, 1, {}, "linux-x86_64")
    emu = read_trace(path)
    assert emu["syscall_abi"] == "linux-x86_64"
    assert [r["name"] for r in summarise(emu)["per_syscall"].values()] == ["read (0)", "write (1)"]
    slices = [e["name"] for e in json.loads(path.read_text())["traceEvents"] if e.get("cat") == "syscall"]
    assert slices == ["read (0)", "write (1)"]
    del emu["syscall_abi"]
    assert [r["name"] for r in summarise(emu)["per_syscall"].values()] == ["io_setup (0)", "io_destroy (1)"]
