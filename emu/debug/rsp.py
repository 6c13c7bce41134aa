"""GDB remote serial protocol framing: `$data#cs` packets, acks, escapes, Ctrl-C.

A small byte-level parser kept apart from the stub's command handling so it can be
fed anything (a malformed packet is dropped with a NAK, never an exception).
"""
from __future__ import annotations

INTERRUPT = b"\x03"


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def escape(data: bytes) -> bytes:
    out = bytearray()
    for b in data:
        if b in (0x23, 0x24, 0x7D, 0x2A):  # # $ } *
            out += bytes((0x7D, b ^ 0x20))
        else:
            out.append(b)
    return bytes(out)


def unescape(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for b in it:
        if b == 0x7D:
            nxt = next(it, None)
            if nxt is None:
                break
            out.append(nxt ^ 0x20)
        else:
            out.append(b)
    return bytes(out)


def frame(data: bytes) -> bytes:
    body = escape(data)
    return b"$" + body + b"#" + f"{checksum(body):02x}".encode()


class PacketReader:
    """Accumulates bytes; yields ('packet', data), ('interrupt', b''), ('ack'|'nak', b'')."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[tuple[str, bytes]]:
        self.buf += data
        out: list[tuple[str, bytes]] = []
        while self.buf:
            c = self.buf[0]
            if c == 0x03:
                out.append(("interrupt", b""))
                del self.buf[0]
            elif c == ord("+"):
                out.append(("ack", b""))
                del self.buf[0]
            elif c == ord("-"):
                out.append(("nak", b""))
                del self.buf[0]
            elif c == ord("$"):
                end = self.buf.find(b"#")
                if end < 0 or len(self.buf) < end + 3:
                    if len(self.buf) > 1 << 20:  # runaway packet: drop it
                        self.buf.clear()
                        out.append(("bad", b""))
                    break
                body = bytes(self.buf[1:end])
                cs = bytes(self.buf[end + 1:end + 3])
                del self.buf[:end + 3]
                try:
                    ok = int(cs, 16) == checksum(body)
                except ValueError:
                    ok = False
                out.append(("packet", unescape(body)) if ok else ("bad", b""))
            else:
                del self.buf[0]  # noise between packets
        return out
