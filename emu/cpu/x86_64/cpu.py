"""The x86_64 CPU adapter: every CPU time-multiplexed on ONE patched Unicorn instance.

What stock Unicorn leaves out (shared/notes/x86_64-unicorn.md) the engine patch does
natively (patches/unicorn/README.md): exceptions and `int n` enter the guest's IDT through
QEMU's own do_interrupt (frame, error code, IST/TSS stack, CPL), `syscall` is QEMU's,
the local APIC's vector is taken through QEMU's interrupt entry when IF allows, the TSC is
the virtual clock's, IA32_APIC_BASE and other MSRs QEMU does not model come here, and
each CPU keeps its TLB and its APIC ID across switches.  Python runs on port I/O, APIC
MMIO, slice boundaries and the rare MSR.

The scheduler sees the same interface as riscv's: interrupt "lines" are this adapter's
bits; a CPU in HLT parks until its local APIC has something it can take.
"""
from __future__ import annotations

import ctypes
import mmap
from dataclasses import dataclass, field
from typing import Callable, Protocol

import unicorn
from unicorn import Uc, UcError
from unicorn import x86_const as X
from unicorn.unicorn_py3.unicorn import uclib

from emu.board import BoardSpec
from emu.cpu import native
from emu.cpu.debughooks import DebugHooks
from emu.cpu.engine import Engine
from emu.cpu.x86_64 import boot
from emu.cpu.x86_64.engine import CpuState, X86Engine
from emu.cpu.x86_64.gdb import X86GdbRegisters
from emu.cpu.x86_64.mmu import translate
from emu.cpu.x86_64.ports import PortBus
from emu.cpu.x86_64.traceprobe import SYSCALL_CAUSE, X86TraceProbes
from emu.cpu.x86_64.lapic import Lapic
from emu.devices import Device
from emu.smp.hart import Hart

UNTIL = 0xFFFF_FFFF_FFFF_FFFE  # an address no guest executes: slices end by budget or stop
FLUSH_ALL = (1 << 64) - 1  # uc_emu_tlb_flush_page: every page
SPIN_LIMIT = 3
NATIVE_TRAP_LOOP_LIMIT = 1000
TRAP_INT_N = 32  # uc_emu_native_traps bit: every `int n` with n >= 32
TRAP_SYSCALL = 33  # uc_emu_native_traps bit: `syscall` natively
COUNT_IRQ = 34  # native count index: external interrupts taken
NATIVE_TRAPS = frozenset(range(34))
IF_MASK = 1 << 9
MSR_APIC_BASE = 0x1B
MSR_LSTAR = 0xC000_0082
APIC_BASE_ENABLE = 1 << 11
APIC_BASE_BSP = 1 << 8


class CpuHost(Protocol):
    """What the adapter asks of the machine around it."""

    def on_trap(self, hart: Hart, cause: int, epc: int, tval: int, priv: int) -> None: ...

    def on_fault_loop(self, hart: Hart, cause: int, pc: int, detail: int) -> None: ...

    def on_host_fault(self, hart: Hart, message: str) -> None: ...


@dataclass
class CpuSlot:
    """The adapter's per-CPU state: its TLB set, its engine-side state and local APIC."""

    tlb_set: int
    state: CpuState
    lapic: Lapic
    apic_base: int = 0xFEE0_0000 | APIC_BASE_ENABLE
    offered: int = -1  # the vector last offered to the engine
    wait_for_sipi: bool = False
    sipi: int | None = None  # a SIPI vector to enter at the next switch-in
    ports: dict[int, int] = field(default_factory=dict)


class X86Cpu(DebugHooks):
    """One Unicorn instance, its RAM, port and MMIO devices, and the CPUs' contexts (hooks
    on addresses, steps and inspection: DebugHooks)."""

    IRQ_TIMER = 1  # the local APIC timer expired
    IRQ_SOFT = 2  # the local APIC has a vector to offer (IPI, device)
    IRQ_EXTERNAL = 4

    def __init__(self, board: BoardSpec, host: CpuHost, tsc_per_tick: int) -> None:
        self.board = board
        self.host = host
        self.uc = Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
        self._h = self.uc._uch
        self.engine = Engine(self._h)
        ram = board.ram
        self.ram_base, self.ram_end = ram.base, ram.end
        # Private, not shared: a forked child (emu test's snapshots) must get copy-on-write RAM.
        self.ram = mmap.mmap(-1, ram.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._ram_ptr = ctypes.addressof(ctypes.c_char.from_buffer(self.ram))
        self.uc.mem_map_ptr(ram.base, ram.size, unicorn.UC_PROT_ALL, self._ram_ptr)
        self.current: Hart | None = None
        self.stop_reason: str | None = None
        self.gdb = X86GdbRegisters(self)  # the registers as the GDB stub sees them
        self.trace = X86TraceProbes(self)  # what the tracer asks of the architecture
        self.slots: dict[int, CpuSlot] = {}
        self._observe_syscalls = False
        self._syscall_entries: set[int] = set()
        self.budget = native.BudgetStruct()
        self.budget.stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
        self.budget.spin_limit = SPIN_LIMIT
        self.budget.gpr = self.engine.gpr_address()
        self.budget.trap_counts = self.engine.native_counts_address()
        self._native_lib = lib = native.load()
        self._budget_ptr = ctypes.addressof(self.budget)
        self.engine.budget(self._budget_ptr, ctypes.cast(lib.emu_budget_hit, ctypes.c_void_p).value or 0,
                           self._budget_ptr)
        self._io = io = native.HartIoStruct()  # the native slice runner
        io.uc, io.budget = self._h, self._budget_ptr
        for name in ("context_restore", "reg_read", "reg_write", "emu_start"):
            setattr(io, name, ctypes.cast(getattr(uclib, f"uc_{name}"), ctypes.c_void_p).value)
        io.reg_priv, io.reg_pc, io.until = X.UC_X86_REG_CS, X.UC_X86_REG_RIP, UNTIL
        self._io_ptr = ctypes.addressof(io)
        self._run_slice = lib.emu_run_slice
        self._run_slice.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self._run_slice.restype = ctypes.c_int
        self.x86 = X86Engine(self._h, tsc_per_tick, self._on_msr)
        self.uc.hook_add(unicorn.UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(unicorn.UC_HOOK_INSN_INVALID, self._on_insn_invalid)
        self.ports = PortBus(self.uc, self.budget)
        self.template = self.uc.context_save()  # long mode, no paging: what each CPU starts from
        self._off_rip = self._find_rip_offset()

    def _find_rip_offset(self) -> int:
        """Where rip sits in a saved context (Unicorn's header, then QEMU's CPUX86State:
        16 general registers, then eip); found once with two marker values, so a layout
        change of the wheel fails here instead of misreporting pcs."""
        offsets = None
        for marker in (0x1234_5678_9ABC, 0x0FED_CBA9_8765):
            self.wreg(X.UC_X86_REG_RIP, marker)
            ctx = self.uc.context_save()
            blob = ctypes.string_at(_blob(ctx), 1024)
            found = {i for i in range(0, 1024 - 7, 8) if int.from_bytes(blob[i:i + 8], "little") == marker}
            offsets = found if offsets is None else offsets & found
        self.wreg(X.UC_X86_REG_RIP, 0)
        if not offsets or len(offsets) != 1:
            raise RuntimeError("the engine's x86 context layout is not the one emu knows (rip)")
        return offsets.pop()

    # -- set-up ------------------------------------------------------------------------
    def add_cpu(self, hart: Hart, lapic: Lapic) -> None:
        """Give `hart` its TLB set, APIC ID and local APIC; its context is the reset one."""
        tlb = self.engine.tlb_new()
        state = self.x86.cpu_state(tlb)
        state.apic_id = lapic.apic_id
        base = 0xFEE0_0000 | APIC_BASE_ENABLE | (APIC_BASE_BSP if hart.id == 0 else 0)
        self.slots[hart.id] = CpuSlot(tlb, state, lapic, base, wait_for_sipi=hart.id != 0)
        hart.ctx = self.new_context(hart.id)

    def new_context(self, hart_id: int) -> unicorn.UcContext:
        ctx = self.uc.context_save()
        ctx_bytes = ctypes.string_at(self.template.context, self.template.size)
        ctypes.memmove(ctx.context, ctx_bytes, len(ctx_bytes))
        return ctx

    def map_device(self, base: int, size: int, device: Device, counts: dict[str, int], name: str) -> None:
        """An MMIO device; `counts[name]` counts its accesses."""
        counts[name] = 0
        budget = self.budget

        def on_read(_uc: Uc, offset: int, size: int, _ud: object) -> int:
            counts[name] += 1
            budget.events += 1
            return device.read(offset, size)

        def on_write(_uc: Uc, offset: int, size: int, value: int, _ud: object) -> None:
            counts[name] += 1
            budget.events += 1
            device.write(offset, size, value)

        self.uc.mmio_map(base, size, on_read, None, on_write, None)

    def map_ports(self, base: int, size: int, device: Device) -> None:
        """A device in port I/O space (IN/OUT reach `device.read/write(offset, size)`)."""
        self.ports.map(base, size, device)

    def attach_clock(self, clock: native.ClockStruct) -> None:
        """The TSC reads the virtual clock natively (ticks times tsc_per_tick)."""
        self._clock = self.ports.clock = clock
        fn = ctypes.cast(self._native_lib.emu_rdtime, ctypes.c_void_p).value or 0
        self.engine.set_rdtime(fn, ctypes.addressof(clock))

    def native_traps(self, enabled: bool) -> None:
        """Exceptions, `int n` and `syscall` enter the guest natively (always: delivering
        them in Python would repeat QEMU's do_interrupt).  When something in Python must
        see them (`enabled` false: tracing), system calls are reported from a hook on the
        kernel's `syscall` entry (LSTAR), found again at each switch-in."""
        self.engine.native_traps(NATIVE_TRAPS, NATIVE_TRAP_LOOP_LIMIT)
        self._observe_syscalls = not enabled

    def _hook_syscall_entry(self) -> None:
        entry = self.uc.msr_read(MSR_LSTAR)
        if entry and entry not in self._syscall_entries:
            self._syscall_entries.add(entry)
            self.add_code_hook(entry, self._on_syscall_entry)

    def _on_syscall_entry(self, pc: int) -> None:
        hart = self.current
        if hart is not None:
            self.host.on_trap(hart, SYSCALL_CAUSE, self.rreg(X.UC_X86_REG_RCX) - 2, 0, 3)

    # -- MSRs ---------------------------------------------------------------------------
    def _on_msr(self, _opaque: int, msr: int, write: int, value: "ctypes._Pointer[ctypes.c_uint64]") -> int:
        hart = self.current
        if hart is None or msr != MSR_APIC_BASE:
            return 0
        slot = self.slots[hart.id]
        if write:
            slot.apic_base = (slot.apic_base & APIC_BASE_BSP) | (value[0] & ~APIC_BASE_BSP)
        else:
            value[0] = slot.apic_base
        return 1

    # -- register access ------------------------------------------------------------------
    def rreg(self, reg: int) -> int:
        return self.uc.reg_read(reg)

    def wreg(self, reg: int, value: int) -> None:
        self.uc.reg_write(reg, value)

    def rreg_pair(self, reg: int) -> tuple[int, int]:
        """(base, limit) of a descriptor-table register (GDTR, IDTR)."""
        _sel, base, limit, _flags = self.uc.reg_read(reg)
        return base, limit

    def pc(self) -> int:
        return self.rreg(X.UC_X86_REG_RIP)

    def set_pc(self, pc: int) -> None:
        self.wreg(X.UC_X86_REG_RIP, pc)

    def saved_pc(self, hart: Hart) -> int:
        """The rip in a CPU's saved context (it is not loaded)."""
        return ctypes.c_uint64.from_address(_blob(hart.ctx) + self._off_rip).value

    def read_phys(self, paddr: int, size: int) -> bytes | None:
        if self.ram_base <= paddr and paddr + size <= self.ram_end:
            off = paddr - self.ram_base
            return bytes(self.ram[off:off + size])
        return None

    def write_phys(self, paddr: int, data: bytes) -> bool:
        if self.ram_base <= paddr and paddr + len(data) <= self.ram_end:
            off = paddr - self.ram_base
            self.ram[off:off + len(data)] = data
            return True
        return False

    def xreg(self, n: int) -> int:
        """General register n in the x86 encoding order (rax, rcx, rdx, rbx, rsp, ...)."""
        return self.rreg(_ENCODED_GPRS[n])

    def _pte(self, paddr: int) -> int | None:
        data = self.read_phys(paddr, 8)
        return None if data is None else int.from_bytes(data, "little")

    def virt_to_phys(self, vaddr: int, cr3: int) -> int | None:
        return translate(cr3, vaddr & ((1 << 64) - 1), self._pte)

    def read_virt_current(self, vaddr: int, size: int) -> bytes | None:
        """Guest memory as the running CPU sees it."""
        return self.read_virt(vaddr, size, self.gdb.translation())

    # -- switching CPUs ---------------------------------------------------------------------
    def switch_in(self, hart: Hart) -> None:
        self.current = hart
        slot = self.slots[hart.id]
        self.x86.load(_blob(hart.ctx), slot.tlb_set)  # context, TLB, APIC ID, interrupt line
        if hart.start is not None:
            pc, rdi, rsi = hart.start
            hart.start = None
            boot.enter_long_mode(self, pc, rdi, rsi)
        if slot.sipi is not None:
            vector, slot.sipi = slot.sipi, None
            self.x86.init_sipi(vector)
        if self._observe_syscalls:
            self._hook_syscall_entry()
        hart.ssip_pending = False
        if hart.stip:
            self.update_mip(self.IRQ_TIMER, 0)
        self.sync_lapic(hart)

    def switch_out(self, hart: Hart) -> None:
        self.sync_lapic(hart)
        self.x86.save(_blob(hart.ctx))

    def sync_lapic(self, hart: Hart) -> None:
        """Tell the local APIC what the CPU took, and offer the engine its next vector."""
        slot = self.slots[hart.id]
        state = slot.state
        if slot.offered >= 0 and state.irq < 0:  # taken by the CPU since offered
            slot.lapic.accept(slot.offered)
            slot.offered = -1
        vector = slot.lapic.deliverable()
        if vector != slot.offered:
            slot.offered = state.irq = vector
            if hart is self.current:
                self.x86.irq_update()

    # -- running ----------------------------------------------------------------------------
    def run(self, hart: Hart, budget: int) -> str:
        """Run the loaded CPU for about `budget` code bytes; return why it stopped."""
        b = self.budget
        uc = self.uc
        self.stop_reason = None
        uc._hook_exception = None
        state = self.slots[hart.id].state
        state.halted = 0
        err = self._run_slice(self._io_ptr, budget)
        if uc._hook_exception is not None:
            exc, uc._hook_exception = uc._hook_exception, None
            raise exc
        if self.stop_reason is not None:
            return self.stop_reason
        if err:
            self.host.on_host_fault(hart, f"Unicorn stopped: {UcError(err)} at {self._io.pc:#x}")
            return "fault"
        if b.spinning:
            return "spin"
        if b.stopped:
            return "budget"
        if state.halted:  # the engine saw HLT
            return "wfi"
        return "yield"

    def stop(self, reason: str) -> None:
        """End the running slice from inside a hook (synchronous)."""
        self.stop_reason = reason
        self.uc.emu_stop()

    def activity(self) -> int:
        """Moves whenever a CPU takes a trap or the host serves it (polling does neither)."""
        return self.budget.events + self.engine.native_total(NATIVE_TRAPS | {COUNT_IRQ})

    def interrupts_enabled(self) -> bool:
        return bool(self.rreg(X.UC_X86_REG_EFLAGS) & IF_MASK)

    def wfi_state(self) -> tuple[int, int]:
        """(pending, enabled) lines of the halted CPU: a vector its APIC can offer, and
        every line while IF is set (none otherwise: only INIT/SIPI wake it)."""
        hart = self.current
        assert hart is not None
        self.sync_lapic(hart)
        pending = self.IRQ_SOFT if self.slots[hart.id].offered >= 0 else 0
        enabled = (self.IRQ_TIMER | self.IRQ_SOFT | self.IRQ_EXTERNAL) if self.interrupts_enabled() else 0
        return pending, enabled

    def update_mip(self, set_bits: int, clear_bits: int) -> None:
        """The scheduler raised a line on the loaded CPU (its APIC timer expired)."""
        hart = self.current
        if hart is None:
            return
        if set_bits & self.IRQ_TIMER:
            hart.stip = False
            now = self._now(hart)
            if self.on_timer is not None:
                self.on_timer(hart, now)  # the platform: APIC timer and board timers
            else:
                self.slots[hart.id].lapic.timer_expired(now)
        self.sync_lapic(hart)

    def apply_fences(self, hart: Hart) -> None:
        """x86 has no remote fences (the guest's IPIs and invlpg do that); a debugger that
        changed a halted CPU's registers (CR3) asks for a flush of its TLB."""
        if hart.flush_tlb:
            self.engine.tlb_flush_page(FLUSH_ALL)
        hart.flush_tlb = False
        hart.flush_pages.clear()

    now_fn: Callable[[Hart], int] | None = None
    on_timer: Callable[[Hart, int], None] | None = None  # a CPU's timer deadline passed

    def _now(self, hart: Hart) -> int:
        assert self.now_fn is not None
        return self.now_fn(hart)

    # -- INIT / SIPI -------------------------------------------------------------------------
    def init(self, hart: Hart) -> None:
        """INIT: the CPU waits for a SIPI."""
        self.slots[hart.id].wait_for_sipi = True

    def sipi(self, hart: Hart, vector: int) -> bool:
        """SIPI: a CPU waiting for one starts in real mode at vector << 12 (next switch-in)."""
        slot = self.slots[hart.id]
        if not slot.wait_for_sipi:
            return False
        slot.wait_for_sipi = False
        slot.sipi = vector
        return True

    # -- traps the engine did not enter natively ------------------------------------------------
    def _on_intr(self, _uc: Uc, intno: int, _ud: object) -> None:
        """An exception the engine handed back: the same fault more than the loop limit
        times in a row (everything else enters the guest natively)."""
        hart = self.current
        assert hart is not None
        detail = self.rreg(X.UC_X86_REG_CR2) if intno == 14 else 0
        self.host.on_fault_loop(hart, intno, self.rreg(X.UC_X86_REG_RIP), detail)
        self.stop("fault")

    def _on_insn_invalid(self, _uc: Uc, _ud: object) -> bool:
        self._on_intr(_uc, 6, _ud)
        return False


def _blob(ctx: unicorn.UcContext) -> int:
    """The address of a saved context's bytes."""
    return ctypes.cast(ctx.context, ctypes.c_void_p).value or 0


_ENCODED_GPRS = [X.UC_X86_REG_RAX, X.UC_X86_REG_RCX, X.UC_X86_REG_RDX, X.UC_X86_REG_RBX, X.UC_X86_REG_RSP,
                 X.UC_X86_REG_RBP, X.UC_X86_REG_RSI, X.UC_X86_REG_RDI] + [getattr(X, f"UC_X86_REG_R{i}") for i in range(8, 16)]
