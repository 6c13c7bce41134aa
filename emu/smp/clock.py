"""The virtual clock: guest time derived from code executed, never from the host.

Time counts translated-block bytes (the native budget callback's unit): 30 bytes are
one tick of the 10 MHz timebase, i.e. about 100 M instructions per virtual second at
~3 bytes per instruction.  Harts run in rounds that all start at the same virtual time
(`round_start`), so a hart's local time is round_start + what it executed in the
round: two busy harts both advance at full speed, as on real SMP hardware.  Reads are
clamped to be monotonic across harts (a hart never reads a time earlier than one
another hart has already read), which keeps cross-hart causality.  Idle skip moves
`round_start` straight to the next timer deadline when every hart waits.
"""
from __future__ import annotations

from dataclasses import dataclass

from emu.board import TIMEBASE_HZ

BYTES_PER_TICK = 30
BYTES_PER_INSN = 3


@dataclass
class VirtualClock:
    round_start: int = 0  # bytes
    last_read: int = 0  # ticks: the latest time any hart has read
    idle_skipped: int = 0  # ticks jumped over while every hart waited

    def read(self, local_bytes: int) -> int:
        """Ticks seen by a hart whose local time is `local_bytes` (monotonic across harts)."""
        ticks = local_bytes // BYTES_PER_TICK
        if ticks > self.last_read:
            self.last_read = ticks
        return self.last_read

    @property
    def ticks(self) -> int:
        return self.round_start // BYTES_PER_TICK

    def seconds(self) -> float:
        return self.ticks / TIMEBASE_HZ

    def skip_to(self, ticks: int) -> None:
        target = ticks * BYTES_PER_TICK
        if target > self.round_start:
            self.idle_skipped += (target - self.round_start) // BYTES_PER_TICK
            self.round_start = target
