"""Random SBI calls from a real hart: every call returns an SBI result, none raises in the host."""
from __future__ import annotations

import pytest

from tests.guest import build, needs_binutils

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from emu.board import BoardSpec  # noqa: E402
from emu.machine import Machine, MachineOptions  # noqa: E402
from emu.smp.hart import HsmState  # noqa: E402
from loader.image import load_kernel  # noqa: E402

pytestmark = needs_binutils
EIDS = st.one_of(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 0x10, 0x54494D45, 0x735049, 0x52464E43, 0x48534D,
                                  0x4442434E]), st.integers(0, (1 << 64) - 1))
REG = st.one_of(st.integers(0, 16), st.integers(0x8000_0000, 0x8400_0000), st.integers(0, (1 << 64) - 1))


@pytest.fixture(scope="module")
def machine(tmp_path_factory):
    elf = build("main:\n1:  wfi\n    j 1b\n", tmp_path_factory.mktemp("sbi"))
    spec = BoardSpec(harts=2, ram_size=64 << 20)
    m = Machine(spec, load_kernel(elf, spec.ram.base, spec.ram.size), None, MachineOptions(capture=True))
    m.cpu.switch_in(m.harts[0])
    m.harts[0].state = HsmState.STARTED
    return m


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(eid=EIDS, fid=st.integers(0, 12), args=st.lists(REG, min_size=6, max_size=6))
def test_random_sbi_calls_return_results(machine, eid, fid, args):
    cpu, hart = machine.cpu, machine.harts[0]
    if eid == 0x53525354 or eid == 8 or (eid == 0x48534D and fid in (1, 3)):
        return  # reset, stop and suspend end the slice by design
    for i, v in enumerate(args):
        cpu.wreg(11 + i, v)  # a0..a5
    cpu.wreg(11 + 6, fid)
    cpu.wreg(11 + 7, eid)
    machine.sbi_call(hart)
    err = cpu.rreg(11)
    assert 0 <= err < (1 << 64)
    machine.exit_code = None  # a legacy shutdown or DBCN write must not leak between examples
