"""Spin detection (emu/cpu/native/budget.c): a hart that waits in a poll costs next to nothing,
a hart that works is never taken for one.

- A server that takes a ticket lock every time round its poll (zCore's offload server
  does so) changes a register each time (its ticket): that register only counts, the
  poll is still seen, and the waiting is skipped, not run.
- A loop that counts without atomics (a byte copy) or that walks memory with atomics (a
  reference count per element) is work: never a poll.
"""
from __future__ import annotations

from tests.guest import START_HART1, build, needs_binutils, run

WORK = 400_000  # hart 0's loop iterations before it posts the request (~1.2 M instructions)


TICKET_SERVER = START_HART1 + f"""
    li t0, {WORK}           # hart 0 works, then posts one request and waits for its answer
1:  addi t0, t0, -1
    bnez t0, 1b
    la t0, request
    li t1, 42
    sd t1, 0(t0)
2:  la t0, answer
    ld t1, 0(t0)
    beqz t1, 2b
    EXIT_PASS
hart1:                      # the server: lock; look at the queue; unlock; again
    la s0, next_ticket
    la s1, now_serving
    la s2, request
    li s3, 1
3:  amoadd.d s4, s3, (s0)   # my ticket: one more every time round
4:  ld t0, 0(s1)
    bne t0, s4, 4b
    ld t1, 0(s2)
    addi t0, s4, 1
    sd t0, 0(s1)            # unlock
    beqz t1, 3b
    la t0, answer
    addi t1, t1, 1
    sd t1, 0(t0)
5:  wfi
    j 5b
    .data
next_ticket: .dword 0
now_serving: .dword 0
request: .dword 0
answer: .dword 0
    .text
"""


@needs_binutils
def test_a_poll_that_takes_a_ticket_lock_each_time_is_skipped_not_run(tmp_path) -> None:
    r = run(build(TICKET_SERVER, tmp_path), harts=2)
    assert r.result.exit_code == 0, r.result.reason
    assert r.word("answer") == 43
    stats = r.result.stats
    worker, server = stats["harts"][0], stats["harts"][1]
    assert worker["instructions_est"] > 2 * WORK
    assert server.get("spin_yields", 0) > 0
    # the server waited as long as the worker worked, but ran a small part of that
    assert server["instructions_est"] < worker["instructions_est"] // 10, stats


def _work_beside_a_waiting_hart(loop: str, tmp_path) -> dict:
    """Hart 1 runs `loop` (it ends by storing 1 to `done`); hart 0 waits in WFI-free polling."""
    elf = build(START_HART1 + f"""
2:  la t0, done
    ld t1, 0(t0)
    beqz t1, 2b
    EXIT_PASS
hart1:
{loop}
    la t0, done
    li t1, 1
    sd t1, 0(t0)
5:  wfi
    j 5b
    .data
done: .dword 0
    .align 4
buf: .space 65536
dst: .space 65536
counts: .space 65536
    .text
""", tmp_path)
    r = run(elf, harts=2)
    assert r.result.exit_code == 0, r.result.reason
    return r.result.stats


@needs_binutils
def test_a_byte_copy_is_work_not_a_poll(tmp_path) -> None:
    stats = _work_beside_a_waiting_hart("""
    la a0, dst
    la a1, buf
    li a2, 65536
1:  lb t0, 0(a1)
    sb t0, 0(a0)
    addi a0, a0, 1
    addi a1, a1, 1
    addi a2, a2, -1
    bnez a2, 1b
""", tmp_path)
    assert stats["harts"][1].get("spin_yields", 0) == 0, stats
    assert stats["harts"][1]["instructions_est"] >= 6 * 65536


@needs_binutils
def test_counting_with_atomics_along_memory_is_work_not_a_poll(tmp_path) -> None:
    stats = _work_beside_a_waiting_hart("""
    la a0, counts
    li a2, 16384
    li t1, 1
1:  amoadd.w zero, t1, (a0)     # a reference count per element
    addi a0, a0, 4
    addi a2, a2, -1
    bnez a2, 1b
""", tmp_path)
    assert stats["harts"][1].get("spin_yields", 0) == 0, stats
    assert stats["harts"][1]["instructions_est"] >= 4 * 16384
