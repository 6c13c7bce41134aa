"""Hooks on chosen addresses, single steps and halted-CPU inspection: what the tracer and
the GDB stub ask of any CPU adapter, done the same way on every architecture with
Unicorn's own code and memory hooks (never a hook per instruction in a normal run)."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Callable, Iterator

import unicorn
from unicorn import Uc

if TYPE_CHECKING:
    from emu.cpu.engine import Engine
    from emu.smp.hart import Hart


class DebugHooks:
    """Mixed into a CPU adapter, which provides uc, engine, current, run, stop, set_pc,
    read_phys and virt_to_phys (its page-table walk)."""

    uc: Uc
    engine: "Engine"
    current: "Hart | None"
    _suppress: "tuple[Hart, int] | None" = None

    def run(self, hart: "Hart", budget: int) -> str: ...  # noqa: D102 - the adapter's

    def stop(self, reason: str) -> None: ...  # noqa: D102 - the adapter's

    def set_pc(self, pc: int) -> None: ...  # noqa: D102 - the adapter's

    def read_phys(self, paddr: int, size: int) -> bytes | None: ...  # noqa: D102 - the adapter's

    def virt_to_phys(self, vaddr: int, root: int) -> int | None: ...  # noqa: D102 - the adapter's

    def read_virt(self, vaddr: int, size: int, root: int) -> bytes | None:
        """Read guest memory through the page tables at `root` (0: physical), page by page."""
        out = b""
        while size > 0:
            chunk = min(size, 4096 - (vaddr & 0xFFF))
            paddr = self.virt_to_phys(vaddr, root)
            data = None if paddr is None else self.read_phys(paddr, chunk)
            if data is None:
                return None
            out += data
            vaddr += chunk
            size -= chunk
        return out

    def add_code_hook(self, addr: int, fn: Callable[[int], None]) -> int:
        """Call fn(pc) before the instruction at virtual `addr` runs (any CPU)."""
        def on_code(_uc: Uc, address: int, _size: int, _ud: object) -> None:
            if self._suppress is not None and self._suppress == (self.current, address):
                return  # re-executing the instruction a debugger stop was reported at
            fn(address)

        handle = self.uc.hook_add(unicorn.UC_HOOK_CODE, on_code, begin=addr, end=addr)
        self.uc.ctl_remove_cache(addr, addr + 4)  # code translated before the hook ignores it
        return handle

    def add_mem_watch(self, addr: int, size: int, kind: int, fn: Callable[[int, int, int], None]) -> int:
        """Call fn(address, size, value) on a guest access to [addr, addr + size).

        Kinds as GDB numbers them: 2 write, 3 read, 4 access.
        """
        htype = {2: unicorn.UC_HOOK_MEM_WRITE, 3: unicorn.UC_HOOK_MEM_READ,
                 4: unicorn.UC_HOOK_MEM_READ | unicorn.UC_HOOK_MEM_WRITE}[kind]

        def on_access(_uc: Uc, _access: int, address: int, asize: int, value: int, _ud: object) -> None:
            fn(address, asize, value)

        self.engine.set_exact_stops(True)  # a watchpoint stops right after the access
        handle = self.uc.hook_add(htype, on_access, begin=addr, end=addr + max(size, 1) - 1)
        self.uc.ctl_flush_tb()  # code translated before the hook ignores it
        return handle

    def remove_hook(self, handle: int) -> None:
        self.uc.hook_del(handle)

    def suppress_hooks_at(self, hart: "Hart", pc: int) -> None:
        """Code hooks at `pc` stay quiet for `hart` until it has executed that instruction."""
        self._suppress = (hart, pc)

    def step(self, hart: "Hart") -> str:
        """Execute exactly one instruction of the loaded CPU (traps included)."""
        count = [0]

        def on_insn(_uc: Uc, address: int, _size: int, _ud: object) -> None:
            count[0] += 1
            if count[0] == 2:
                self.set_pc(address)
                self.stop("step")

        handle = self.uc.hook_add(unicorn.UC_HOOK_CODE, on_insn, begin=1, end=0)
        self.uc.ctl_flush_tb()
        try:
            reason = self.run(hart, 1 << 40)
        finally:
            self.uc.hook_del(handle)
            self.uc.ctl_flush_tb()
            self._suppress = None
        return reason

    @contextlib.contextmanager
    def inspect(self, hart: "Hart", write: bool = False) -> "Iterator[None]":
        """Load a halted CPU's context to read (or change) its registers."""
        assert self.current is None or self.current is hart
        if self.current is hart:
            yield
            return
        self.uc.context_restore(hart.ctx)
        try:
            yield
        finally:
            if write:
                self.uc.context_update(hart.ctx)
                hart.flush_tlb = True  # its page tables may have changed under its TLB
