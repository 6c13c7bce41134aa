"""Kernel symbols from the ELF symbol table, for reports, traces and breakpoints."""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass
class Symbols:
    addrs: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    by_name: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: list[tuple[int, int, str]]) -> "Symbols":
        entries = sorted(set(entries))
        syms = cls([a for a, _, _ in entries], [n for _, _, n in entries], [s for _, s, _ in entries])
        for addr, _size, name in entries:
            syms.by_name.setdefault(name, addr)
        return syms

    def lookup(self, addr: int) -> str | None:
        """`name+0xoff` for the symbol containing `addr`, or None."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        if i < 0:
            return None
        off = addr - self.addrs[i]
        if self.sizes[i] and off >= self.sizes[i]:
            return None
        return self.names[i] if off == 0 else f"{self.names[i]}+{off:#x}"

    def __len__(self) -> int:
        return len(self.addrs)
