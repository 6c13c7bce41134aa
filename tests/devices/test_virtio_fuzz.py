"""Hypothesis: random register writes and random descriptor tables against blk and net,
legacy and modern: no host exception, no access outside guest RAM, image never extended.

VIRTIO_FUZZ_EXAMPLES sets the examples per property and device (default 2000, so each
device sees 4000); scripts/fuzz_virtio.py runs 10k per property and device.
"""
from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.devices.virtio_fuzz import KINDS, Harness, op_strategy, pci_op_strategy, scenario

EXAMPLES = int(os.environ.get("VIRTIO_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def harness():
    h = Harness()
    yield h
    h.close()


@pytest.mark.parametrize("kind", KINDS)
def test_random_register_writes(harness, kind):
    ran = []

    @FUZZ
    @given(legacy=st.booleans(), seed=st.integers(0, 1 << 32), ops=op_strategy(), setup=st.booleans())
    def prop(legacy, seed, ops, setup):
        ran.append(1)
        harness.registers(kind, legacy, seed, ops, setup)

    prop()
    assert len(ran) >= EXAMPLES


@pytest.mark.parametrize("kind", KINDS)
def test_random_descriptor_tables(harness, kind):
    ran = []

    @FUZZ
    @given(sc=scenario())
    def prop(sc):
        ran.append(1)
        harness.descriptors(kind, sc)

    prop()
    assert len(ran) >= EXAMPLES


@pytest.mark.parametrize("kind", KINDS)
def test_random_pci_transport_traffic(harness, kind):
    """virtio-pci: random BAR0 accesses and config-space writes (half the examples)."""
    ran = []

    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 1))
    @given(seed=st.integers(0, 1 << 32), ops=pci_op_strategy(), setup=st.booleans())
    def prop(seed, ops, setup):
        ran.append(1)
        harness.pci_registers(kind, seed, ops, setup)

    prop()
    assert len(ran) >= EXAMPLES // 2
