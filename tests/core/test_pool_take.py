"""Pools' `take` (the plain lane's one-call dispatch) against `choose` followed by `update`/`discard`.

Two pools of each built-in scheme are driven in lockstep through the same long random sequence of
joins, losses, dispatches and finishes, with hwm 0, 1 and 3; at each dispatch one pool is asked
`take(rng, seq, hwm)` and its twin `choose(rng)` and then the update the scheduler makes. Both get
generators in the same state, so they must pick the same engine, draw the same numbers and end in
the same state (loads, seqs, and every later choice) — which is what lets sched_lab.core.lane use
`take` and still decide exactly as TaskScheduler does.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from sched_lab.core import get_scheme

SCHEMES = ("leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd", "jiq", "fastest")


def _twin_update(pool: Any, engine: Any, load: int, seq: int, hwm: int) -> None:
    if hwm and load >= hwm:
        pool.discard(engine)
    else:
        pool.update(engine, load, seq)


@pytest.mark.parametrize("hwm", [0, 1, 3])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_take_is_choose_then_update(scheme: str, hwm: int) -> None:
    bound = get_scheme(scheme)
    a, b = bound.pool(), bound.pool()
    rnd = random.Random(f"{scheme}-{hwm}")
    rng_a, rng_b = random.Random(7), random.Random(7)
    load: dict[int, int] = {}
    seq: dict[int, int] = {}
    joins = assigned = taken = 0
    next_id = 0

    def join() -> None:
        nonlocal joins, next_id
        joins += 1
        load[next_id], seq[next_id] = 0, -joins
        for p in (a, b):
            p.add(next_id, 0, -joins)
        next_id += 1

    for _ in range(20):
        join()
    for step in range(6000):
        r = rnd.random()
        if r < 0.03 or not load:
            join()
        elif r < 0.05 and len(load) > 1:
            e = rnd.choice(list(load))
            del load[e], seq[e]
            for p in (a, b):
                p.discard(e)
        elif r < 0.55:
            assigned += 1
            got = a.take(rng_a, assigned, hwm)
            want = b.choose(rng_b, None, None)
            assert got == want, (step, got, want)
            if got is None:
                assigned -= 1
                continue
            taken += 1
            load[got] += 1
            seq[got] = assigned
            _twin_update(b, got, load[got], assigned, hwm)
        else:
            busy = [e for e in load if load[e] > 0]
            if busy:
                e = rnd.choice(busy)
                load[e] -= 1
                for p in (a, b):
                    (p.update if e in p else p.add)(e, load[e], seq[e])
        assert a.load == b.load, step
        assert dict(a.seq) == dict(b.seq), step
        assert rng_a.getstate() == rng_b.getstate(), step
    assert taken > 2000
    # pools that hold available engines only: exactly those below hwm
    assert set(a.load) == {e for e in load if hwm == 0 or load[e] < hwm}
