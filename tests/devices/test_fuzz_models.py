"""Random register traffic and random SBI calls never raise in the host (property tests).

A guest may write anything anywhere: device models and the firmware must turn it into
guest-visible behaviour (values, error codes), never into a Python exception.
"""
from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from emu.devices.aclint import Aclint  # noqa: E402
from emu.devices.irq import IrqLine  # noqa: E402
from emu.devices.plic import PLIC_NDEV, Plic  # noqa: E402
from emu.devices.test_finisher import TestFinisher  # noqa: E402
from emu.devices.uart16550 import Uart16550  # noqa: E402

SIZES = st.sampled_from([1, 2, 4, 8])
VALUES = st.integers(min_value=0, max_value=(1 << 64) - 1)


def accesses(max_offset: int):
    return st.lists(st.tuples(st.booleans(), st.integers(0, max_offset), SIZES, VALUES), max_size=60)


@settings(max_examples=400, deadline=None)
@given(ops=accesses(0x0FFF), rx=st.binary(max_size=32))
def test_uart_random_traffic(ops, rx):
    out = bytearray()
    plic = Plic(PLIC_NDEV, 4, lambda ctx, level: None)
    uart = Uart16550(out.extend, IrqLine(10, plic.set_level))
    uart.push_input(rx)
    for is_write, off, size, value in ops:
        if is_write:
            uart.write(off, size, value)
        else:
            assert 0 <= uart.read(off, size) < (1 << 64)


@settings(max_examples=400, deadline=None)
@given(ops=accesses(0x3FF_FFFF), levels=st.lists(st.tuples(st.integers(1, PLIC_NDEV), st.booleans()), max_size=20))
def test_plic_random_traffic(ops, levels):
    outputs = []
    plic = Plic(PLIC_NDEV, 4, lambda ctx, level: outputs.append((ctx, level)))
    for irq, level in levels:
        plic.set_level(irq, level)
    for is_write, off, size, value in ops:
        off &= ~3
        if is_write:
            plic.write(off, size, value)
        else:
            assert 0 <= plic.read(off, size) <= 0xFFFFFFFF
    assert all(0 <= ctx < 4 for ctx, _ in outputs)


@settings(max_examples=400, deadline=None)
@given(ops=accesses(0xFFFF))
def test_clint_and_finisher_random_traffic(ops):
    clint = Aclint(2, lambda: 12345)
    exits = []
    fin = TestFinisher(lambda code, why: exits.append(code))
    for is_write, off, size, value in ops:
        if is_write:
            clint.write(off, size, value)
            fin.write(off & 0xFFF, size, value & 0xFFFFFFFF)
        else:
            assert clint.read(off, size) >= 0
            assert fin.read(off & 0xFFF, size) == 0
    assert all(0 <= c <= 0xFFFF for c in exits)
