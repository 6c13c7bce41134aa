"""A position names one exact point of a debugged run, for `monitor when` / `monitor goto`.

A run is deterministic, but a debugger changes its course at every stop (a stop ends the
scheduling round early), so a position is counted in *segments*: a segment is what one
resume did (a continue until the next stop, or one stepi), numbered from 0.  Inside a
continue segment, harts run in rounds, in hart-id order, and each round gives a hart a
turn; the engine charges code bytes per translated block on block entry, so within a
turn (code bytes charged so far, pc) names one instruction exactly: the charge grows with
every block entered and a block runs each pc at most once.

Text form: `SEG:ROUND` (between two rounds) or `SEG:ROUND:HART:BYTES:PC` (before the
instruction at PC of HART's turn in ROUND, the first one there with at least BYTES
charged); a trailing `+` means after that instruction's memory access (where a
watchpoint stops).  Positions order as tuples: segments, rounds, harts in turn order, then bytes
and pc.

The machine stands at one position for all its harts at once: at HART's position in
ROUND the harts before it in turn order have had their turns of that round, the others
are where their previous turn left them.  So going back one instruction of a hart
(reverse-stepi) goes to the position just before that hart's previous instruction, and
every other hart goes back with it, to where it stood at that point of the run.
"""
from __future__ import annotations

from dataclasses import dataclass

from emu.errors import EmuError

BETWEEN_ROUNDS = -1  # `hart` of a position between two rounds
AFTER_STEP = 1 << 62  # `bytes` of the position right after a debugger single step


@dataclass(frozen=True, order=True)
class Position:
    seg: int
    round: int
    hart: int = BETWEEN_ROUNDS
    bytes: int = 0
    pc: int = 0
    after: int = 0  # 1: after the memory access of the instruction at pc (a watchpoint stop)

    def text(self) -> str:
        if self.hart == BETWEEN_ROUNDS:
            return f"{self.seg}:{self.round}"
        done = "step" if self.bytes == AFTER_STEP else str(self.bytes)
        return f"{self.seg}:{self.round}:{self.hart}:{done}:{self.pc:#x}{'+' if self.after else ''}"

    def describe(self) -> str:
        if self.hart == BETWEEN_ROUNDS:
            return f"segment {self.seg}, before round {self.round}"
        if self.bytes == AFTER_STEP:
            return f"segment {self.seg}, after a single step of hart {self.hart}, pc {self.pc:#x}"
        return (f"segment {self.seg}, round {self.round}, hart {self.hart} after {self.bytes} code bytes "
                f"of its turn, pc {self.pc:#x}" + (" (after its memory access)" if self.after else ""))

    def as_list(self) -> list[int]:
        return [self.seg, self.round, self.hart, self.bytes, self.pc, self.after]

    @staticmethod
    def of(items: list[int] | tuple[int, ...]) -> "Position":
        return Position(*(int(x) for x in items))

    @staticmethod
    def parse(text: str) -> "Position":
        parts = text.strip().split(":")
        try:
            if len(parts) == 2:
                return Position(int(parts[0]), int(parts[1]))
            if len(parts) == 5:
                done = AFTER_STEP if parts[3] == "step" else int(parts[3])
                after = parts[4].endswith("+")
                return Position(int(parts[0]), int(parts[1]), int(parts[2]), done, int(parts[4].rstrip("+"), 0),
                                int(after))
        except ValueError:
            pass
        raise EmuError(f"bad position {text!r}: use SEG:ROUND or SEG:ROUND:HART:BYTES:PC (as `monitor when` prints)")
