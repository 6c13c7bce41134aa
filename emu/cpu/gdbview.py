"""What every CPU adapter's GDB register file shares (emu/cpu/*/gdb.py): the adapter it
reads through, its target description, and register sizes (one size unless the
architecture says otherwise)."""
from __future__ import annotations

from typing import Any, Callable


class GdbRegisterView:
    """Base of an architecture's registers as the GDB stub sees them."""

    reg_bytes = 8
    xml: Callable[[], str]  # the architecture's target description

    def __init__(self, cpu: Any) -> None:
        self.cpu = cpu

    def target_xml(self) -> str:
        return type(self).xml()

    def reg_size(self, num: int) -> int:
        """Bytes of register `num` in GDB's packets."""
        return self.reg_bytes
