"""GDB stub: harts are threads, all-stop, breakpoints as code hooks, watchpoints as memory hooks.

The stub lives in the machine's thread: between scheduling rounds the machine polls it
(new connection, Ctrl-C); when a breakpoint, watchpoint, Ctrl-C or a `break-on` event
halts the machine, every hart is already at an instruction boundary (only one hart runs
at a time) and the machine serves GDB packets until GDB resumes it.  Thread ids are
hart id + 1.  Breakpoints are Unicorn code hooks on the address (guest memory is never
patched), so they work on every hart and in code not yet translated.
"""
from __future__ import annotations

import select
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any


from emu.debug.rsp import PacketReader, frame
from emu.errors import EmuError
from emu.smp.hart import HsmState

if TYPE_CHECKING:
    from emu.debug.position import Position
    from emu.debug.reverse import ReverseDebugger
    from emu.machine import Machine
    from emu.smp.hart import Hart

SIGTRAP, SIGINT = 5, 2
WATCH_KINDS = ("watch:", "rwatch:", "awatch:")  # stop reasons of a watchpoint hit


def parse_address(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        raise EmuError(f"--gdb {spec!r}: use [HOST]:PORT, e.g. :1234") from None

# While halted, the stub wakes this often to let a signal (SIGTERM, Ctrl-C) or --timeout end the
# run: Python retries a select() a signal interrupted (PEP 475), so without a timeout a halted
# machine whose debugger had gone away ignored SIGTERM.
HALTED_WAKE_S = 0.25


@dataclass
class StopInfo:
    hart: int
    signal: int = SIGTRAP
    extra: str = ""  # e.g. "watch:80001000;" or "swbreak:;"


@dataclass
class DebugState:
    breakpoints: dict[int, int] = field(default_factory=dict)  # addr -> hook
    watchpoints: dict[tuple[int, int, int], list[int]] = field(default_factory=dict)  # (type, addr, len) -> hooks
    break_on: set[str] = field(default_factory=set)
    step_others: bool = False
    phys: bool = False


class GdbStub:
    def __init__(self, machine: "Machine", address: str, wait: bool) -> None:
        self.m = machine
        self.cpu = machine.cpu
        host, port = parse_address(address)
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.listener.bind((host, port))
        except OSError as err:
            self.listener.close()
            raise EmuError(f"--gdb {address}: cannot listen on {host}:{port} ({err.strerror})") from None
        self.listener.listen(1)
        self.listener.setblocking(False)
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.reader = PacketReader()
        self.no_ack = False
        self.state = DebugState()
        self.stop: StopInfo | None = StopInfo(0, SIGTRAP) if wait else None
        self.wait_for_client = wait
        self.g_thread = 1
        self.last_event: tuple | None = None
        self._pending_report = False
        self.c_thread = 0  # Hc: the thread a reverse step applies to (0: the stopped one)
        self.reverse: "ReverseDebugger | None" = None
        if machine.opts.snapshot_every is not None:
            from emu.debug.reverse import ReverseDebugger

            try:
                self.reverse = ReverseDebugger(self, machine.opts.snapshot_every, machine.opts.snapshot_keep)
            except EmuError:
                self.listener.close()
                raise

    # -- called by the machine -------------------------------------------------------
    @property
    def halted(self) -> bool:
        return self.stop is not None

    def halt(self, info: StopInfo) -> None:
        """Stop the whole machine (from a hook on the running hart)."""
        if self.stop is None:
            self.stop = info
            self._pending_report = True
            if self.reverse is not None:
                # a watchpoint stops at the next instruction boundary (the engine's exact
                # stops): the position is a plain one, the pc after the accessing instruction
                self.reverse.note_halt(self.cpu.current)
            if self.cpu.current is not None:
                self.m.loosen_replay("the debugger cut a scheduling round")
                self.cpu.stop("debug")

    def poll(self) -> None:
        """Between rounds: accept a client, notice Ctrl-C, serve while halted."""
        self._accept(block=False)
        if self.reverse is not None and self.stop is None:
            self.reverse.poll()  # periodic snapshots; a re-execution's end
        if self.stop is not None and self._pending_report:
            self._pending_report = False
            self.report_stop()
        if self.conn is not None and self.stop is None and not self._replaying:
            ready, _, _ = select.select([self.conn], [], [], 0)
            if ready:
                self._receive(self.conn.recv(4096))
        while self.stop is not None and self.m.exit_code is None:
            if self.m.host_wants_out():
                return  # a signal or --timeout: the machine ends the run, halted or not
            if self._pending_report:  # e.g. a breakpoint hit while stepping off another one
                self._pending_report = False
                self.report_stop()
                continue
            if self.conn is None:
                if not self.wait_for_client:
                    self.stop = None  # nobody to report to: run on
                    return
                ready, _, _ = select.select([self.listener], [], [], HALTED_WAKE_S)
                if ready:
                    self._accept(block=True)
                continue
            ready, _, _ = select.select([self.conn, self.listener], [], [], HALTED_WAKE_S)
            if self.listener in ready:
                self._accept(block=False)  # refuses a second client
            if self.conn not in ready:
                continue
            try:
                data = self.conn.recv(4096)
            except OSError:
                data = b""
            if not data:
                self._drop()
                continue
            self._receive(data)

    @property
    def _replaying(self) -> bool:
        """A reverse request is being carried out by re-execution: GDB waits for its answer."""
        return self.reverse is not None and self.reverse.plan is not None

    def on_trace_event(self, hart: "Hart", kind: str, fields: dict[str, Any]) -> None:
        """`monitor break-on EVENT`: stop when a matching trace event happens."""
        bo = self.state.break_on
        if not bo or self._replaying:
            return
        names = {kind}
        if kind == "stage":
            names.add(str(fields.get("stage")))
        if kind == "syscall":
            names.add(f"syscall {fields.get('num')}")
        if names & bo:
            self.last_event = (hart.id, kind, fields)
            pc = self.cpu.pc() if "pc" not in fields else fields["pc"]
            if kind == "stage" and "pc" in fields:
                self.cpu.set_pc(pc)  # stop before the stage's first instruction
                self.cpu.suppress_hooks_at(hart, pc)
            self.halt(StopInfo(hart.id, SIGTRAP))

    # -- connection ------------------------------------------------------------------
    def _accept(self, block: bool) -> None:
        while True:
            if not block:
                ready, _, _ = select.select([self.listener], [], [], 0)
                if not ready:
                    return
            self.listener.setblocking(True)
            try:
                conn, _ = self.listener.accept()
            finally:
                self.listener.setblocking(False)
            if self.conn is not None:  # one client at a time
                try:
                    conn.sendall(b"$E01#a6")
                finally:
                    conn.close()
                if block:
                    return
                continue
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.conn = conn
            self.reader = PacketReader()
            self.no_ack = False
            if self.stop is None:
                self.stop = StopInfo(0, SIGTRAP)  # a new client finds the machine stopped
                self.wait_for_client = True
            return

    def _drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self._clear_all()
        self.m.run_only = None
        self.stop = None  # detached: the guest runs on

    def _send(self, payload: str | bytes) -> None:
        if self.conn is None:
            return
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            self.conn.sendall(frame(data))
        except OSError:
            self._drop()

    def _receive(self, data: bytes) -> None:
        if not data:
            self._drop()
            return
        for kind, body in self.reader.feed(data):
            if kind == "interrupt":
                if self.stop is None:
                    self.stop = StopInfo(self._running_hart(), SIGINT)
                    if self.reverse is not None:
                        self.reverse.note_halt(None)
                    self._send(self._stop_reply())
            elif kind == "bad":
                if not self.no_ack and self.conn:
                    self.conn.sendall(b"-")
            elif kind == "packet":
                if not self.no_ack and self.conn:
                    self.conn.sendall(b"+")
                reply = self._handle(body.decode("latin-1"))
                if reply is not None:
                    self._send(reply)

    def _running_hart(self) -> int:
        started = [h.id for h in self.m.harts if h.state != HsmState.STOPPED]
        return started[0] if started else 0

    # -- packets ---------------------------------------------------------------------
    def _handle(self, pkt: str) -> str | None:  # noqa: PLR0911, PLR0912 - a protocol dispatcher
        try:
            if pkt.startswith("qSupported"):
                reverse = ";ReverseContinue+;ReverseStep+" if self.reverse is not None else ""
                return "PacketSize=4000;qXfer:features:read+;QStartNoAckMode+;swbreak+;vContSupported+" + reverse
            if pkt == "QStartNoAckMode":
                self._send("OK")
                self.no_ack = True
                return None
            if pkt == "?":
                return self._stop_reply()
            if pkt.startswith("qXfer:features:read:"):
                return self._xfer(pkt)
            if pkt in ("qfThreadInfo",):
                if self.reverse is not None:
                    self.reverse.origin = None  # GDB's command has stopped for good
                return "m" + ",".join(f"{h.id + 1:x}" for h in self._threads())
            if pkt == "qsThreadInfo":
                return "l"
            if pkt == "qC":
                return f"QC{self._stopped_thread():x}"
            if pkt.startswith("qThreadExtraInfo,"):
                return self._extra_info(int(pkt.split(",")[1], 16)).encode().hex()
            if pkt == "qAttached":
                return "1"
            if pkt.startswith("qRcmd,"):
                out = self._monitor(bytes.fromhex(pkt[6:]).decode(errors="replace"))
                if out is None:
                    return None  # answered by a restored copy (monitor goto)
                return (out + "\n").encode().hex() if out else "OK"
            if pkt.startswith("H"):
                tid = int(pkt[2:], 16) if pkt[2:] not in ("", "-1") else 0
                if pkt[1] == "g" and tid > 0:
                    if tid - 1 >= len(self.m.harts):
                        return "E01"
                    self.g_thread = tid
                if pkt[1] == "c":
                    self.c_thread = tid if 0 < tid <= len(self.m.harts) else 0
                return "OK"
            if pkt.startswith("T"):
                tid = int(pkt[1:], 16)
                return "OK" if 0 < tid <= len(self.m.harts) and self._hart(tid).state != HsmState.STOPPED else "E01"
            if pkt == "g":
                return self._read_gpr_block()
            if pkt.startswith("G"):
                return self._write_gpr_block(pkt[1:])
            if pkt.startswith("p"):
                return self._read_reg(int(pkt[1:], 16))
            if pkt.startswith("P"):
                num, val = pkt[1:].split("=")
                return self._write_reg(int(num, 16), val)
            if pkt.startswith("m"):
                addr, length = (int(x, 16) for x in pkt[1:].split(","))
                data = self._read_mem(addr, min(length, 0x4000))
                return "E14" if data is None else data.hex()
            if pkt.startswith("M"):
                head, data = pkt[1:].split(":")
                addr, _length = (int(x, 16) for x in head.split(","))
                return "OK" if self._write_mem(addr, bytes.fromhex(data)) else "E14"
            if pkt.startswith("X"):
                head, _, rest = pkt[1:].partition(":")
                addr, _length = (int(x, 16) for x in head.split(","))
                return "OK" if self._write_mem(addr, rest.encode("latin-1")) else "E14"
            if pkt[:2] in ("Z0", "z0", "Z1", "z1", "Z2", "z2", "Z3", "z3", "Z4", "z4"):
                return self._point(pkt)
            if pkt == "vCont?":
                return "vCont;c;C;s;S"
            if pkt.startswith("vCont;"):
                return self._vcont(pkt[6:])
            if pkt in ("c",) or pkt.startswith("c"):
                self.m.run_only = None
                return self._resume(None)
            if pkt.startswith("s"):
                return self._step_and_report(self.c_thread or self._stopped_thread(),
                                             others=not self.c_thread and self.state.step_others)
            if pkt in ("bc", "bs"):
                return self._reverse(pkt)
            if pkt.startswith("D"):
                self._send("OK")
                self._drop()
                return None
            if pkt == "k":
                self.m.request_exit(0, "killed by gdb")
                self.stop = None
                return None
            if pkt.startswith("vKill"):
                self.m.request_exit(0, "killed by gdb")
                self._send("OK")
                self.stop = None
                return None
            return ""  # unknown packet: empty reply, as the protocol says
        except (ValueError, IndexError, KeyError):
            return "E01"

    def _stopped_thread(self) -> int:
        return (self.stop.hart if self.stop else 0) + 1

    def _stop_reply(self) -> str:
        info = self.stop or StopInfo(0)
        self.g_thread = info.hart + 1  # as gdbserver: the event thread becomes the current one
        return f"T{info.signal:02x}{info.extra}thread:{info.hart + 1:x};"

    def _threads(self) -> list["Hart"]:
        return [h for h in self.m.harts if h.state != HsmState.STOPPED or h.start is not None]

    def _hart(self, tid: int) -> "Hart":
        return self.m.harts[tid - 1]

    def _extra_info(self, tid: int) -> str:
        if not 0 < tid <= len(self.m.harts):
            return "no such hart"
        hart = self._hart(tid)
        with self.cpu.inspect(hart):
            mode = self.cpu.gdb.mode_name()
        state = "wfi" if hart.parked else hart.state.name.lower()
        return f"hart{hart.id} {mode}, {state}"

    def _xfer(self, pkt: str) -> str:
        annex, _, span = pkt[len("qXfer:features:read:"):].partition(":")
        if annex != "target.xml":
            return "E00"
        off, length = (int(x, 16) for x in span.split(","))
        xml = self.cpu.gdb.target_xml()
        chunk = xml[off:off + length]
        return ("l" if off + length >= len(xml) else "m") + chunk

    # -- registers (the CPU adapter's GDB view: cpu.gdb) -------------------------------
    def _read_reg(self, num: int) -> str:
        gdb = self.cpu.gdb
        with self.cpu.inspect(self._hart(self.g_thread)):
            value = gdb.read(num)
        if value is None:
            return "E45"
        return value.to_bytes(gdb.reg_size(num), "little").hex()

    def _write_reg(self, num: int, hexval: str) -> str:
        value = int.from_bytes(bytes.fromhex(hexval), "little")
        with self.cpu.inspect(self._hart(self.g_thread), write=True):
            return "OK" if self.cpu.gdb.write(num, value) else "E45"

    def _read_gpr_block(self) -> str:
        with self.cpu.inspect(self._hart(self.g_thread)):
            return self.cpu.gdb.read_block().hex()

    def _write_gpr_block(self, data: str) -> str:
        with self.cpu.inspect(self._hart(self.g_thread), write=True):
            self.cpu.gdb.write_block(bytes.fromhex(data))
        return "OK"

    # -- memory ----------------------------------------------------------------------------
    def _satp(self) -> int:
        """The page-table root GDB's memory accesses go through (0: physical)."""
        if self.state.phys:
            return 0
        with self.cpu.inspect(self._hart(self.g_thread)):
            return self.cpu.gdb.translation()

    def _read_mem(self, addr: int, length: int) -> bytes | None:
        return self.cpu.read_virt(addr, length, self._satp())

    def _write_mem(self, addr: int, data: bytes) -> bool:
        satp = self._satp()
        for i, byte in enumerate(data):
            paddr = self.cpu.virt_to_phys(addr + i, satp)
            if paddr is None or self.cpu.read_phys(paddr, 1) is None:
                return False
            self.cpu.uc.mem_write(paddr, bytes((byte,)))  # through Unicorn: stale code is retranslated
        return True

    # -- break and watch points --------------------------------------------------------------
    def _point(self, pkt: str) -> str:
        kind = int(pkt[1])
        addr_s, len_s = pkt[3:].split(",")[:2]
        addr, length = int(addr_s, 16), int(len_s.split(";")[0], 16)
        insert = pkt[0] == "Z"
        st = self.state
        if kind in (0, 1):
            if insert and addr not in st.breakpoints:
                st.breakpoints[addr] = self.cpu.add_code_hook(addr, self._on_breakpoint)
            elif not insert and addr in st.breakpoints:
                self.cpu.remove_hook(st.breakpoints.pop(addr))
                self.cpu.uc.ctl_remove_cache(addr, addr + 4)
            return "OK"
        key = (kind, addr, length)
        if insert and key not in st.watchpoints:
            ranges = self._physical(addr, length)
            if ranges is None:
                return "E14"  # not mapped now: GDB says it cannot insert the watchpoint
            st.watchpoints[key] = [self.cpu.add_mem_watch(paddr, size, kind, self._watch_cb(kind, vaddr - paddr))
                                   for vaddr, paddr, size in ranges]
        elif not insert and key in st.watchpoints:
            for hook in st.watchpoints.pop(key):
                self.cpu.remove_hook(hook)
        return "OK"

    def _physical(self, addr: int, length: int) -> list[tuple[int, int, int]] | None:
        """GDB's watched range as (vaddr, paddr, size) pieces, a page at most each: Unicorn
        matches memory hooks against physical addresses (through the current thread's page
        tables, as GDB's memory accesses; `monitor phys on`: physical already)."""
        satp, out = self._satp(), []
        while length > 0:
            size = min(length, 4096 - (addr & 0xFFF))
            paddr = self.cpu.virt_to_phys(addr, satp)
            if paddr is None:
                return None
            out.append((addr, paddr, size))
            addr, length = addr + size, length - size
        return out

    def _on_breakpoint(self, pc: int) -> None:
        hart = self.cpu.current
        assert hart is not None
        if self._replaying:
            assert self.reverse is not None
            self.reverse.hit(hart, pc, "swbreak:;")
            return
        self.cpu.set_pc(pc)  # stop before the instruction runs
        self.cpu.suppress_hooks_at(hart, pc)
        self.halt(StopInfo(hart.id, SIGTRAP, "swbreak:;"))

    def _watch_cb(self, kind: int, to_virtual: int):  # noqa: ANN202
        """The callback of a watchpoint (its physical address + to_virtual: GDB's)."""
        name = {2: "watch", 3: "rwatch", 4: "awatch"}[kind]

        def on_access(paddr: int, size: int, _value: int) -> None:
            hart = self.cpu.current
            assert hart is not None
            reason = f"{name}:{(paddr + to_virtual) & (1 << 64) - 1:x};"
            if self._replaying:
                assert self.reverse is not None
                self.reverse.hit(hart, self.cpu.pc(), reason)
                return
            if self.reverse is None or not self.reverse.stepping:  # (a step segment re-executes whole)
                self.cpu.keep_before_access(hart, paddr, size, first=self.stop is None)
            self.halt(StopInfo(hart.id, SIGTRAP, reason))
        return on_access

    def _clear_all(self) -> None:
        for addr, hook in self.state.breakpoints.items():
            self.cpu.remove_hook(hook)
            self.cpu.uc.ctl_remove_cache(addr, addr + 4)
        for hooks in self.state.watchpoints.values():
            for hook in hooks:
                self.cpu.remove_hook(hook)
        self.state.breakpoints.clear()
        self.state.watchpoints.clear()
        self.state.break_on.clear()

    # -- execution control -------------------------------------------------------------------
    def _vcont(self, actions: str) -> str | None:
        """`s:T` steps hart T (with a default `c` and `monitor step-others on`, the
        other harts one instruction each; without one - GDB stepping over a breakpoint,
        scheduler locking - they stay put); `c:T` without a default action runs only
        hart T (GDB's software single-step and scheduler locking); a bare `c` runs every
        hart."""
        only: set[int] = set()
        run_all = False
        step: int | None = None
        for action in actions.split(";"):
            op, _, tid = action.partition(":")
            if not op:
                continue
            if op[0] in "sS" and step is None:
                step = int(tid, 16) if tid and tid != "-1" else self._stopped_thread()
            elif op[0] in "cC":
                if tid and tid != "-1":
                    only.add(int(tid, 16) - 1)
                else:
                    run_all = True
        if step is not None:
            return self._step_and_report(step, others=run_all and self.state.step_others)
        self.m.run_only = None if run_all or not only else only
        return self._resume(None)

    def _step_and_report(self, tid: int, others: bool = False) -> str | None:
        """One instruction of hart `tid` (and one of every other hart with `monitor
        step-others on`).  What the step ran into is the stop's reason: a watchpoint that
        its instruction (or another hart's) triggered, or a breakpoint or `break-on` event
        another hart reached; the stepped hart reaching a breakpoint on its next
        instruction is just the end of the step.  (GDB steps over a breakpoint this way:
        a store under the breakpoint to a watched address is a watchpoint hit.)"""
        hart = self._hart(tid)
        rev = self.reverse
        if rev is not None and rev.on_resume("step", hart.id):
            return None  # a restored copy that has answered already
        self.stop = None  # halt() keeps the step's first hit
        if rev is not None:
            rev.stepping = True
        try:
            self.m.step_hart(hart, others=others)
        finally:
            if rev is not None:
                rev.stepping = False
        hit, self._pending_report = self.stop, False  # reported here, not by poll()
        self.cpu.rewind()
        if rev is not None:
            if rev.plan is not None:
                rev.after_step(hart)  # a re-executed step: the plan answers (or goes on elsewhere)
                return None
            rev.stepped(hart)
        if hit is None or hit.hart == hart.id and not hit.extra.startswith(WATCH_KINDS):
            hit = StopInfo(hart.id, SIGTRAP)
        self.stop = hit
        return self._stop_reply()

    def _resume(self, _tid: int | None) -> None:
        stopped = self.stop
        rev = self.reverse
        if rev is not None and stopped is not None:
            return self._resume_reversible(rev, self.m.harts[stopped.hart])
        self.stop = None
        if stopped is not None:
            self.m.prepare_resume(self.m.harts[stopped.hart])
        return None

    def _resume_reversible(self, rev: "ReverseDebugger", hart: "Hart") -> None:
        """A continue from a stop at a hooked instruction first executes that instruction
        outside the rounds (prepare_resume): that step is a segment of its own, so that a
        re-execution can tell it from the rounds after it."""
        if self.m.steps_first(hart):
            if rev.on_resume("step", hart.id):
                return None  # a restored copy that has answered already
            self.stop = None
            rev.stepping = True
            try:
                self.m.prepare_resume(hart)
            finally:
                rev.stepping = False
            if rev.plan is not None:
                rev.after_step(hart)
                return None
            if self.stop is not None:
                return None  # a break/watchpoint on the way (reported by poll)
            rev.stepped(hart)
        if rev.on_resume("continue", hart.id):
            return None
        self.stop = None
        return None

    def report_stop(self) -> None:
        """Tell GDB why the machine stopped (after a continue)."""
        self.cpu.rewind()  # a watchpoint stop where GDB expects it before the access
        if self.reverse is not None:
            if self.reverse.plan is not None:
                self.reverse.reached()  # a re-execution's target: it answers (or goes on elsewhere)
                return
            self.reverse.settle()
        self._send(self._stop_reply())

    # -- reverse execution (emu/debug/reverse.py) -----------------------------------------
    def _reverse(self, pkt: str) -> str | None:
        if self.reverse is None:
            return "E.reverse execution needs emu run --snapshot-every MS"
        hart = self.stop.hart if self.stop else 0
        every = not self.c_thread  # Hc0/-1: GDB resumes every thread (its default)
        if pkt == "bc":
            return self.reverse.reverse_continue(hart, every)
        tid = self.c_thread or self.g_thread  # resuming every thread, GDB steps the one it looks at
        step_over = not every and tid - 1 == hart  # maybe GDB stepping it back over its breakpoint
        return self.reverse.reverse_step(tid - 1, tid - 1, every, step_over)

    def halt_for_plan(self, hart: int) -> None:
        """A re-execution reached its target on `hart` (from the per-instruction hook)."""
        self.halt(StopInfo(hart, SIGTRAP))

    def stopped_by_plan(self, hart: int, extra: str, reply: str, where: "Position") -> None:
        """The machine now stands where a reverse request asked: answer GDB."""
        self.stop = StopInfo(hart, SIGTRAP, extra)
        self._pending_report = False
        if reply == "monitor":
            self._send(f"now at {where.text()} ({where.describe()}); gdb: maint flush register-cache\n".encode().hex())
        else:
            self._send(self._stop_reply())

    def console_note(self, text: str) -> None:
        """A line for GDB's console while it waits for a stop reply (an `O` packet)."""
        self._send("O" + text.encode().hex())

    def point_list(self) -> list[list[int]]:
        """The break- and watchpoints GDB has inserted, as [kind, addr, len]."""
        return [[0, addr, 4] for addr in self.state.breakpoints] + [list(k) for k in self.state.watchpoints]

    def set_points(self, points: list[list[int]]) -> None:
        """Make the inserted break- and watchpoints `points` (a restored copy gets GDB's
        current ones, not those of the time of its snapshot)."""
        want = {tuple(p) for p in points}
        have = {(0, a, 4) for a in self.state.breakpoints} | set(self.state.watchpoints)
        for kind, addr, length in have - want:
            self._point(f"z{kind},{addr:x},{length:x}")
        for kind, addr, length in want - have:
            self._point(f"Z{kind},{addr:x},{length:x}")

    # -- monitor --------------------------------------------------------------------------------
    def _monitor(self, cmd: str) -> str | None:
        words = cmd.split()
        if not words:
            return ("commands: harts, vtime, trace last N, break-on EVENT|clear, phys on|off, step-others on|off, "
                    "when, goto POSITION, snapshot, snapshots")
        if words[0] == "harts":
            return "\n".join(self._extra_info(h.id + 1) + self._where(h) for h in self.m.harts)
        if words[0] == "vtime":
            return f"virtual time {self.m.clock.seconds():.9f} s ({self.m.clock.ticks} ticks)"
        if words[0] == "trace" and len(words) >= 2 and words[1] == "last":
            n = int(words[2]) if len(words) > 2 else 10
            log = self.m.trace_log
            if log is None:
                return "no trace events (run with --trace or --gdb)"
            return "\n".join(f"{t} ns hart{h} {k} {f}" for t, h, k, f in list(log.ring)[-n:])
        if words[0] == "break-on":
            if len(words) < 2:
                return "break-on: " + (", ".join(sorted(self.state.break_on)) or "nothing")
            if words[1] == "clear":
                self.state.break_on.clear()
                return "break-on cleared"
            event = " ".join(words[1:])
            self.state.break_on.add(event)
            return f"will stop on {event}"
        if words[0] in ("when", "goto", "snapshot", "snapshots"):
            return self._monitor_reverse(words)
        if words[0] in ("phys", "step-others") and len(words) == 2 and words[1] in ("on", "off"):
            setattr(self.state, words[0].replace("-", "_"), words[1] == "on")
            return f"{words[0]} {words[1]}"
        return f"unknown monitor command: {cmd}"

    def _monitor_reverse(self, words: list[str]) -> str | None:
        rev = self.reverse
        if rev is None:
            return "reverse execution needs emu run --snapshot-every MS"
        if words[0] == "when":
            return rev.when()
        if words[0] == "snapshot":
            return rev.pin()
        if words[0] == "snapshots":
            return rev.info()
        if len(words) != 2:
            return "goto POSITION (as `monitor when` prints it)"
        try:
            return rev.goto(words[1], self._stopped_thread() - 1)
        except EmuError as err:
            return str(err)

    def _where(self, hart: "Hart") -> str:
        with self.cpu.inspect(hart):
            pc = self.cpu.pc()
        sym = self.m.kernel.symbols.describe(pc)
        return f" pc {pc:#x}" + (f" <{sym}>" if sym else "")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()
