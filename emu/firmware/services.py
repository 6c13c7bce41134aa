"""The machine's side of the SBI (emu/firmware/sbi.py's `Firmware`): what an SBI call does
to harts, timers, IPIs, TLBs, the console and the machine, apart from the run loop
(emu/machine.py)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from emu.cpu.riscv import csr
from emu.smp.hart import Hart, HsmState

if TYPE_CHECKING:
    from emu.machine import Machine

PAGE_SIZE = 4096
FENCE_PAGES_MAX = 32  # a remote sfence.vma over more pages than this flushes the whole TLB


class FirmwareServices:
    def __init__(self, machine: "Machine") -> None:
        self.m = machine
        self.harts = machine.harts

    def sbi_regs(self) -> list[int]:
        return self.m.cpu.sbi_args()

    def sbi_return(self, error: int, value: int | None = None) -> None:
        self.m.cpu.set_sbi_ret(error, value)

    def read_caller_virt(self, vaddr: int, size: int) -> bytes | None:
        return self.m.cpu.read_virt(vaddr, size, self.m.cpu.current_satp(csr.PRV_S))

    def read_phys(self, paddr: int, size: int) -> bytes | None:
        return self.m.cpu.read_phys(paddr, size)

    def write_phys(self, paddr: int, data: bytes) -> bool:
        return self.m.cpu.write_phys(paddr, data)

    def set_timer(self, hart: Hart, deadline: int) -> None:
        self.m.scheduler.set_timer(hart, deadline)

    def send_ipi(self, source: Hart, targets: list[Hart]) -> None:
        for t in targets:
            self.m.events.append(("ipi", source.id, self.m.clock.last_read, t.id))
            if self.m.tracer:
                self.m.tracer.on_ipi(source, t)
            if t is self.m.cpu.current:
                self.m.cpu.update_mip(csr.MIP_SSIP, 0)
            else:
                t.ssip_pending = True
                self.m.scheduler.wake_by_ipi(source, t)

    def clear_ipi(self, hart: Hart) -> None:
        self.m.cpu.update_mip(0, csr.MIP_SSIP)

    def remote_fence(self, source: Hart, targets: list[Hart], kind: str, start: int = 0, size: int = -1) -> None:
        """Remote fences: each hart keeps its own TLB (patches/unicorn), so a remote
        sfence.vma flushes exactly the pages named, in exactly the harts named: the caller's
        at once, the others' at their next switch-in."""
        if kind == "fence.i":
            return  # one shared translation cache that tracks writes to code: nothing to do
        pages = None
        if not (start == 0 and size == 0) and 0 <= size <= FENCE_PAGES_MAX * PAGE_SIZE:
            first = start & ~(PAGE_SIZE - 1)
            pages = range(first, start + max(size, 1), PAGE_SIZE)
        for t in targets:
            if pages is None or t.flush_tlb or len(t.flush_pages) + len(pages) > FENCE_PAGES_MAX:
                t.flush_tlb = True
                t.flush_pages.clear()
            else:
                t.flush_pages.extend(pages)
        if source in targets:
            if source.flush_tlb:
                # A whole-TLB flush from inside a hook is slow (the TLB may have grown to
                # megabytes); ending the slice and flushing between slices costs microseconds.
                self.m.cpu.stop("yield")
            else:
                self.m.cpu.apply_fences(source)

    def hart_start(self, hart: Hart, start_addr: int, opaque: int) -> None:
        self.m.events.append(("hsm_start", hart.id, self.m.clock.last_read, start_addr))
        hart.state = HsmState.START_PENDING
        hart.start = (start_addr, hart.id, opaque)
        if self.m.tracer:
            self.m.tracer.on_hart(hart, "start")
        hart.parked = False
        hart.stip = False
        hart.deadline = (1 << 64) - 1

    def hart_stop(self, hart: Hart) -> None:
        hart.state = HsmState.STOPPED
        if self.m.tracer:
            self.m.tracer.on_hart(hart, "stop")
        self.m.cpu.stop("stop")

    def hart_suspend(self, hart: Hart, non_retentive: bool, resume_addr: int, opaque: int) -> None:
        hart.state = HsmState.SUSPENDED
        hart.parked = True
        if non_retentive:
            hart.start = (resume_addr, hart.id, opaque)
        self.m.cpu.stop("suspend")

    def console_write(self, data: bytes) -> None:
        self.m.console_write(data)

    def console_read(self, size: int) -> bytes:
        out = bytearray()
        while self.m.uart.rx and len(out) < size:
            out.append(self.m.uart.rx.popleft())
        self.m.uart.sync_fast()
        take = min(size - len(out), len(self.m.pending_input))
        out += self.m.pending_input[:take]
        del self.m.pending_input[:take]
        return bytes(out)

    def system_reset(self, reset_type: int, reason: int) -> None:
        kind = ("shutdown", "cold reboot", "warm reboot")[reset_type]
        self.m.request_exit(1 if reason else 0, f"SBI system reset: {kind}{' (system failure)' if reason else ''}")
