"""The riscv64 hart adapter: all harts time-multiplexed on ONE Unicorn instance.

Each hart is a saved Unicorn context.  The adapter performs what Unicorn 2.1.4 leaves
out (see shared/notes/unicorn-riscv64.md): trap entry for every synchronous exception
(Unicorn reports them through UC_HOOK_INTR with pc already advanced by 4 and never
enters the guest's trap vector), `ebreak` (reported through UC_HOOK_INSN_INVALID),
`rdtime` (always an illegal instruction), re-raising pending `mip` bits after a context
restore, and TLB flushes between harts.  Physical accesses outside the board's regions
fault natively: an M-mode stub run once at start-up programs PMP with the board's
regions, so S/U accesses elsewhere become guest access faults, never host errors.

Slices end through the engine's inline block budget and its native callback (emu/cpu/native/).
"""
from __future__ import annotations

import ctypes
import mmap
import struct
from typing import Protocol

import unicorn
from unicorn import Uc, UcError
from unicorn.riscv_const import (
    UC_RISCV_REG_A0,
    UC_RISCV_REG_A1,
    UC_RISCV_REG_MCAUSE,
    UC_RISCV_REG_MCOUNTEREN,
    UC_RISCV_REG_MEDELEG,
    UC_RISCV_REG_MEPC,
    UC_RISCV_REG_MIDELEG,
    UC_RISCV_REG_MIE,
    UC_RISCV_REG_MIP,
    UC_RISCV_REG_MSTATUS,
    UC_RISCV_REG_MTVAL,
    UC_RISCV_REG_MTVEC,
    UC_RISCV_REG_PC,
    UC_RISCV_REG_PRIV,
    UC_RISCV_REG_SATP,
    UC_RISCV_REG_SCAUSE,
    UC_RISCV_REG_SCOUNTEREN,
    UC_RISCV_REG_SEPC,
    UC_RISCV_REG_SSTATUS,
    UC_RISCV_REG_STVAL,
    UC_RISCV_REG_STVEC,
    UC_RISCV_REG_X0,
)
from unicorn.unicorn_py3.unicorn import uclib

from emu.board import MROM_BASE, BoardSpec
from emu.cpu import native
from emu.cpu.debughooks import DebugHooks
from emu.cpu.engine import Engine
from emu.cpu.riscv import csr
from emu.cpu.riscv.context import OFF_BADADDR, OFF_MHARTID, OFF_PC, blob_address, blob_u64, self_test
from emu.cpu.riscv.gdb import RiscvGdbRegisters
from emu.cpu.riscv.mmu import translate
from emu.cpu.riscv.traceprobe import RiscvTraceProbes
from emu.devices import Device
from emu.smp.hart import Hart

# Entered natively when delegated (medeleg): user ecall, instruction/load/store page faults.
NATIVE_TRAP_CAUSES = frozenset({csr.CAUSE_USER_ECALL, csr.CAUSE_FETCH_PAGE_FAULT,
                                csr.CAUSE_LOAD_PAGE_FAULT, csr.CAUSE_STORE_PAGE_FAULT})
NATIVE_TRAP_LOOP_LIMIT = 1000  # identical native faults in a row, then the hook sees them
SPIN_LIMIT = 3  # returns to a loop's head with identical registers that make it a poll
_MMIO_READ = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint, ctypes.c_void_p)
_MMIO_WRITE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint, ctypes.c_uint64, ctypes.c_void_p)
UNTIL = 0xFFFF_FFFF_FFFF_FFFE  # an address no guest executes: slices end by budget or stop
MASK64 = (1 << 64) - 1
FLUSH_ALL = MASK64  # uc_emu_tlb_flush_page: every page


class CpuHost(Protocol):
    """What the adapter asks of the machine around it."""

    def sbi_call(self, hart: Hart) -> None: ...

    def on_trap(self, hart: Hart, cause: int, epc: int, tval: int, priv: int) -> None: ...

    def on_host_fault(self, hart: Hart, message: str) -> None: ...


class RiscvCpu(DebugHooks):
    """One Unicorn instance, its RAM, MMIO regions and the harts' contexts (hooks on
    addresses, steps and inspection: DebugHooks)."""

    IRQ_TIMER = csr.MIP_STIP  # the interrupt lines the scheduler raises, as mip bits
    IRQ_SOFT = csr.MIP_SSIP
    IRQ_EXTERNAL = csr.MIP_SEIP

    def __init__(self, board: BoardSpec, host: CpuHost) -> None:
        self.board = board
        self.host = host
        self.uc = Uc(unicorn.UC_ARCH_RISCV, unicorn.UC_MODE_RISCV64)
        self._h = self.uc._uch
        self._val = ctypes.c_uint64()
        self._ref = ctypes.byref(self._val)
        self._reg_read = uclib.uc_reg_read
        self._reg_write = uclib.uc_reg_write
        self._vmem_translate = uclib.uc_vmem_translate
        self._vmem_translate.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p]
        self._vmem_translate.restype = ctypes.c_int
        self._paddr = ctypes.c_uint64()
        self._paddr_ref = ctypes.byref(self._paddr)
        self._context_save = uclib.uc_context_save
        self._vmem_read = uclib.uc_vmem_read
        self._vmem_read.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t]
        self._vmem_read.restype = ctypes.c_int
        self._vbuf = ctypes.create_string_buffer(8)

        ram = board.ram
        self.ram_base = ram.base
        self.ram_end = ram.end
        # Private, not shared: a forked child (emu test's snapshots) must get copy-on-write RAM.
        self.ram = mmap.mmap(-1, ram.size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        self._ram_ptr = ctypes.addressof(ctypes.c_char.from_buffer(self.ram))
        self.uc.mem_map_ptr(ram.base, ram.size, unicorn.UC_PROT_ALL, self._ram_ptr)
        rom = board.region("mrom")
        self.uc.mem_map(rom.base, rom.size, unicorn.UC_PROT_ALL)
        self_test(self.uc, ram.base)
        self.ram[0:4096] = bytes(4096)

        self.current: Hart | None = None
        self.stop_reason: str | None = None
        self.resume_after_error = False
        self.engine = Engine(self._h)  # the patched engine's extensions (patches/unicorn)
        self.gdb = RiscvGdbRegisters(self)  # the registers as the GDB stub sees them
        self.trace = RiscvTraceProbes(self)  # what the tracer asks of the architecture
        self._keep_alive: list[object] = []  # native callbacks and state the engine points to
        self._ctx_ptrs: dict[int, tuple[object, int]] = {}
        self._tlb_sets: dict[int, int] = {}  # hart id -> its own TLB set
        self.budget = native.BudgetStruct()
        self.budget.stop = ctypes.cast(uclib.uc_emu_stop, ctypes.c_void_p).value
        self.budget.spin_limit = SPIN_LIMIT
        self.budget.gpr = self.engine.gpr_address()
        self._gprs = (ctypes.c_uint64 * 32).from_address(self.budget.gpr)  # x0..x31 in place
        self.budget.trap_counts = self.engine.native_counts_address()
        self._native_lib = lib = native.load()
        self._budget_begin = lib.emu_budget_begin
        self._budget_begin.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self._budget_begin.restype = None
        self._budget_ptr = ctypes.addressof(self.budget)
        self.engine.budget(self._budget_ptr, ctypes.cast(lib.emu_budget_hit, ctypes.c_void_p).value or 0,
                           self._budget_ptr)
        self._io = io = native.HartIoStruct()  # the native switch and slice runner
        io.uc, io.budget = self._h, self._budget_ptr
        for name in ("context_restore", "reg_read", "reg_write", "emu_start"):
            setattr(io, name, ctypes.cast(getattr(uclib, f"uc_{name}"), ctypes.c_void_p).value)
        io.tlb_switch = ctypes.cast(uclib.uc_emu_tlb_switch, ctypes.c_void_p).value
        io.reg_priv, io.reg_mip, io.reg_pc = UC_RISCV_REG_PRIV, UC_RISCV_REG_MIP, UC_RISCV_REG_PC
        io.priv_m, io.until = csr.PRV_M, UNTIL
        io.mip_keep = MASK64 & ~(csr.MIP_STIP | csr.MIP_SEIP)
        self._io_ptr = ctypes.addressof(io)
        self._native_switch_in = lib.emu_switch_in
        self._native_switch_in.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64]
        self._native_switch_in.restype = ctypes.c_int
        self._run_slice = lib.emu_run_slice
        self._run_slice.argtypes = [ctypes.c_void_p, ctypes.c_int64]
        self._run_slice.restype = ctypes.c_int
        self.uc.hook_add(unicorn.UC_HOOK_INTR, self._on_intr)
        self.uc.hook_add(unicorn.UC_HOOK_INSN_INVALID, self._on_insn_invalid)
        # No UC_HOOK_MEM_UNMAPPED: any memory hook slows every access (measured: Linux to
        # /init 25% slower). S/U accesses outside the board fault through PMP; an M-mode
        # one stops Unicorn with an error that run() reports as a host fault.
        self.template: unicorn.UcContext | None = None
        self._suppress: tuple[Hart, int] | None = None
        self._scratch_ctx = self.uc.context_save()  # reused to read badaddr on faults
        self._scratch_ptr = self._scratch_ctx.context
        self._badaddr = blob_u64(self._scratch_ctx, OFF_BADADDR)

    # -- set-up ------------------------------------------------------------
    def map_device(self, base: int, size: int, device: Device, counts: dict[str, int], name: str) -> None:
        """Put a device model on the bus; `counts[name]` counts its accesses (benchmark figures)."""
        read, write = device.read, device.write
        counts[name] = 0

        budget = self.budget

        def on_read(_uc: Uc, offset: int, size: int, _ud: object) -> int:
            counts[name] += 1
            budget.events += 1
            return read(offset, size)

        def on_write(_uc: Uc, offset: int, size: int, value: int, _ud: object) -> None:
            counts[name] += 1
            write(offset, size, value)

        self.uc.mmio_map(base, size, on_read, None, on_write, None)

    def map_uart_fast(self, base: int, size: int, device: Device, counts: dict[str, int], name: str) -> native.UartFastStruct:
        """A 16550 whose LSR reads and THR writes are served natively (uart_fast.c) while
        the model keeps them free of side effects; every other access reaches `device`
        as map_device's do.  The model owns the returned state (`fast`, `rx_ready`); the
        machine drains its transmit buffer."""
        read, write = device.read, device.write
        counts[name] = 0
        budget, uc = self.budget, self.uc

        def failed(err: BaseException) -> None:  # as the binding's hook wrapper does
            if uc._hook_exception is None:
                uc._hook_exception = err
            uc.emu_stop()

        def on_read(_uc: int, offset: int, size: int, _ud: int) -> int:
            try:
                counts[name] += 1
                budget.events += 1
                return read(offset, size)
            except BaseException as err:  # noqa: BLE001 - re-raised after emu_start
                failed(err)
                return 0

        def on_write(_uc: int, offset: int, size: int, value: int, _ud: int) -> None:
            try:
                counts[name] += 1
                write(offset, size, value)
            except BaseException as err:  # noqa: BLE001 - re-raised after emu_start
                failed(err)

        fast = native.UartFastStruct()
        fast.events = ctypes.addressof(budget) + native.BudgetStruct.events.offset
        callbacks = (_MMIO_READ(on_read), _MMIO_WRITE(on_write))
        fast.read, fast.write = (ctypes.cast(cb, ctypes.c_void_p).value for cb in callbacks)
        self._keep_alive += [fast, callbacks]
        lib = self._native_lib
        err = uclib.uc_mmio_map(self._h, base, size, ctypes.cast(lib.emu_uart_read, ctypes.c_void_p),
                                ctypes.addressof(fast), ctypes.cast(lib.emu_uart_write, ctypes.c_void_p),
                                ctypes.addressof(fast))
        if err != unicorn.UC_ERR_OK:
            raise UcError(err)
        return fast

    def map_native_all_ones(self, base: int, size: int) -> None:
        """An empty region (reads all ones, writes ignored) served by the native helper."""
        lib = self._native_lib
        err = uclib.uc_mmio_map(self._h, base, size,
                                ctypes.cast(lib.emu_mmio_read_ones, ctypes.c_void_p), None,
                                ctypes.cast(lib.emu_mmio_write_ignore, ctypes.c_void_p), None)
        if err != unicorn.UC_ERR_OK:
            raise UcError(err)

    def build_template(self, pmp_spans: list[tuple[int, int]]) -> None:
        """Run the M-mode set-up stub once; every hart's context starts as a copy of it.

        The stub programs PMP to allow exactly `pmp_spans` (the board's regions) to S
        and U mode, one NAPOT entry per power-of-two span and a TOR pair otherwise;
        Unicorn's API cannot write PMP CSRs directly.
        """
        addrs: list[int] = []
        cfgs: list[int] = []
        for start, end in pmp_spans:
            size = end - start
            if size & (size - 1) == 0 and start % size == 0 and size >= 8:
                addrs.append((start >> 2) | ((size >> 3) - 1))
                cfgs.append(0x1F)  # NAPOT | RWX
            else:
                addrs += [start >> 2, end >> 2]
                cfgs += [0x00, 0x0F]  # OFF (bottom of the range), TOR | RWX
        # Unicorn 2.1.4 mishandles PMP entries 8-15 (seen: S-mode fetches from RAM then
        # fail), so the board must fit in pmpcfg0's eight entries.
        if len(addrs) > 8:
            raise ValueError(f"board needs {len(addrs)} PMP entries, at most 8 are usable")
        cfg = sum(c << (8 * i) for i, c in enumerate(cfgs))
        values = addrs + [cfg]
        words = [self._csrw(0x3B0 + i, 5 + i) for i in range(len(addrs))]  # pmpaddrN <- x(5+N)
        words.append(self._csrw(0x3A0, 5 + len(addrs)))  # pmpcfg0
        code = b"".join(struct.pack("<I", w) for w in words)
        self.uc.mem_write(MROM_BASE, code)
        self.set_priv(csr.PRV_M)
        for i, value in enumerate(values):
            self.wreg(UC_RISCV_REG_X0 + 5 + i, value)
        self._budget_begin(self._budget_ptr, 1 << 40)  # the budget must not end the stub
        self.uc.emu_start(MROM_BASE, MROM_BASE + len(code))
        if self.rreg(UC_RISCV_REG_PC) != MROM_BASE + len(code):
            raise RuntimeError("PMP set-up stub did not run to its end")
        for i in range(len(values)):
            self.wreg(UC_RISCV_REG_X0 + 5 + i, 0)
        self.wreg(UC_RISCV_REG_MEDELEG, csr.MEDELEG_DEFAULT)
        self.wreg(UC_RISCV_REG_MIDELEG, csr.MIDELEG_DEFAULT)
        self.wreg(UC_RISCV_REG_MCOUNTEREN, 7)
        self.wreg(UC_RISCV_REG_SCOUNTEREN, 7)
        self.wreg(UC_RISCV_REG_MSTATUS, csr.MSTATUS_FS)
        self.wreg(UC_RISCV_REG_MIE, 0)
        self.wreg(UC_RISCV_REG_MIP, 0)
        self.wreg(UC_RISCV_REG_SATP, 0)
        self.set_priv(csr.PRV_S)
        self.template = self.uc.context_save()

    def attach_clock(self, clock: native.ClockStruct) -> None:
        """Answer the time CSR natively from the virtual clock (no trap, no Python)."""
        self._clock = clock  # keep it alive: the engine holds its address
        fn = ctypes.cast(self._native_lib.emu_rdtime, ctypes.c_void_p).value or 0
        self.engine.set_rdtime(fn, ctypes.addressof(clock))

    def native_traps(self, enabled: bool) -> None:
        """User ecalls and page faults that the guest delegates to S-mode are entered
        through its own vector by the engine (QEMU's trap entry) unless something in
        Python must see them (tracing, a debugger): then every trap comes here."""
        self.engine.native_traps(NATIVE_TRAP_CAUSES if enabled else frozenset(), NATIVE_TRAP_LOOP_LIMIT)

    @staticmethod
    def _csrw(csr_no: int, rs1: int) -> int:
        return (csr_no << 20) | (rs1 << 15) | (1 << 12) | 0x73

    def new_context(self, hart_id: int) -> unicorn.UcContext:
        assert self.template is not None
        ctx = self.uc.context_save()
        ctypes.memmove(blob_address(ctx), blob_address(self.template), self.template.size)
        blob_u64(ctx, OFF_MHARTID).value = hart_id
        return ctx

    def mcsr_write(self, reg: int, value: int) -> None:
        priv = self.rreg(UC_RISCV_REG_PRIV)
        self.set_priv(csr.PRV_M)
        self.wreg(reg, value)
        self.set_priv(priv)

    def xreg(self, n: int) -> int:
        return self.rreg(UC_RISCV_REG_X0 + n)

    def read_virt_current(self, vaddr: int, size: int) -> bytes | None:
        """Guest memory as the running hart sees it at its current privilege (QEMU's MMU)."""
        if size <= 8:
            if self._vmem_read(self._h, vaddr & MASK64, unicorn.UC_PROT_READ, self._vbuf, size) == 0:
                return self._vbuf.raw[:size]
            return None
        priv = self.rreg(UC_RISCV_REG_PRIV)
        return self.read_virt(vaddr, size, self.current_satp(priv))

    # -- registers (ctypes straight into the C library: 2-3x cheaper than the binding)
    def rreg(self, reg: int) -> int:
        self._reg_read(self._h, reg, self._ref)
        return self._val.value

    def wreg(self, reg: int, value: int) -> None:
        self._val.value = value & MASK64
        self._reg_write(self._h, reg, self._ref)

    def set_priv(self, priv: int) -> None:
        self.wreg(UC_RISCV_REG_PRIV, priv)

    def mcsr_read(self, reg: int) -> int:
        """Read a CSR whatever the current privilege (Unicorn checks it on the API)."""
        priv = self.rreg(UC_RISCV_REG_PRIV)
        if priv == csr.PRV_M:
            return self.rreg(reg)
        self.set_priv(csr.PRV_M)
        value = self.rreg(reg)
        self.set_priv(priv)
        return value

    def update_mip(self, set_bits: int, clear_bits: int) -> None:
        """Change S-level mip bits of the running hart (taken at the next block)."""
        priv = self.rreg(UC_RISCV_REG_PRIV)
        if priv != csr.PRV_M:
            self.set_priv(csr.PRV_M)
        mip = self.rreg(UC_RISCV_REG_MIP)
        self.wreg(UC_RISCV_REG_MIP, (mip & ~clear_bits) | set_bits)
        if priv != csr.PRV_M:
            self.set_priv(priv)

    def flush_tlb(self) -> None:
        """Flush the running hart's whole TLB (every address space's set)."""
        self.engine.tlb_flush_page(FLUSH_ALL)

    def apply_fences(self, hart: Hart) -> None:
        """Carry out the TLB flushes due to the loaded hart (remote sfence.vma, a debugger's
        register write): the whole TLB, or only the pages named."""
        if hart.flush_tlb:
            self.flush_tlb()
        else:
            for vaddr in hart.flush_pages:
                self.engine.tlb_flush_page(vaddr)
        hart.flush_tlb = False
        hart.flush_pages.clear()

    # -- guest memory --------------------------------------------------------
    def read_phys(self, paddr: int, size: int) -> bytes | None:
        off = paddr - self.ram_base
        if 0 <= off and off + size <= len(self.ram):
            return self.ram[off:off + size]
        return None

    def write_phys(self, paddr: int, data: bytes) -> bool:
        off = paddr - self.ram_base
        if 0 <= off and off + len(data) <= len(self.ram):
            self.ram[off:off + len(data)] = data
            return True
        return False

    def _pte(self, paddr: int) -> int | None:
        off = paddr - self.ram_base
        if 0 <= off <= len(self.ram) - 8:
            return struct.unpack_from("<Q", self.ram, off)[0]
        return None

    def virt_to_phys(self, vaddr: int, satp: int) -> int | None:
        return translate(satp, vaddr & MASK64, self._pte)

    def current_satp(self, priv: int) -> int:
        """satp that applies to the running hart's accesses at `priv` (0 = bare)."""
        if priv == csr.PRV_M:
            return 0
        return self.mcsr_read(UC_RISCV_REG_SATP)

    def _fetch_phys(self, pc: int) -> int | None:
        """Physical address of an instruction of the running hart, through QEMU's own
        MMU at the hart's current privilege (native: ~4x cheaper than a Python walk)."""
        if self._vmem_translate(self._h, pc, unicorn.UC_PROT_EXEC, self._paddr_ref) == 0:
            return self._paddr.value
        return None

    def fetch_insn(self, pc: int, priv: int) -> int | None:
        """The instruction at `pc` of the running hart (16 or 32 bits), or None."""
        paddr = self._fetch_phys(pc)
        off = -1 if paddr is None else paddr - self.ram_base
        ram = self.ram
        if 0 <= off and off + 4 <= len(ram) and (pc & 0xFFF) <= 0xFFC:
            half = ram[off] | (ram[off + 1] << 8)
            return half if half & 3 != 3 else half | (ram[off + 2] << 16) | (ram[off + 3] << 24)
        # Slow path: page-crossing instruction or translation refused (e.g. no X).
        satp = self.current_satp(priv)
        low = self.read_virt(pc, 2, satp)
        if low is None:
            return None
        half = low[0] | (low[1] << 8)
        if half & 3 != 3:
            return half
        high = self.read_virt(pc + 2, 2, satp)
        return None if high is None else half | ((high[0] | (high[1] << 8)) << 16)

    # -- switching harts -------------------------------------------------------
    def switch_in(self, hart: Hart) -> None:
        self.current = hart
        tlb = self._tlb_sets.get(hart.id)
        if tlb is None:
            tlb = self._tlb_sets[hart.id] = self.engine.tlb_new()
        # context, the host-raised mip bits (QEMU's interrupt_request is outside the blob:
        # writing mip makes pending bits taken) and the hart's own TLB set, in one call
        mip = (csr.MIP_STIP if hart.stip else 0) | (csr.MIP_SEIP if hart.seip else 0)
        if hart.ssip_pending:
            mip |= csr.MIP_SSIP
            hart.ssip_pending = False
        err = self._native_switch_in(self._io_ptr, self._ctx_ptr(hart), tlb, mip)
        if err:
            raise UcError(err)
        if hart.start is not None:
            self._enter_started(hart)
        if hart.flush_tlb or hart.flush_pages:
            self.apply_fences(hart)

    def _enter_started(self, hart: Hart) -> None:
        """A hart an SBI HSM start has just started: S-mode at its start address, a0 = hart
        id, a1 = the caller's opaque value, paging and interrupts off."""
        pc, a0, a1 = hart.start
        hart.start = None
        self.set_priv(csr.PRV_M)
        self.wreg(UC_RISCV_REG_PC, pc)
        self.wreg(UC_RISCV_REG_A0, a0)
        self.wreg(UC_RISCV_REG_A1, a1)
        self.wreg(UC_RISCV_REG_SATP, 0)
        self.wreg(UC_RISCV_REG_SSTATUS, self.rreg(UC_RISCV_REG_SSTATUS) & ~csr.SSTATUS_SIE)
        self.set_priv(csr.PRV_S)

    def switch_out(self, hart: Hart) -> None:
        err = self._context_save(self._h, self._ctx_ptr(hart))
        if err:
            raise UcError(err)

    def _ctx_ptr(self, hart: Hart) -> int:
        """The address of the hart's saved context (cached while it is the same object)."""
        cached = self._ctx_ptrs.get(hart.id)
        if cached is None or cached[0] is not hart.ctx:
            cached = self._ctx_ptrs[hart.id] = (hart.ctx, blob_address(hart.ctx))
        return cached[1]

    def run(self, hart: Hart, budget: int) -> str:
        """Run the loaded hart for about `budget` code bytes; return why it stopped.

        'budget' (slice spent), 'wfi', a reason a hook set ('stop', 'exit', ...), or
        'fault' after a host-side error that was reported.
        """
        b = self.budget
        uc = self.uc
        self.stop_reason = None
        while True:
            self.resume_after_error = False
            uc._hook_exception = None  # what the binding's emu_start does around the call
            try:
                err = self._run_slice(self._io_ptr, budget)
                budget = -1  # a second pass continues the slice
                if err:
                    raise UcError(err)
                if uc._hook_exception is not None:
                    raise uc._hook_exception
            except UcError as err:
                if self.resume_after_error and self.stop_reason is None and b.budget > 0:
                    continue  # ebreak delivered from UC_HOOK_INSN_INVALID: carry on at stvec
                if self.stop_reason is None and not self.resume_after_error:
                    self.host.on_host_fault(hart, f"Unicorn stopped: {err}")
                    return "fault"
            break
        if self.stop_reason is not None:
            return self.stop_reason
        if b.spinning:
            return "spin"
        if b.stopped:
            return "budget"
        if self.fetch_insn(self._io.pc - 4, self._io.priv) == csr.INSN_WFI:
            return "wfi"
        return "yield"

    def stop(self, reason: str) -> None:
        """End the running slice from inside a hook (synchronous)."""
        self.stop_reason = reason
        self.uc.emu_stop()

    def activity(self) -> int:
        """A counter that moves whenever a hart takes a trap or the host serves it
        (native traps, SBI calls, MMIO): polling loops do none of these."""
        return self.budget.events + self.engine.native_total(NATIVE_TRAP_CAUSES)

    def interrupts_enabled(self) -> bool:
        """Would a pending S-level interrupt be taken now (U-mode, or S with SIE)?"""
        priv = self.rreg(UC_RISCV_REG_PRIV)
        return priv == csr.PRV_U or (priv == csr.PRV_S and bool(self.rreg(UC_RISCV_REG_SSTATUS) & csr.SSTATUS_SIE))

    def wfi_state(self) -> tuple[int, int]:
        """(mip, mie) of the running hart, to decide whether a WFI parks it."""
        return self.mcsr_read(UC_RISCV_REG_MIP), self.mcsr_read(UC_RISCV_REG_MIE)

    # -- traps -------------------------------------------------------------------
    def _on_intr(self, _uc: Uc, intno: int, _ud: object) -> None:
        self.budget.events += 1  # spin detection: this loop is doing something
        hart = self.current
        assert hart is not None
        pc = self.rreg(UC_RISCV_REG_PC)
        priv = self.rreg(UC_RISCV_REG_PRIV)
        epc = (pc - 4) & MASK64  # Unicorn has added 4 for every cause and length
        if intno == csr.CAUSE_USER_ECALL:
            if priv == csr.PRV_S:
                hart.count("sbi")
                self.host.sbi_call(hart)  # returns to pc = ecall + 4
                return
            self.deliver(hart, csr.CAUSE_USER_ECALL + priv, epc, 0, priv)
            return
        if intno == csr.CAUSE_ILLEGAL_INSTRUCTION:
            self.deliver(hart, intno, epc, self.fetch_insn(epc, priv) or 0, priv)
            return
        tval = 0
        if intno in csr.ADDRESS_CAUSES:
            self._context_save(self._h, self._scratch_ptr)
            tval = self._badaddr.value
        elif intno == csr.CAUSE_BREAKPOINT:
            tval = epc
        self.deliver(hart, intno, epc, tval, priv)

    def _on_insn_invalid(self, _uc: Uc, _ud: object) -> bool:
        hart = self.current
        assert hart is not None
        pc = self.rreg(UC_RISCV_REG_PC)
        priv = self.rreg(UC_RISCV_REG_PRIV)
        insn = self.fetch_insn(pc, priv)
        if insn in (csr.INSN_EBREAK, csr.INSN_C_EBREAK):
            self.deliver(hart, csr.CAUSE_BREAKPOINT, pc, pc, priv)
        else:
            self.deliver(hart, csr.CAUSE_ILLEGAL_INSTRUCTION, pc, insn or 0, priv)
        self.resume_after_error = True
        return True

    def deliver(self, hart: Hart, cause: int, epc: int, tval: int, priv: int) -> None:
        """Trap entry as the hardware (and OpenSBI's redirect) would do it."""
        self.host.on_trap(hart, cause, epc, tval, priv)
        if priv <= csr.PRV_S:
            if priv == csr.PRV_U:
                self.set_priv(csr.PRV_S)  # S CSRs are not writable through the API at U
            status = self.rreg(UC_RISCV_REG_SSTATUS)
            spie = csr.SSTATUS_SPIE if status & csr.SSTATUS_SIE else 0
            spp = csr.SSTATUS_SPP if priv == csr.PRV_S else 0
            status = (status & ~(csr.SSTATUS_SPIE | csr.SSTATUS_SPP | csr.SSTATUS_SIE)) | spie | spp
            self.wreg(UC_RISCV_REG_SSTATUS, status)
            self.wreg(UC_RISCV_REG_SEPC, epc)
            self.wreg(UC_RISCV_REG_SCAUSE, cause)
            self.wreg(UC_RISCV_REG_STVAL, tval)
            self.wreg(UC_RISCV_REG_PC, self.rreg(UC_RISCV_REG_STVEC) & ~3)
        else:
            status = self.rreg(UC_RISCV_REG_MSTATUS)
            mpie = csr.MSTATUS_MPIE if status & csr.MSTATUS_MIE else 0
            status = (status & ~(csr.MSTATUS_MPIE | csr.MSTATUS_MIE | (3 << csr.MSTATUS_MPP_SHIFT)))
            status |= mpie | (priv << csr.MSTATUS_MPP_SHIFT)
            self.wreg(UC_RISCV_REG_MSTATUS, status)
            self.wreg(UC_RISCV_REG_MEPC, epc)
            self.wreg(UC_RISCV_REG_MCAUSE, cause)
            self.wreg(UC_RISCV_REG_MTVAL, tval)
            self.wreg(UC_RISCV_REG_PC, self.rreg(UC_RISCV_REG_MTVEC) & ~3)

    # -- SBI register access -----------------------------------------------------
    def sbi_args(self) -> list[int]:
        """a0..a7 of the running hart."""
        return self._gprs[10:18]  # read in place: the ecall hook runs with the CPU state synced

    def set_sbi_ret(self, error: int, value: int | None = None) -> None:
        self._gprs[10] = error & MASK64
        if value is not None:
            self._gprs[11] = value & MASK64

    def pc(self) -> int:
        return self.rreg(UC_RISCV_REG_PC)

    def set_pc(self, pc: int) -> None:
        self.wreg(UC_RISCV_REG_PC, pc)

    def saved_pc(self, hart: Hart) -> int:
        """The pc in a hart's saved context (it is not loaded)."""
        return blob_u64(hart.ctx, OFF_PC).value

