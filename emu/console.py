"""The serial console on the host side: stdin/stdout, raw mode, QEMU's Ctrl-A keys.

Input is polled between rounds (select, no helper thread, so the process can fork).
On a terminal the tty goes to raw mode (a key press must reach the guest before Enter)
and is restored at exit.  Ctrl-A x quits, Ctrl-A Ctrl-A sends a Ctrl-A, Ctrl-A h lists the
keys, as QEMU's `-serial mon:stdio`; there is no monitor, so Ctrl-A c says so instead of
switching.  With `escape=False` (QEMU's plain `-serial stdio`) every byte goes to the guest.
"""
from __future__ import annotations

import os
import select
import termios
import tty
from typing import BinaryIO, Callable, Sequence

CTRL_A = 0x01
ESCAPE_HELP = (b"\r\nC-a h    print this help\r\nC-a x    exit emulator\r\nC-a C-a  sends C-a\r\n"
               b"(emu has no QEMU monitor: C-a c, s, b, t and e do nothing)\r\n")
NO_MONITOR = b"\r\nemu: no QEMU monitor on this console (C-a x exits)\r\n"


class Console:
    def __init__(self, stdin: BinaryIO | int | None, stdout: BinaryIO | int | None, capture: bool = False,
                 copies: Sequence[int] = (), escape: bool = True) -> None:
        self.in_fd = _fd(stdin)
        self.out_fd = _fd(stdout)
        self.copies = list(copies)  # more fds that get the output (QEMU's `-serial file:PATH`)
        self.out = bytearray()
        self.log: bytearray | None = bytearray() if capture else None
        self.eof = self.in_fd is None
        self.quit_requested = False
        self.escape_keys = escape  # Ctrl-A commands (QEMU's mux on mon:stdio)
        self._escape = False
        self._saved_tty: list | None = None
        self.before_flush: Callable[[], None] | None = None  # pulls output buffered elsewhere (the UART's)

    @property
    def interactive(self) -> bool:
        """Input comes from a terminal (a person, or pexpect's pty) that is still open."""
        return not self.eof and self.in_fd is not None and os.isatty(self.in_fd)

    def __enter__(self) -> "Console":
        if self.in_fd is not None and os.isatty(self.in_fd):
            self._saved_tty = termios.tcgetattr(self.in_fd)
            tty.setraw(self.in_fd)
        return self

    def __exit__(self, *exc: object) -> None:
        self.flush()
        if self._saved_tty is not None and self.in_fd is not None:
            termios.tcsetattr(self.in_fd, termios.TCSADRAIN, self._saved_tty)
            self._saved_tty = None

    def write(self, data: bytes) -> None:
        self.out += data
        if self.log is not None:
            self.log += data

    def flush(self) -> None:
        if self.before_flush is not None:
            self.before_flush()
        if self.out:
            for fd in ([] if self.out_fd is None else [self.out_fd]) + self.copies:
                data = bytes(self.out)
                while data:
                    n = os.write(fd, data)
                    data = data[n:]
        self.out.clear()

    def read_input(self, timeout: float) -> bytes:
        """Bytes typed so far (waiting up to `timeout` seconds for the first)."""
        if self.eof or self.in_fd is None:
            return b""
        ready, _, _ = select.select([self.in_fd], [], [], timeout)
        if not ready:
            return b""
        try:
            data = os.read(self.in_fd, 4096)
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return b""
        return self._filter(data)

    def _filter(self, data: bytes) -> bytes:
        if not self.escape_keys:
            return data
        out = bytearray()
        for byte in data:
            if self._escape:
                self._escape = False
                if byte in (ord("x"), ord("X")):
                    self.quit_requested = True
                    break
                if byte == CTRL_A:
                    out.append(CTRL_A)
                elif byte in (ord("h"), ord("?")):
                    self._notice(ESCAPE_HELP)
                elif byte == ord("c"):
                    self._notice(NO_MONITOR)
                continue
            if byte == CTRL_A:
                self._escape = True
                continue
            out.append(byte)
        return bytes(out)

    def _notice(self, text: bytes) -> None:
        """Host-side text on the terminal only (not the guest's output: no log, no copies)."""
        self.flush()
        if self.out_fd is not None:
            os.write(self.out_fd, text)


def _fd(stream: BinaryIO | int | None) -> int | None:
    if stream is None or isinstance(stream, int):
        return stream
    return stream.fileno()
