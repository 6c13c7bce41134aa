"""The virtual clock: guest time derived from code executed, never from the host.

Time counts translated-block bytes (the native budget callback's unit) at ~3 bytes per
instruction.  The rate is a machine parameter (`--mips`, instructions per virtual
microsecond): at the default 1000 (a 1 GHz-class core, like the boards zCore runs on),
300 code bytes make one tick of the 10 MHz timebase.  Harts run in rounds that all
start at the same virtual time (`round_start`), so a hart's local time is round_start +
what it executed in the round: two busy harts both advance at full speed, as on real SMP
hardware.  Reads are clamped to be monotonic across harts (a hart never reads a time
earlier than one another hart has already read), which keeps cross-hart causality.  Idle
skip moves `round_start` straight to the next timer deadline when every hart waits.

The time CSR itself is answered natively (emu/cpu/native/budget.c, `emu_rdtime`); this
object and that function share one `ClockStruct`, so `last_read` has one home.
"""
from __future__ import annotations

from emu.board import TIMEBASE_HZ
from emu.cpu.native import ClockStruct

BYTES_PER_INSN = 3
DEFAULT_MIPS = 1000  # instructions per virtual microsecond
RDTIME_SPIN_THRESHOLD = 16  # reads from one pc, close together, before time is skipped
RDTIME_SPIN_GAP_INSNS = 200  # instructions between two reads that still count as a polling loop
RDTIME_SKIP_MAX = 1000  # ticks (100 us) skipped per read at most


def bytes_per_tick(mips: int) -> int:
    """Code bytes that make one timebase tick at `mips` instructions per microsecond."""
    return max(1, round(mips * 1_000_000 * BYTES_PER_INSN / TIMEBASE_HZ))


class VirtualClock:
    def __init__(self, mips: int = DEFAULT_MIPS) -> None:
        self.mips = mips
        self.bytes_per_tick = bytes_per_tick(mips)
        self.round_start = 0  # bytes
        self.idle_skipped = 0  # ticks jumped over while every hart waited
        n = self.native = ClockStruct()
        n.bytes_per_tick = self.bytes_per_tick
        n.spin_threshold = RDTIME_SPIN_THRESHOLD
        n.spin_gap = RDTIME_SPIN_GAP_INSNS * BYTES_PER_INSN
        n.skip_max = RDTIME_SKIP_MAX

    @property
    def last_read(self) -> int:
        """Ticks: the latest time any hart has read."""
        return self.native.last_read

    def read(self, local_bytes: int) -> int:
        """Ticks seen by a hart whose local time is `local_bytes` (monotonic across harts)."""
        ticks = local_bytes // self.bytes_per_tick
        if ticks > self.native.last_read:
            self.native.last_read = ticks
        return self.native.last_read

    @property
    def ticks(self) -> int:
        return self.round_start // self.bytes_per_tick

    def seconds(self) -> float:
        return self.ticks / TIMEBASE_HZ

    def skip_to(self, ticks: int) -> None:
        target = ticks * self.bytes_per_tick
        if target > self.round_start:
            self.idle_skipped += (target - self.round_start) // self.bytes_per_tick
            self.round_start = target
