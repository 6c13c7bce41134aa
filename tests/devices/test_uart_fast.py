"""The UART's native front (emu/cpu/native/uart_fast.c): LSR reads and THR writes served in C
while they have no side effect; output order and the model's state stay what the Python
model alone gives."""
from __future__ import annotations

from tests.guest import build, needs_binutils, run

UART = 0x10000000

# THR writes (native), an SBI legacy putchar (Python, must come after them), the divisor latch
# (DLAB set: THR is the divisor, nothing printed), the THR-empty interrupt on (every access back
# in Python), then native again; LSR is sampled in each state.
ORDER = f"""
main:
    li s0, {UART}
    lbu t0, 5(s0)
    la t1, lsr
    sb t0, 0(t1)
    li t0, 'a'
    sb t0, 0(s0)
    li t0, 'b'
    sb t0, 0(s0)
    li a0, 'c'
    li a7, 1                # SBI legacy console_putchar
    ecall
    li t0, 'd'
    sb t0, 0(s0)
    li t0, 0x80             # LCR: DLAB
    sb t0, 3(s0)
    li t0, 'X'              # the divisor latch, not a character
    sb t0, 0(s0)
    lbu t0, 0(s0)
    la t1, dll
    sb t0, 0(t1)
    li t0, 0x03             # LCR: 8N1, DLAB clear
    sb t0, 3(s0)
    li t0, 0x02             # IER: THR-empty interrupt on (the model takes every access)
    sb t0, 1(s0)
    li t0, 'e'
    sb t0, 0(s0)
    lbu t0, 2(s0)           # IIR
    la t1, iir
    sb t0, 0(t1)
    sb zero, 1(s0)          # IER off: native again
    li t0, 'f'
    sb t0, 0(s0)
    li t0, '\\n'
    sb t0, 0(s0)
    EXIT_PASS
    .data
lsr: .byte 0
dll: .byte 0
iir: .byte 0
"""


@needs_binutils
def test_native_and_python_output_keep_their_order(tmp_path) -> None:
    r = run(build(ORDER, tmp_path), harts=1)
    assert r.result.exit_code == 0, r.result.reason
    assert r.console.endswith(b"abcdef\n"), r.console
    mem = r.machine.cpu.read_phys
    assert mem(r.sym("lsr"), 1) == b"\x60"   # THR empty, transmitter empty, no data
    assert mem(r.sym("dll"), 1) == b"X"      # DLAB: THR was the divisor latch
    assert mem(r.sym("iir"), 1)[0] & 0x0F == 0x02  # the THR-empty interrupt the model raised
    # 14 accesses in all; the LSR read and the five THR writes in the native state were C's
    assert r.machine.stats()["mmio"]["uart0"] == 14
    assert r.machine._uart_fast.accesses == 6
