"""Hooks on chosen addresses, single steps and halted-CPU inspection: what the tracer and
the GDB stub ask of any CPU adapter, done the same way on every architecture with
Unicorn's own code and memory hooks (never a hook per instruction in a normal run)."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import unicorn
from unicorn import Uc

if TYPE_CHECKING:
    from emu.cpu.engine import Engine
    from emu.smp.hart import Hart


@dataclass
class Rewind:
    """What a watched access's instruction changes, kept to put its hart back before it."""

    hart: "Hart"
    near: int  # the pc in the callback: the accessing instruction or one before it
    context: Any  # the hart's registers before the instruction (a Unicorn context)
    memory: list[tuple[int, bytes]] = field(default_factory=list)  # (paddr, bytes before)
    device: bool = False  # it accessed a device: that cannot be undone


class DebugHooks:
    """Mixed into a CPU adapter, which provides uc, engine, current, gdb, run, stop, pc,
    set_pc, read_phys and virt_to_phys (its page-table walk)."""

    uc: Uc
    engine: "Engine"
    current: "Hart | None"
    gdb: Any  # the adapter's GDB register view (emu/cpu/gdbview.py)
    _suppress: "tuple[Hart, int] | None" = None
    _code_hooks: "dict[int, int] | None" = None  # handle -> address
    _rewind: Rewind | None = None

    def run(self, hart: "Hart", budget: int) -> str: ...  # noqa: D102 - the adapter's

    def stop(self, reason: str) -> None: ...  # noqa: D102 - the adapter's

    def pc(self) -> int: ...  # noqa: D102 - the adapter's

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
        if self._code_hooks is None:
            self._code_hooks = {}
        self._code_hooks[handle] = addr
        return handle

    def hooked(self, addr: int) -> bool:
        """Is there a code hook on `addr`?"""
        return addr in (self._code_hooks or {}).values()

    def add_mem_watch(self, addr: int, size: int, kind: int, fn: Callable[[int, int, int], None]) -> int:
        """Call fn(paddr, size, value) on a guest access to physical [addr, addr + size)
        (Unicorn matches memory hooks against physical addresses).

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
        if self._code_hooks is not None:
            self._code_hooks.pop(handle, None)

    def keep_before_access(self, hart: "Hart", paddr: int, size: int, first: bool) -> None:
        """From a watchpoint's callback, before the access (`first`: the one that stops
        the machine): where GDB expects the stop before the accessing instruction, keep
        what that instruction changes, so that rewind() can undo it once it is done (the
        engine stops only after it: emu.patch's exact stops)."""
        if not self.gdb.watch_stops_before:
            return
        if first:  # registers are written back before a load or store; the pc is not
            self._rewind = Rewind(hart, self.pc(), self.uc.context_save())
        rewind = self._rewind
        if rewind is None or rewind.hart is not hart:
            return
        before = self.read_phys(paddr, size)
        if before is None:
            rewind.device = True
        else:
            rewind.memory.append((paddr, before))

    def rewind(self) -> "Hart | None":
        """Between rounds after a watchpoint stop: put the hart back before the accessing
        instruction (its registers, the memory it wrote); the hart, or None if there is
        nothing to undo (or a device was accessed)."""
        rewind, self._rewind = self._rewind, None
        if rewind is None or rewind.device:
            return None
        with self.inspect(rewind.hart):
            # the engine stopped right after the accessing instruction, which is no branch:
            # it is the one that ends here (the callback's pc may be its block's start)
            pc = self.gdb.insn_ending_at(self.pc(), rewind.near)
        if pc is None:
            return None  # (an interrupt was taken at the stop): reported after the access
        for paddr, before in reversed(rewind.memory):
            self.uc.mem_write(paddr, before)  # through Unicorn: code on the page is retranslated
        with self.inspect(rewind.hart, write=True):
            self.uc.context_restore(rewind.context)
            self.set_pc(pc)
        return rewind.hart

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
        quiet = self._suppress
        try:
            reason = self.run(hart, 1 << 40)
        finally:
            self.uc.hook_del(handle)
            self.uc.ctl_flush_tb()
            if quiet is not None and quiet[0] is hart and self._suppress == quiet:
                self._suppress = None  # executed (a stop the step ran into keeps its own)
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
