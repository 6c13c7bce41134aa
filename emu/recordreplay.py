"""The machine's side of record and replay (emu/record.py): where inputs are taken, how a
recording starts and ends, how a replay feeds them back between rounds, and the NICs' host
side when frames are recorded or replayed (emu/netrecord.py).

A mixin of Machine (its state lives there: `recorder`, `replayer`, `_replay_eof`, ...): the
machine's loop calls these at the points where host input reaches the guest.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from emu.errors import EXIT_REPLAY_DIVERGED, EmuError, ReplayDiverged

if TYPE_CHECKING:  # emu.record (json, base64, its dataclasses) loads only for a recording or replay
    from emu.record import Position, RxPlace


class RecordReplay:
    def net_backend(self, options: dict, nic: str) -> object:
        """A NIC's host side: its backend spec as given, or, when recording, the real
        backend with what it delivers written down, or, on replay, the recording's frames
        and no host network at all (emu/netrecord.py)."""
        if options["backend"] == "none" or (self.recorder is None and self.replayer is None):
            return options["backend"]
        from emu.netrecord import RecordingBackend, ReplayBackend

        if self.replayer is not None:
            return ReplayBackend(nic, self.replayer, self.rx_place)
        from emu.devices.virtio import make_net_backend

        assert self.recorder is not None
        return RecordingBackend(make_net_backend(options), nic, self.recorder, self.rx_place)

    def rx_place(self) -> RxPlace:
        """Where a NIC takes frames: between rounds, or in the running hart's MMIO write."""
        from emu.record import RxPlace

        hart = self.cpu.current
        if hart is None:
            return RxPlace(self.position())
        return RxPlace(self.position(), hart.id, self.scheduler.local_bytes(hart) - self.clock.round_start)

    def _start_recording(self, initrd: bytes | None) -> None:
        import hashlib

        from emu.record import Recorder, Replayer

        if self.opts.record and self.opts.replay:
            raise EmuError("--record and --replay: one or the other")
        if self.opts.gdb and self.opts.record:
            raise EmuError("--record: not with --gdb (--replay is: debug the replayed run)")
        image = hashlib.sha256()
        for addr, data in self.kernel.segments:
            image.update(addr.to_bytes(8, "little") + data)
        for addr, length in self.kernel.zero_fill:
            image.update(addr.to_bytes(8, "little") + length.to_bytes(8, "little"))
        header = {"kernel": image.hexdigest(), "initrd": hashlib.sha256(initrd or b"").hexdigest(),
                  "bootargs": self.board.bootargs, "harts": len(self.harts), "mips": self.clock.mips,
                  "quantum": self.opts.quantum, "ram": self.board.ram.size, "arch": self.board.arch,
                  "net": None, "nic": None}
        if self.opts.net is not None:
            from emu.devices.virtio import parse_net

            header["net"], header["nic"] = parse_net(self.opts.net)["backend"], self.opts.nic
        if self.opts.record:
            self.recorder = Recorder(self.opts.record, {**header, "interactive": self._stdin_tty,
                                                        "idle_realtime": self._stdin_tty or self.opts.realtime,
                                                        "exact_stops": self.opts.exact_stops})
        else:
            self.replayer = Replayer(self.opts.replay, header)
            self._replay_interactive = bool(self.replayer.header.get("interactive"))
            self._replay_idle = bool(self.replayer.header.get("idle_realtime"))

    def _finish_recording(self) -> None:
        if self.paused or self.exit_code is None:
            return
        pos = self.position()
        if self.recorder is not None:
            host = self.exit_reason.startswith(("quit", "signal", "timeout"))
            self.recorder.end(pos, self.exit_code, self.exit_reason, host)
        elif self.replayer is not None and self.exit_code != EXIT_REPLAY_DIVERGED:
            try:
                self.replayer.finish(pos, self.exit_code)
            except ReplayDiverged as err:
                self._report(str(err))
                self.exit_code, self.exit_reason = err.exit_code, "replay diverged"

    def position(self) -> Position:
        """Where the run is, between rounds: rounds done, virtual ticks, code bytes run."""
        from emu.record import Position

        return Position(self.scheduler.rounds, self.clock.ticks, self.scheduler.executed_bytes)

    @property
    def _input_ended(self) -> bool:
        """Console input has reached its end (on replay: where the recording's did)."""
        return self._replay_eof if self.replayer is not None else self.console.eof

    @property
    def _interactive(self) -> bool:
        """Idle time follows the host clock (a terminal; on replay: as recorded)."""
        if self.replayer is not None:
            return self._replay_interactive
        return self.console.interactive

    def _replay_poll(self) -> None:
        """Between rounds on replay: the recorded end of input, inputs and end, in order."""
        replayer = self.replayer
        assert replayer is not None
        if self.cpu.engine.exact_stops != bool(replayer.header.get("exact_stops")):
            self.loosen_replay("stops are exact in this run (watchpoints, --snapshot-every) and were not in the "
                               "recording, or the other way round (emu run --exact-stops)")
        pos = self.position()
        if replayer.eof(pos):
            self._replay_eof = True
        end = replayer.end(pos)
        if end is not None:
            self.request_exit(end[0], f"{end[1]} (replayed)")
            return
        self._poll_nics()  # their backends answer from the recording
        chunk = replayer.input(pos)
        if chunk is not None:
            self.uart.push_input(chunk)
        replayer.check_not_passed(pos)

    def loosen_replay(self, why: str) -> None:
        """The debugger changed the run's course (a stop ended a round early, a step ran
        outside the rounds, stops became exact): from here the run cannot reach the
        recording's positions, so a replay goes by virtual time."""
        if self.replayer is not None and self.opts.replay and not self.replayer.loose:
            self.replayer.loose = True
            out = self.opts.report or sys.stderr
            out.write(f"emu: replay: {why}; from here on the recording's inputs are given at their virtual "
                      "times, not exactly where they were recorded\n")
            out.flush()

    def _idle_loose(self, ticks: int) -> int:
        """A loose replay (after a debugger cut a round): recorded idle waits that are due
        are passed over, and the skip stops at the next event's virtual time."""
        replayer = self.replayer
        assert replayer is not None
        while replayer.idle(self.position()) is not None:
            pass
        due = replayer.next_ticks()
        now = self.clock.ticks
        return ticks if due is None or due <= now else min(ticks, due - now)

