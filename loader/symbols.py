"""Kernel symbols from the ELF symbol table, for reports, traces and breakpoints."""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from loader.demangle import demangle

# Assembler and compiler local labels: never what a person means by "where is this pc"
# (`.LBB146_169`, `.Ltmp3`, `$x`, `$d.1`, `L0`, `__unnamed_1`).
_JUNK = re.compile(r"^(\.L|\$|L\d|__unnamed_\d|\.annobin)")
LOOKBACK = 64  # symbols searched below an address for a sized one that contains it


def is_label_junk(name: str) -> bool:
    return bool(_JUNK.match(name))


@dataclass
class Symbols:
    addrs: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    by_name: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_entries(cls, entries: list[tuple[int, int, str]]) -> "Symbols":
        entries = sorted({e for e in entries if not is_label_junk(e[2])})
        syms = cls([a for a, _, _ in entries], [n for _, _, n in entries], [s for _, s, _ in entries])
        for addr, _size, name in entries:
            syms.by_name.setdefault(name, addr)
        return syms

    def _find(self, addr: int) -> int | None:
        """Index of the symbol that names `addr`: a sized one (a function) containing it, else the
        nearest unsized label below it with no sized symbol in between."""
        i = bisect.bisect_right(self.addrs, addr) - 1
        label: int | None = None
        blocked = False
        for j in range(i, max(-1, i - LOOKBACK), -1):
            size = self.sizes[j]
            if size:
                if addr < self.addrs[j] + size:
                    return j
                blocked = True  # past the end of a function: an earlier label does not name it
            elif label is None and not blocked:
                label = j
        return label

    def lookup(self, addr: int) -> str | None:
        """`name+0xoff` (mangled) for the symbol containing `addr`, or None."""
        j = self._find(addr)
        if j is None:
            return None
        off = addr - self.addrs[j]
        return self.names[j] if off == 0 else f"{self.names[j]}+{off:#x}"

    def describe(self, addr: int) -> str | None:
        """Like `lookup`, with the function name demangled (Rust, C++): for people."""
        j = self._find(addr)
        if j is None:
            return None
        off = addr - self.addrs[j]
        name = demangle(self.names[j])
        return name if off == 0 else f"{name}+{off:#x}"

    def __len__(self) -> int:
        return len(self.addrs)
