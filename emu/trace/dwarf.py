"""Addresses of source lines and inlined functions, from DWARF (pyelftools).

zCore release builds use LTO: the functions that mark a stage are often inlined, so a
profile point can name a source line (`file.rs:123`) or an inlined function instead of
a symbol.  Every address where that line starts a statement, or where an inlined copy of
the function begins, becomes a hook address.
"""
from __future__ import annotations

import os
from pathlib import Path

from elftools.elf.elffile import ELFFile

from emu.errors import EmuError


class DwarfIndex:
    def __init__(self, elf_path: Path) -> None:
        self._f = open(elf_path, "rb")  # noqa: SIM115 - pyelftools reads lazily
        elf = ELFFile(self._f)
        if not elf.has_dwarf_info():
            raise EmuError(f"{elf_path}: no DWARF debug info (build with debug = true / -g)")
        self.dwarf = elf.get_dwarf_info()

    def line_addresses(self, spec: str) -> list[int]:
        """Statement addresses of `file:line` (file matched by its trailing path)."""
        try:
            fname, line_s = spec.rsplit(":", 1)
            line = int(line_s)
        except ValueError:
            raise EmuError(f"profile line point {spec!r}: use FILE:LINE") from None
        found: set[int] = set()
        for cu in self.dwarf.iter_CUs():
            lp = self.dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            files = lp["file_entry"]
            dirs = lp["include_directory"]
            version = lp["version"]
            for entry in lp.get_entries():
                st = entry.state
                if st is None or st.end_sequence or not st.is_stmt or st.line != line:
                    continue
                idx = st.file if version >= 5 else st.file - 1
                if not 0 <= idx < len(files):
                    continue
                fe = files[idx]
                name = fe.name.decode(errors="replace")
                if fe.dir_index and fe.dir_index <= len(dirs) and version < 5:
                    name = os.path.join(dirs[fe.dir_index - 1].decode(errors="replace"), name)
                if name == fname or name.endswith("/" + fname):
                    found.add(st.address)
        return sorted(found)

    def inline_addresses(self, func: str) -> list[int]:
        """Entry addresses of every inlined copy of `func` (and of the out-of-line one)."""
        found: set[int] = set()
        for cu in self.dwarf.iter_CUs():
            for die in cu.iter_DIEs():
                if die.tag not in ("DW_TAG_inlined_subroutine", "DW_TAG_subprogram"):
                    continue
                origin = die
                if "DW_AT_abstract_origin" in die.attributes:
                    origin = die.get_DIE_from_attribute("DW_AT_abstract_origin")
                name_attr = origin.attributes.get("DW_AT_name") or origin.attributes.get("DW_AT_linkage_name")
                if name_attr is None:
                    continue
                name = name_attr.value.decode(errors="replace")
                if name != func and not name.endswith("::" + func):
                    continue
                if "DW_AT_low_pc" in die.attributes:
                    found.add(die.attributes["DW_AT_low_pc"].value)
                elif "DW_AT_ranges" in die.attributes:
                    ranges = self.dwarf.range_lists()
                    if ranges is not None:
                        rl = ranges.get_range_list_at_offset(die.attributes["DW_AT_ranges"].value, cu=cu)
                        starts = [r.begin_offset for r in rl if hasattr(r, "begin_offset")]
                        if starts:
                            found.add(min(starts))
        return sorted(found)
