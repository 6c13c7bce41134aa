#!/usr/bin/env python3
"""Nightly-style fuzz of the virtio device models (hypothesis), 10k examples per device
and property by default: random register writes, and well-formed chains with hostile
mutations (descriptor tables, indexes, lengths, addresses), legacy and modern virtio-mmio;
random BAR and config-space traffic on the virtio-pci transport.

Checks: no host exception, no access outside guest RAM, the disk image never grows.
Prints one line per device/property with the example count, time and what the examples
reached (requests served, NEEDS_RESET), and exits 1 on the first failure (hypothesis
prints the shrunk example and a reproduction blob).

    python scripts/fuzz_virtio.py [--examples N] [--device blk|net] [--seed S]
"""
from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hyp_seed
from hypothesis import strategies as st

from emu.devices.virtio import mmio as M
from tests.devices.virtio_fuzz import KINDS, Harness, op_strategy, pci_op_strategy, scenario


def run(harness: Harness, kind: str, prop_name: str, examples: int, seed: int | None) -> dict:
    stats: collections.Counter = collections.Counter()
    check = Harness.check_invariants

    def counting_check(dev, ram, irq, masked=False):
        check(harness, dev, ram, irq, masked)
        stats["examples"] += 1
        stats["needs_reset"] += bool(dev.status & M.S_NEEDS_RESET)
        stats["completed_chains"] += sum(q.used_idx for q in dev.queues)

    harness.check_invariants = counting_check
    before = dict(harness.blk.stats)
    cfg = settings(max_examples=examples, deadline=None, database=None, print_blob=True,
                   suppress_health_check=list(HealthCheck))
    if prop_name == "registers":
        @cfg
        @given(legacy=st.booleans(), seed=st.integers(0, 1 << 32), ops=op_strategy(), setup=st.booleans())
        def prop(legacy, seed, ops, setup):
            harness.registers(kind, legacy, seed, ops, setup)
    elif prop_name == "pci":
        @cfg
        @given(seed=st.integers(0, 1 << 32), ops=pci_op_strategy(), setup=st.booleans())
        def prop(seed, ops, setup):
            harness.pci_registers(kind, seed, ops, setup)
    else:
        @cfg
        @given(sc=scenario())
        def prop(sc):
            harness.descriptors(kind, sc)
    if seed is not None:
        prop = hyp_seed(seed)(prop)
    t0 = time.perf_counter()
    try:
        prop()
    finally:
        del harness.check_invariants  # back to the class's method
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    if kind == "blk":
        for k, v in harness.blk.stats.items():
            if v - before.get(k, 0):
                stats[f"blk_{k}"] = v - before.get(k, 0)
    return dict(stats)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=10_000, help="examples per device and property")
    ap.add_argument("--device", choices=KINDS, action="append", help="only this device (repeatable)")
    ap.add_argument("--seed", type=int, default=None, help="hypothesis seed (reproducible run)")
    args = ap.parse_args()
    harness = Harness()
    failed = False
    try:
        for kind in args.device or KINDS:
            for prop_name in ("registers", "descriptors", "pci"):
                try:
                    stats = run(harness, kind, prop_name, args.examples, args.seed)
                except Exception as exc:  # hypothesis has printed the falsifying example
                    print(f"{kind:4} {prop_name:11} FAILED: {type(exc).__name__}: {exc}", flush=True)
                    failed = True
                    continue
                ok = stats.get("examples", 0) >= args.examples
                failed |= not ok
                detail = " ".join(f"{k}={v}" for k, v in stats.items())
                print(f"{kind:4} {prop_name:11} {'ok' if ok else 'TOO FEW EXAMPLES'}  {detail}", flush=True)
    finally:
        harness.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
