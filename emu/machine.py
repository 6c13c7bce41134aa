"""A machine built from a BoardSpec: CPU model, devices, firmware, scheduler, console.

The Machine is the composition root: it owns the parts and answers the CPU adapter's
and the firmware's requests (it implements `CpuHost` and the SBI's `Firmware`), so no
part reaches into another.
"""
from __future__ import annotations

import ctypes
import os
import sys
import time
from pathlib import Path
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable

from unicorn.riscv_const import UC_RISCV_REG_A7 as UC_A7

from emu.board import TIMEBASE_HZ, BoardSpec, merged_ranges
from emu.console import Console
from emu.cpu.riscv import csr
from emu.cpu.riscv.cpu import RiscvCpu
from emu.devices.aclint import Aclint
from emu.devices.dma import GuestMemory
from emu.devices.irq import IrqLine
from emu.devices.plic import PLIC_NDEV, Plic
from emu.devices.test_finisher import TestFinisher
from emu.devices.uart16550 import Uart16550
from emu.devices.virtio_mmio import VirtioMmioEmpty
from emu.errors import (EXIT_FAULT_LOOP, EXIT_GUEST_HANG, EXIT_GUEST_PANIC, EXIT_HOST_FAULT, EXIT_IDLE_EOF,
                        EXIT_TIMEOUT, EmuError, ReplayDiverged)
from emu.fdt import build_fdt
from emu.firmware.sbi import Sbi
from emu.firmware.services import FirmwareServices
from emu.recordreplay import RecordReplay
from emu.runctl import IdleAfterEof, SignalGuard, signal_exit_code
from emu.smp.clock import BYTES_PER_INSN, DEFAULT_MIPS, VirtualClock
from emu.smp.hart import Hart, HsmState
from emu.smp.scheduler import Scheduler
from loader.image import KernelImage

if TYPE_CHECKING:  # imported when used: a plain run does not pay for tracing or debugging
    from emu.cpu import native
    from emu.debug.reverse import OutputGate
    from emu.debug.stub import GdbStub
    from emu.record import Recorder, Replayer
    from emu.trace.events import EventLog
    from emu.trace.profile import Profile
    from emu.trace.tracer import Tracer
    from emu.devices.virtio import VirtioMmio
    from emu.devices.pci_host import PciHost
from loader.initrd import plan_layout

REALTIME_SLACK = 0.05  # s the virtual clock may lag the host before --realtime re-bases
UART_FIFO = 1  # bytes moved into the UART per round: a serial line, not a paste buffer
FAULT_LOOP_LIMIT = 1000  # identical faults in a row
PANIC_PATTERNS = (b"Kernel panic - not syncing", b"panicked at")
PANIC_GRACE_TICKS = TIMEBASE_HZ // 10  # let the panic message finish printing
INPUT_POLL_S = 0.001  # look for console input at most this often while the guest runs
REALTIME_LAG_MAX = 1.0  # s: idle time in real time is skipped at once while the clock trails by up to this


@dataclass
class MachineOptions:
    quantum: int = 20_000  # instructions per hart per round (20 us of virtual time at 1000 MIPS)
    mips: int = DEFAULT_MIPS  # instructions per virtual microsecond (the virtual CPU's speed)
    timeout: float | None = None  # host seconds
    realtime: bool = False
    stdin: BinaryIO | int | None = None
    stdout: BinaryIO | int | None = None
    capture: bool = False
    report: BinaryIO | None = None  # where hang/panic reports go (stderr)
    trace: str | None = None  # write a trace file here
    trace_events: str = "all"  # --trace-events groups
    trace_profile: str = "auto"  # built-in name, TOML file, "auto" or "none"
    drives: list[str] = field(default_factory=list)  # --drive specs (virtio-blk)
    net: str | None = None  # --net spec (the NIC's backend); None: no NIC
    nic: str = "virtio"  # --nic: the model behind --net (virtio-net, or e1000 / e1000e on PCI)
    virtio_legacy: bool = True  # virtio-mmio Version 1 (QEMU's default; zCore needs it)
    gdb: str | None = None  # [HOST]:PORT for the GDB stub
    gdb_wait: bool = False  # halt before the first instruction until GDB continues
    console_copies: list[int] = field(default_factory=list)  # fds that also get the console output
    console_escape: bool = True  # Ctrl-A keys on the console input (QEMU: mon:stdio; off for -serial stdio)
    handle_signals: bool = False  # SIGINT/SIGTERM/SIGHUP end the run cleanly (emu run; not emu test's children)
    on_idle_eof: float | None = None  # exit after this many virtual s idle once piped input ended (None: wait)
    record: str | None = None  # write the run's host inputs here (emu/record.py)
    replay: str | None = None  # take the host inputs from this recording instead of the console
    snapshot_every: float | None = None  # --gdb reverse execution: snapshot every this many virtual ms
    snapshot_keep: int = 64  # at most this many snapshots (the oldest go first)
    exact_stops: bool = False  # stops asked for mid-block take effect at the next instruction (as with --gdb watchpoints)


@dataclass
class RunResult:
    exit_code: int
    reason: str
    stats: dict[str, object] = field(default_factory=dict)


class Machine(RecordReplay):
    def __init__(self, board: BoardSpec, kernel: KernelImage, initrd: bytes | None = None,
                 options: MachineOptions | None = None) -> None:
        self.board = board
        self.kernel = kernel
        self.opts = options or MachineOptions()
        self.exit_code: int | None = None
        self.exit_reason = ""
        self.events: deque[tuple] = deque(maxlen=16)
        self.console = Console(self.opts.stdin, self.opts.stdout, self.opts.capture, self.opts.console_copies,
                               self.opts.console_escape)
        self.console.before_flush = self.drain_uart
        self.clock = VirtualClock(self.opts.mips)
        self.harts = [Hart(i) for i in range(board.harts)]
        self._panic_at: int | None = None
        self.pending_input = bytearray()  # typed but not yet in the UART FIFO
        self._input_polled = 0.0  # host time of the last look at console input
        self._tail = b""
        self.signals = SignalGuard(enabled=False)
        self.idle_eof = IdleAfterEof(self.opts.on_idle_eof)
        self._tty_of: Console | None = None  # the console whose input `_tty` describes
        self._tty = False
        self.output_gate: "OutputGate | None" = None  # reverse debugging: output not shown twice
        self.input_held = False  # reverse debugging re-executes the past: no new input meanwhile

        self.mmio_counts: dict[str, int] = {}
        self._uart_fast: "native.UartFastStruct | None" = None
        self.sbi: Sbi | None = None
        self.virtio: dict[str, "VirtioMmio"] = {}
        self.pci: "PciHost | None" = None
        self.recorder: Recorder | None = None
        self.replayer: Replayer | None = None
        self._replay_eof = False
        if self.opts.record or self.opts.replay:
            self._start_recording(initrd)  # before the devices: a NIC's backend depends on it
        if board.arch == "x86_64":
            from emu.cpu.x86_64.pc import PcPlatform

            self.platform = PcPlatform(self, initrd)
        else:
            self._build_riscv(initrd)
        self.tracer: Tracer | None = None
        self.trace_log: EventLog | None = None
        self.trace_profile: Profile | None = None
        self.gdb: GdbStub | None = None
        self.run_only: set[int] | None = None  # debugger: only these harts run (scheduler locking)
        self.pause_when: Callable[[Machine], bool] | None = None
        self.paused = False
        if self.opts.trace or self.opts.gdb:
            self._start_tracing()
        self.cpu.native_traps(self.tracer is None)
        if self.opts.exact_stops or (self.replayer is not None and self.replayer.header.get("exact_stops")):
            self.cpu.engine.set_exact_stops(True)  # as recorded: where a device's stop request lands
        if self.opts.gdb:
            from emu.debug.stub import GdbStub

            self.gdb = GdbStub(self, self.opts.gdb, self.opts.gdb_wait)
            assert self.tracer is not None
            self.tracer.listener = self.gdb.on_trace_event
            out = self.opts.report or sys.stderr
            out.write(f"emu: gdb stub listening on 127.0.0.1:{self.gdb.port}"
                      f"{' (waiting for gdb)' if self.opts.gdb_wait else ''}\n")
            out.flush()

    def _build_riscv(self, initrd: bytes | None) -> None:
        """The riscv64 virt board: CPU, PLIC, ACLINT, UART, virtio, the SBI, the kernel."""
        board = self.board
        self.cpu = RiscvCpu(board, self)
        ram = board.ram
        self.dma = GuestMemory(ram.base, ram.size, lambda a, n: bytes(self.cpu.uc.mem_read(a, n)),
                               self.cpu.uc.mem_write)
        self.scheduler = Scheduler(self.cpu, self.harts, self.clock, self.opts.quantum * BYTES_PER_INSN)
        self.cpu.attach_clock(self.clock.native)
        self.firmware = FirmwareServices(self)  # the SBI's view of the machine
        self.sbi = Sbi(self.firmware)
        self.plic = Plic(PLIC_NDEV, 2 * board.harts, self._on_plic_output)
        self.uart = Uart16550(self.console_write, IrqLine(board.region("uart0").irq or 10, self.plic.set_level))
        self.aclint = Aclint(board.harts, lambda: self.scheduler.now(self.cpu.current or self.harts[0]))
        self.virtio = self._make_virtio_devices()
        self.pci = self._make_pci()
        board.pci = self.pci is not None
        for region in board.regions:
            if region.kind == "pci_ecam":  # buses without devices: all ones, answered natively
                bus0 = 0 if self.pci is None else 1 << 20
                if bus0:
                    self.cpu.map_device(region.base, bus0, self.pci.ecam, self.mmio_counts, region.name)
                self.cpu.map_native_all_ones(region.base + bus0, region.size - bus0)
                continue
            if region.kind == "pci_mmio":  # without PCI devices nothing is there (an access faults)
                if self.pci is not None:
                    self.cpu.map_device(region.base, region.size, self.pci.window, self.mmio_counts, region.name)
                continue
            device = self.virtio.get(region.name) or self._make_device(region.kind)
            if device is self.uart:  # its hot registers natively (see uart_fast.c)
                self._uart_fast = self.cpu.map_uart_fast(region.base, region.size, device, self.mmio_counts, region.name)
                self.uart.attach_fast(self._uart_fast)
            elif device is not None:
                self.cpu.map_device(region.base, region.size, device, self.mmio_counts, region.name)
        self.cpu.build_template(merged_ranges([r for r in board.regions if r.kind != "rom"
                                               and (r.kind != "pci_mmio" or self.pci is not None)]))
        for hart in self.harts:
            hart.ctx = self.cpu.new_context(hart.id)
        self._load(initrd)

    def _start_tracing(self) -> None:
        from emu.trace.events import EventLog, parse_groups
        from emu.trace.profile import auto_profile, load_profile
        from emu.trace.tracer import Tracer

        spec = self.opts.trace_profile
        if spec == "auto":
            self.trace_profile = auto_profile(self.kernel.symbols, self.board.arch)
        elif spec != "none":
            self.trace_profile = load_profile(spec)
            if self.trace_profile.arch != self.board.arch:
                raise EmuError(f"trace profile {spec}: written for {self.trace_profile.arch}, the machine is "
                               f"{self.board.arch}")
        groups = parse_groups(self.opts.trace_events if self.opts.trace else "all")
        if self.opts.trace and self.opts.trace != "-":  # "-": traced, but the caller writes the file
            from emu.trace.output import trace_header

            path = Path(self.opts.trace)
            header = trace_header(self.trace_profile, len(self.harts), self.cpu.trace.syscall_abi)
            try:  # the file streams as the run goes: a killed run still leaves its events
                self.trace_log = EventLog(groups, path=path, header=header)
            except OSError as err:
                raise EmuError(f"cannot write trace {path}: {err.strerror}") from None
        else:
            self.trace_log = EventLog(groups)
        self.tracer = Tracer(self, self.trace_log, self.trace_profile)
        self.scheduler.on_hart_state = self.tracer.on_hart
        self.scheduler.after_switch_in = self.tracer.on_switch_in

    def _make_virtio_devices(self) -> dict[str, "VirtioMmio"]:
        """--drive and --net devices, in virtio slots from the top down as QEMU fills them."""
        if not self.opts.drives and (self.opts.net is None or self.opts.nic != "virtio"):
            return {}
        from emu.devices.virtio import make_virtio, parse_drive, parse_net

        wanted = [("blk", parse_drive(d)) for d in self.opts.drives]
        if self.opts.net is not None and self.opts.nic == "virtio":
            wanted.append(("net", parse_net(self.opts.net)))
        slots = sorted((r for r in self.board.regions if r.kind == "virtio_mmio"), key=lambda r: -r.base)
        if len(wanted) > len(slots):
            raise EmuError(f"{len(wanted)} virtio devices asked for, the board has {len(slots)} slots")
        devices: dict[str, "VirtioMmio"] = {}
        try:
            for (kind, options), region in zip(wanted, slots):
                if kind == "net":
                    options["backend"] = self.net_backend(options, region.name)
                irq = IrqLine(region.irq or 0, self.plic.set_level)
                devices[region.name] = make_virtio(kind, options, self.dma, irq, self.opts.virtio_legacy)
        except EmuError:
            for dev in devices.values():
                dev.close()
            raise
        return devices

    def _make_pci(self) -> "PciHost | None":
        """--nic e1000|e1000e: the PCI host bridge with the NIC in slot 1, as QEMU places it."""
        if self.opts.net is None or self.opts.nic == "virtio":
            return None
        from emu.devices.e1000 import make_e1000
        from emu.devices.pci_host import PciHost, intx_irq
        from emu.devices.virtio import parse_net

        host = PciHost(self.board.region("pcie-mmio").base)
        backend = self.net_backend(parse_net(self.opts.net), self.opts.nic)
        host.attach(make_e1000(self.opts.nic, self.opts.net, self.dma,
                               IrqLine(intx_irq(1, 1), self.plic.set_level), backend), 1)
        return host

    def _make_device(self, kind: str) -> object | None:
        return {
            "uart16550": self.uart,
            "plic": self.plic,
            "aclint": self.aclint,
            "test_finisher": TestFinisher(self.request_exit),
            "virtio_mmio": VirtioMmioEmpty(),
            "empty": _Empty(),
        }.get(kind)

    def _load(self, initrd: bytes | None) -> None:
        ram = self.board.ram
        probe_dtb = build_fdt(self.board)
        layout = plan_layout(ram.base, ram.size, self.kernel.start, self.kernel.end,
                             None if initrd is None else len(initrd), len(probe_dtb) + 4096)
        self.board.initrd = layout.initrd
        dtb = build_fdt(self.board)
        for addr, data in self.kernel.segments:
            self.cpu.write_phys(addr, data)
        # kernel.zero_fill (.bss) needs no writing: guest RAM is a fresh zeroed mapping
        if initrd is not None and layout.initrd:
            self.cpu.write_phys(layout.initrd[0], initrd)
        self.cpu.write_phys(layout.dtb, dtb)
        self.dtb_addr = layout.dtb
        boot = self.harts[0]
        boot.state = HsmState.START_PENDING
        boot.start = (self.kernel.entry, 0, layout.dtb)
        self.cpu.switch_in(boot)  # apply the entry registers now, so a debugger sees them
        self.cpu.switch_out(boot)
        self.cpu.current = None

    # -- running -------------------------------------------------------------------
    def run(self, until: "Callable[[Machine], bool] | None" = None) -> RunResult:
        """Run until the guest ends the machine, or until `until(machine)` holds.

        `until` is checked between rounds (e.g. "the console shows the prompt"); the run
        then returns with reason "paused" and the machine can be run again, in this
        process or in a fork (`emu test` snapshots a booted machine that way).
        """
        self._host_start = self._host_origin = time.monotonic()
        self.pause_when = until
        self.paused = False
        self.signals = SignalGuard(enabled=self.opts.handle_signals)
        # The guard stays until the trace is written: a second SIGTERM cannot cut it short.
        with self.signals:
            try:
                with self.console:
                    try:
                        self.scheduler.run(self)
                    except ReplayDiverged as err:
                        self._report(str(err))
                        self.request_exit(err.exit_code, "replay diverged")
                    self._finish_recording()
            finally:  # on every way out, a host-side exception included, keep what was recorded
                if not self.paused:
                    self._finish_trace()
                if self.recorder is not None:
                    self.recorder.close()
            if self.paused:
                return RunResult(-1, "paused", self.stats())
            for dev in self.virtio.values():
                dev.close()
            if self.pci is not None:
                self.pci.close()
            code = self.exit_code if self.exit_code is not None else EXIT_GUEST_HANG
            return RunResult(code, self.exit_reason, self.stats())

    def _mmio_stats(self) -> dict[str, int]:
        counts = dict(self.mmio_counts)
        if self._uart_fast is not None:
            counts["uart0"] = counts.get("uart0", 0) + self._uart_fast.accesses
        return counts

    def _finish_trace(self) -> None:
        if self.trace_log is not None and self.opts.trace and self.opts.trace != "-":
            from emu.trace.output import write_trace

            write_trace(Path(self.opts.trace), self.trace_log, self.trace_profile, len(self.harts), self.stats(),
                        self.cpu.trace.syscall_abi)
            self.trace_log.close()

    def stats(self) -> dict[str, object]:
        per_hart = {h.id: {**h.stats, "rdtime": h.time_poll.reads,
                           "instructions_est": (h.ran_bytes - h.time_poll.skipped_bytes) // BYTES_PER_INSN}
                    for h in self.harts}
        executed = self.scheduler.executed_bytes - self.clock.native.skipped_bytes  # time skipped, not run
        return {
            "vtime_s": self.clock.seconds(),
            "mips": self.clock.mips,
            "code_bytes": executed,
            "instructions_est": executed // BYTES_PER_INSN,
            "rounds": self.scheduler.rounds,
            "switches": self.scheduler.switches,
            "wfi_parks": self.scheduler.parks,
            "spin_yields": sum(h.stats.get("spin_yields", 0) for h in self.harts),
            "spin_skipped_instructions": self.scheduler.spin_skipped_bytes // BYTES_PER_INSN,
            "idle_skipped_ticks": self.clock.idle_skipped,
            "rdtime_skipped_ticks": self.clock.native.skipped_bytes // self.clock.bytes_per_tick,
            "native_traps": {f"trap{c}": n for c, n in self.cpu.engine.native_counts().items()},
            "sbi": dict(self.sbi.calls) if self.sbi is not None else {},
            "mmio": self._mmio_stats(),
            "harts": per_hart,
        }

    def host_wants_out(self) -> bool:
        """A host signal arrived or --timeout has passed: what ends a run even while a debugger
        holds it halted (the stub asks between its waits)."""
        return self.signals.received is not None or self._timed_out(time.monotonic())

    def _timed_out(self, now: float) -> bool:
        return self.opts.timeout is not None and now - self._host_start >= self.opts.timeout

    def request_exit(self, code: int, reason: str) -> None:
        if self.exit_code is None:
            self.exit_code = code
            self.exit_reason = reason
        if self.cpu.current is not None:
            self.cpu.stop("exit")

    def poll(self, block: bool) -> None:
        """Between rounds: console I/O, --timeout, --realtime pacing, panic grace, GDB, signals."""
        self.drain_uart()
        if self.trace_log is not None and self.console.out:
            self.trace_log.sync()  # the trace on disk covers whatever the console has shown
        self.console.flush()
        if self.gdb is not None:
            self.gdb.poll()
            if self.exit_code is not None:
                return
        if self.pause_when is not None and self.pause_when(self):
            self.paused = True
            return
        if self.signals.received is not None:
            import signal

            name = signal.Signals(self.signals.received).name
            self._report(f"{name} received: stopping")
            self.request_exit(signal_exit_code(self.signals.received), f"signal {name}")
            return
        now = time.monotonic()
        if self.trace_log is not None:
            self.trace_log.tick(now)
        if self._timed_out(now):
            self._report(f"timeout after {self.opts.timeout:g} s")
            self.request_exit(EXIT_TIMEOUT, "timeout")
            return
        if self._panic_at is not None and self.clock.ticks - self._panic_at > PANIC_GRACE_TICKS:
            self._report("guest panic")
            self.request_exit(EXIT_GUEST_PANIC, "guest panic")
            return
        wait = 0.0
        if block:
            wait = 0.05
            if self.opts.timeout is not None:
                wait = max(0.0, min(wait, self.opts.timeout - (now - self._host_start)))
        elif self.opts.realtime:
            ahead = self.clock.seconds() - (now - self._host_origin)
            if ahead > 0:
                wait = min(ahead, 0.05)
            elif ahead < -REALTIME_SLACK:  # emulation fell behind: do not race to catch up
                self._host_origin = now - self.clock.seconds() - REALTIME_SLACK
        if self.replayer is not None:
            self._replay_poll()
            return
        if self.console.eof:
            if wait:
                time.sleep(wait)
        elif wait or now - self._input_polled >= INPUT_POLL_S or not self._stdin_tty:
            # a terminal is looked at once a millisecond (a round is ~20 us of host time: a
            # select each is wasted); pipes and files every round, so their input arrives at
            # the same rounds whatever the host's speed
            self._input_polled = now
            got = b"" if self.input_held else self.console.read_input(wait)
            self.pending_input += got
            if self.console.eof and self.recorder is not None:
                self.recorder.eof(self.position())
            if self.console.quit_requested:
                self.request_exit(0, "quit (Ctrl-A x)")
                return
        self._poll_nics()
        if self.pending_input and self.uart.can_accept():
            chunk = bytes(self.pending_input[:UART_FIFO])
            del self.pending_input[:UART_FIFO]
            self.uart.push_input(chunk)
            if self.recorder is not None:
                self.recorder.input(self.position(), chunk)

    def _poll_nics(self) -> None:
        """Between rounds: frames the host has for the guest (virtio-net, the PCI NIC)."""
        for dev in self.virtio.values():
            dev.poll()
        if self.pci is not None:
            self.pci.poll()

    @property
    def halted(self) -> bool:
        return self.gdb is not None and self.gdb.halted

    def step_hart(self, hart: Hart, others: bool = False) -> None:
        """Debugger single step: one instruction of `hart` (and of the others if asked)."""
        self.loosen_replay("a debugger single step ran outside the rounds")
        for h in [hart] + ([o for o in self.harts if o is not hart] if others else []):
            if h.state not in (HsmState.STARTED, HsmState.START_PENDING) or (h.parked and h is not hart):
                continue
            self.cpu.switch_in(h)
            self.cpu.step(h)
            self.cpu.switch_out(h)
            self.cpu.current = None

    def steps_first(self, hart: Hart) -> bool:
        """Does a resume first execute `hart`'s instruction at its stop with hooks quiet
        (it stopped at an instruction that is still hooked - GDB removes its breakpoint
        to step over it - and it is among the harts resumed)?  When nothing is hooked
        there any more the quieting is dropped: the hart runs on in the rounds."""
        quiet = self.cpu._suppress
        if quiet is None or quiet[0] is not hart or (self.run_only is not None and hart.id not in self.run_only):
            return False
        if self.cpu.hooked(quiet[1]):
            return True
        self.cpu._suppress = None
        return False

    def prepare_resume(self, hart: Hart) -> None:
        """Before continuing from a stop at a hooked instruction: execute it, hooks quiet."""
        if self.steps_first(hart):
            self.step_hart(hart)

    def attach_console(self, stdin: BinaryIO | int | None, stdout: BinaryIO | int | None,
                       capture: bool = True) -> None:
        """New host-side console ends (e.g. in a forked child); the guest keeps its UART state."""
        self.console = Console(stdin, stdout, capture)
        self.console.before_flush = self.drain_uart
        self.pending_input.clear()

    def type_input(self, data: bytes) -> None:
        """Queue bytes for the UART as if typed (one byte per round once the guest drives it)."""
        self.pending_input += data

    def idle_wait(self, ticks: int) -> int:
        """Every hart waits for a timer `ticks` away: how many ticks may the clock skip?

        All of them, at once, unless the console is an interactive terminal or the run is
        --realtime: then idle time follows the host clock (an idle shell burns no host CPU).
        Runs from pipes and files stay instant and deterministic; on replay the recorded
        skips are taken.
        """
        if self.replayer is not None and self.replayer.loose:
            take = self._idle_loose(ticks)
        elif self.replayer is not None and self._replay_idle:
            take = self.replayer.idle(self.position())
            if take is None:
                raise ReplayDiverged(f"replay diverged: every hart waits at {self.position().describe()}, "
                                     "where the recording has no idle wait")
        elif self.opts.realtime or self._interactive:
            take = self._idle_realtime(ticks)
            if self.recorder is not None:
                self.recorder.idle(self.position(), take)
        else:
            return self._idle_after_eof(ticks)
        return take if self._interactive else self._idle_after_eof(take)

    def _idle_realtime(self, ticks: int) -> int:
        """Idle time passes in real time, and the virtual clock never leads the host clock:
        a guest whose clock trails (it computed slower than --mips) skips at once, as QEMU's
        clock would already be there, up to REALTIME_LAG_MAX behind (a long stop, e.g. a
        debugger's, is not fast-forwarded); one that leads waits, at most 0.2 s per call
        (0.02 s with a network), and console input ends the wait early.  Skipping the whole
        wait and letting --realtime's pacing hold the guest back instead left the clock up to
        the idle deadline ahead (zCore: tens of seconds) and the guest crawling at one round
        per pacing step, console input included, until the host caught up."""
        now = time.monotonic()
        lag = now - self._host_origin - self.clock.seconds()  # s the clock trails the host
        if lag > REALTIME_LAG_MAX:
            self._host_origin = now - self.clock.seconds() - REALTIME_LAG_MAX
            lag = REALTIME_LAG_MAX
        if lag * TIMEBASE_HZ < ticks:
            wait = min(ticks / TIMEBASE_HZ - max(lag, 0.0), 0.02 if self._has_network else 0.2)
            if self.console.eof:
                time.sleep(wait)
            else:
                self.pending_input += self.console.read_input(wait)
                if self.console.quit_requested:
                    self.request_exit(0, "quit (Ctrl-A x)")
            lag = time.monotonic() - self._host_origin - self.clock.seconds()
        return max(0, min(ticks, int(lag * TIMEBASE_HZ)))

    def _idle_after_eof(self, ticks: int) -> int:
        """Scripted runs end: piped input is over, all of it read, and the guest idles on.

        Only for input that was not a terminal (a terminal keeps today's behaviour) and with
        no network that could still bring work.  The idle skip stops exactly when the grace
        runs out, so the exit time is deterministic.
        """
        if (self.idle_eof.grace is None or not self._input_ended or self.pending_input or self.uart.rx
                or self._input_was_tty or self._has_network):
            self.idle_eof.activity()
            return ticks
        take, done = self.idle_eof.step(ticks)
        if done:
            self.console.flush()
            out = self.opts.report or sys.stderr
            out.write(f"emu: console input ended and the guest stayed idle for {self.idle_eof.grace:g} s "
                      f"of virtual time: exiting ({EXIT_IDLE_EOF}; --on-idle-eof wait keeps it running)\n")
            out.flush()
            self.request_exit(EXIT_IDLE_EOF, "idle after end of input")
        return take

    @property
    def _stdin_tty(self) -> bool:
        """Console input is (or was, before it ended) a terminal; asked once per console."""
        if self._tty_of is not self.console:
            fd = self.console.in_fd
            self._tty_of, self._tty = self.console, fd is not None and os.isatty(fd)
        return self._tty

    @property
    def _input_was_tty(self) -> bool:
        return self._replay_interactive if self.replayer is not None else self._stdin_tty

    def input_possible(self) -> bool:
        """Can anything from outside still wake a waiting guest (console, a network)?"""
        if self.replayer is not None:
            return self.replayer.pending
        return not self.console.eof or bool(self.pending_input) or self._has_network

    @property
    def _has_network(self) -> bool:
        """A NIC with a link (user or TAP): frames can still arrive and bring work."""
        return self.opts.net is not None and not self.opts.net.startswith("none")

    def report_hang(self) -> None:
        self._report("guest hang: every hart is stopped or waits with no timer armed and no input can arrive")
        self.request_exit(EXIT_GUEST_HANG, "hang")

    def _report(self, what: str) -> None:
        """`what` happened: one report on stderr with every hart's state and pc (and its
        function), the last events and the system calls still in flight."""
        from emu.reports import report

        report(self, what)

    # -- CpuHost ---------------------------------------------------------------------
    def sbi_call(self, hart: Hart) -> None:
        a7 = self.cpu.rreg(UC_A7)
        self.events.append(("sbi", hart.id, self.clock.last_read, a7))
        if self.tracer:
            self.tracer.on_sbi(hart, a7, self.cpu.xreg(16))
        self.sbi.call(hart)

    def on_trap(self, hart: Hart, cause: int, epc: int, tval: int, priv: int) -> None:
        hart.count(f"trap{cause}")
        if self.tracer:
            self.tracer.on_trap(hart, cause, epc, tval, priv)
        self.events.append(("trap", hart.id, self.clock.last_read, cause, epc, tval, priv))
        if cause == csr.CAUSE_SUPERVISOR_ECALL or self.cpu.trace.is_syscall(cause):
            return  # system calls are not faults
        key = (cause, epc, tval)
        if key == hart.last_fault:
            hart.fault_repeats += 1
            if hart.fault_repeats >= FAULT_LOOP_LIMIT:
                self._report(f"fault loop: cause {cause} at {epc:#x} (tval {tval:#x}) {FAULT_LOOP_LIMIT} times on hart {hart.id}")
                self.request_exit(EXIT_FAULT_LOOP, "fault loop")
        else:
            hart.last_fault = key
            hart.fault_repeats = 0

    def on_fault_loop(self, hart: Hart, cause: int, pc: int, detail: int) -> None:
        """The CPU took the same fault more times in a row than the engine's loop limit."""
        self._report(f"fault loop: vector {cause} at {pc:#x} ({detail:#x}) over and over on hart {hart.id}")
        self.request_exit(EXIT_FAULT_LOOP, "fault loop")

    def on_host_fault(self, hart: Hart, message: str) -> None:
        self._report(f"host fault on hart {hart.id}: {message}")
        self.request_exit(EXIT_HOST_FAULT, "host fault")

    def console_write(self, data: bytes) -> None:
        self.drain_uart()  # what the UART sent natively goes first
        self._console_out(data)

    def drain_uart(self) -> None:
        """Move what the guest wrote to the UART's native transmit buffer to the console
        (called before any other console output, between rounds and before a flush)."""
        fast = self._uart_fast
        if fast is not None and fast.tx_len:
            n, fast.tx_len = fast.tx_len, 0
            self._console_out(ctypes.string_at(ctypes.addressof(fast.tx), n))

    def _console_out(self, data: bytes) -> None:
        shown = data if self.output_gate is None else self.output_gate.console(data)
        if shown:
            self.console.write(shown)
        self.idle_eof.activity()
        self._watch_panic(data)

    # -- devices ---------------------------------------------------------------------------
    def _on_plic_output(self, context: int, level: bool) -> None:
        hart_id, is_s = divmod(context, 2)
        if not is_s or hart_id >= len(self.harts):
            return  # M-mode external interrupts: no M-mode software runs here
        hart = self.harts[hart_id]
        hart.seip = level
        if hart is self.cpu.current:
            self.cpu.update_mip(csr.MIP_SEIP if level else 0, 0 if level else csr.MIP_SEIP)

    def _watch_panic(self, data: bytes) -> None:
        if self._panic_at is not None:
            return
        tail = self._tail + data
        if any(p in tail for p in PANIC_PATTERNS):
            self._panic_at = self.clock.ticks
        self._tail = tail[-64:]


class _Empty:
    """Reserved MMIO: reads 0, writes ignored."""

    def read(self, offset: int, size: int) -> int:
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        pass
