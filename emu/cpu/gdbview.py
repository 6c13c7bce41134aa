"""What every CPU adapter's GDB register file shares (emu/cpu/*/gdb.py): the adapter it
reads through, its target description, and register sizes (one size unless the
architecture says otherwise)."""
from __future__ import annotations

from typing import Any, Callable


class GdbRegisterView:
    """Base of an architecture's registers as the GDB stub sees them."""

    reg_bytes = 8
    xml: Callable[[], str]  # the architecture's target description
    # Where GDB expects a watchpoint stop: before the accessing instruction, which it then
    # steps over itself (its have_nonsteppable_watchpoint: riscv), or after it (x86).
    watch_stops_before = False

    def __init__(self, cpu: Any) -> None:
        self.cpu = cpu

    def target_xml(self) -> str:
        return type(self).xml()

    def reg_size(self, num: int) -> int:
        """Bytes of register `num` in GDB's packets."""
        return self.reg_bytes

    def insn_ending_at(self, end: int, start: int) -> int | None:
        """The loaded hart's instruction that ends at `end`, walking its instructions from
        the boundary `start` on (None: not found; only where watch_stops_before)."""
        return None
