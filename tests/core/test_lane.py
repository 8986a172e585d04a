"""PlainLane (core/lane.py) held to TaskScheduler: on random sequences of joins, submissions and finishes (OK or
raised) for every built-in scheme and hwm 0..3, both dispatch the same tasks to the same engines, let the
same waiting tasks through, and write the same records; misuse raises SchedulerMisuse."""

import random
from collections.abc import Callable

import pytest

from sched_lab.core import (
    Deliver, Dispatch, EngineJoined, Outcome, RecordList, SchedulerMisuse, TaskFinished, TaskScheduler, TaskSpec,
    TaskRecord, TaskSubmitted,
)
from sched_lab.core.lane import PlainLane, lane_supports

SCHEMES = ["leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd:d=3", "jiq", "fastest"]


def drive(scheme: str, hwm: int, seed: int, steps: int = 600) -> None:
    """One random run on both; asserts they agree at every step and in the records."""
    pick = random.Random(seed)
    records = RecordList()
    core = TaskScheduler(scheme, hwm, random.Random(seed), records, forget_finished=True)
    lane = PlainLane(scheme, hwm, random.Random(seed), capacity=steps)
    running: list[tuple[int, int, float]] = []             # (task, engine, started_at)
    now, n_eng, n_sub = 0.0, 0, 0

    def core_dispatches(actions):
        return [(a.task_id, a.engine_id) for a in actions if isinstance(a, Dispatch)]

    for _ in range(steps):
        now += pick.choice((0.0, 0.5, 1.0))
        r = pick.random()
        if n_eng < 6 and (n_eng == 0 and r < 0.2 or r < 0.04):
            speed = pick.choice((1.0, 2.0, 0.5))
            got = lane.join(n_eng, speed, now) or []
            want = core_dispatches(core.handle(EngineJoined(now, n_eng, speed)))
            n_eng += 1
        elif r < 0.55 and n_sub < steps:
            e = lane.submit(now)
            want = core_dispatches(core.handle(TaskSubmitted(now, TaskSpec(n_sub))))
            got = [(n_sub, e)] if e >= 0 else []
            n_sub += 1
        elif running:
            tid, e, started = running.pop(pick.randrange(len(running)))
            error = "Boom" if pick.random() < 0.2 else None
            got = lane.finish(tid, e, now, started, error) or []
            acts = core.handle(TaskFinished(now, tid, e, 0, Outcome.OK if error is None else Outcome.ERROR, error,
                                            started))
            assert [a for a in acts if isinstance(a, Deliver)] == [Deliver(tid, e, 0, error is None)]
            want = core_dispatches(acts)
        else:
            continue
        assert got == want, (scheme, hwm, seed)
        running += [(t, e, now) for t, e in got]
        for e in range(n_eng):
            assert lane.load(e) == core.load(e)
        assert lane.waiting_count == core.waiting_count
    assert [TaskRecord.from_row(row) for row in lane.rows()] == records.drain()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("hwm", [0, 1, 2, 3])
def test_lane_decides_and_records_as_the_scheduler_does(scheme, hwm):
    for seed in range(4):
        drive(scheme, hwm, seed)


def test_misuse_is_refused():
    lane = PlainLane("leastload", 1, random.Random(0), capacity=2)
    with pytest.raises(SchedulerMisuse, match="out of order"):
        lane.join(1)
    lane.join(0)
    assert lane.submit(0.0) == 0
    assert lane.submit(0.0) == -1                          # waits: the only engine is full
    with pytest.raises(SchedulerMisuse, match="capacity"):
        lane.submit(0.0)
    with pytest.raises(SchedulerMisuse, match="not running"):
        lane.finish(1, 0, 1.0, 0.0)                        # never dispatched
    assert lane.finish(0, 0, 1.0, 0.0) == [(1, 0)]         # the waiting task goes
    with pytest.raises(SchedulerMisuse, match="not running"):
        lane.finish(0, 0, 2.0, 1.0)                        # finished twice
    with pytest.raises(SchedulerMisuse, match="built-in"):
        from sched_lab.core.scheme_api import register_scheme

        register_scheme("lane_test_user", lambda choice: choice.candidates[0])
        PlainLane("lane_test_user", 1, random.Random(0), capacity=1)
    assert lane_supports("weighted") and not lane_supports("lane_test_user")


def _generic_lane(scheme: str, hwm: int, rng: random.Random, capacity: int) -> PlainLane:
    """A PlainLane on the scheme's pool, whatever the scheme (PlainLane("leastload") makes its own lane)."""
    lane = object.__new__(PlainLane)
    lane.__init__(scheme, hwm, rng, capacity)
    return lane


def _lockstep(fast: PlainLane, slow: PlainLane, n_eng: int, steps: int, pick: random.Random,
              p_finish: Callable[[int], float], watch: Callable[[], None] | None = None,
              joined: Callable[[], None] | None = None) -> None:
    """Join `n_eng` engines to both lanes (then call `joined()`), then `steps` random events: with probability
    `p_finish(step)` one running task finishes, else a task is submitted; both lanes must answer alike at every
    step. `watch()` runs after each step."""
    running: list[tuple[int, int]] = []
    for e in range(n_eng):
        assert fast.join(e) == slow.join(e)
    if joined is not None:
        joined()
    for step in range(steps):
        now = float(step)
        if running and pick.random() < p_finish(step):
            tid, e = running.pop(pick.randrange(len(running)))
            out = fast.finish(tid, e, now, now - 1.0)
            assert out == slow.finish(tid, e, now, now - 1.0), step
            running.extend(out or ())
        else:
            e = fast.submit(now)
            assert e == slow.submit(now), step
            if e >= 0:
                running.append((fast.submitted_count - 1, e))
        if watch is not None:
            watch()


@pytest.mark.parametrize("hwm", [0, 1, 2])
def test_leastload_lane_matches_the_pool_lane_at_scale(hwm: int) -> None:
    """The leastload lane (its own heaps, rebuilt when stale keys pile up) against the pool-based lane:
    the same engines, the same tasks let through and the same records over a long run with many engines."""
    steps, n_eng = 30_000, 200
    fast = PlainLane("leastload", hwm, random.Random(1), capacity=steps)
    slow = _generic_lane("leastload", hwm, random.Random(1), capacity=steps)
    assert type(fast) is not PlainLane and type(slow) is PlainLane
    seen = []
    _lockstep(fast, slow, n_eng, steps, random.Random(hwm), lambda step: 0.5, lambda: seen.append(fast._limit > 64))
    rebuilds_seen = any(seen)
    assert rebuilds_seen or hwm == 1                        # (at hwm 1 no busy engine is available)
    a, b = fast.columns(), slow.columns()
    assert a == b


@pytest.mark.parametrize("hwm", [0, 1, 2])
def test_weighted_lane_matches_the_pool_lane_at_scale(hwm: int) -> None:
    """The weighted lane (WeightedPool's levels on the lane's lists) against the pool-based lane: the same
    draws, engines and records over a long run with many engines and several load levels."""
    steps, n_eng = 30_000, 200
    fast = PlainLane("weighted", hwm, random.Random(1), capacity=steps)
    slow = _generic_lane("weighted", hwm, random.Random(1), capacity=steps)
    assert type(fast) is not PlainLane and type(slow) is PlainLane
    _lockstep(fast, slow, n_eng, steps, random.Random(hwm), lambda step: 0.45)
    assert max(fast.load(e) for e in range(n_eng)) >= 2 or hwm == 1
    assert fast.columns() == slow.columns()
    assert fast._rng.getstate() == slow._rng.getstate()


@pytest.mark.parametrize("hwm", [0, 2])
def test_leastload_lane_drops_and_rebuilds_its_busy_heap_as_the_pool_lane_decides(hwm: int) -> None:
    """The leastload lane's busy heap, dropped while an engine is idle and built afresh from the loads when none
    is: a run whose load swings above and below the engine count (so both happen many times) against the
    pool-based lane, choice by choice and in the records."""
    steps, n_eng = 40_000, 150
    fast = PlainLane("leastload", hwm, random.Random(3), capacity=steps)
    slow = _generic_lane("leastload", hwm, random.Random(3), capacity=steps)
    counts = {"drops": 0, "builds": 0, "dropped": fast._busy is None}

    def watch() -> None:
        dropped = fast._busy is None
        counts["drops"] += dropped and not counts["dropped"]
        counts["builds"] += counts["dropped"] and not dropped
        counts["dropped"] = dropped

    _lockstep(fast, slow, n_eng, steps, random.Random(7),
              lambda step: 0.3 if (step // 2_000) % 2 == 0 else 0.7, watch)    # phases: the load climbs, then falls
    drops, builds = counts["drops"], counts["builds"]
    assert drops >= 3 and builds >= 3, (drops, builds)
    assert fast.columns() == slow.columns()


def test_weighted_sure_bound_settles_only_draws_the_exact_test_settles() -> None:
    """`_sure_bound`: a first draw below it lands on the idle level by the pool's exact test (u * fsum of the
    masses - idle < 0), at the bound's worst case (one idle engine, every other engine busy, levels 1..3)
    and on random level counts."""
    from math import fsum, nextafter

    from sched_lab.core.pools import WEIGHT_EPSILON
    from sched_lab.core.weighted_lane import _sure_bound

    pick = random.Random(5)
    for n_eng in (1, 2, 10, 1_000, 10_000, 100_000, 1_000_000):
        bound = _sure_bound(n_eng)
        u_max = nextafter(bound, 0.0)                                  # the largest draw the bound lets through
        cases = [[1, n_eng - 1], [1, 0, 0, n_eng - 1]]
        for _ in range(50):
            c0 = pick.randint(1, n_eng)
            rest = n_eng - c0
            cut = sorted(pick.randint(0, rest) for _ in range(2))
            cases.append([c0, cut[0], cut[1] - cut[0], rest - cut[1]])
        for counts in cases:
            denom = [WEIGHT_EPSILON + level for level in range(len(counts))]
            total = fsum(c / d for c, d in zip(counts, denom))
            for u in (u_max, pick.random() * bound):
                assert u * total - counts[0] / WEIGHT_EPSILON < 0, (n_eng, counts, u)


@pytest.mark.parametrize("hwm", [0, 2])
def test_weighted_lane_first_draws_past_the_sure_bound_match_the_pool_lane(hwm: int, monkeypatch) -> None:
    """The weighted lane with its sure bound lowered to 0.3 (so most first draws take the exact test,
    `_choose_after`) still draws and chooses as the pool-based lane does."""
    steps, n_eng = 20_000, 120
    fast = PlainLane("weighted", hwm, random.Random(2), capacity=steps)
    slow = _generic_lane("weighted", hwm, random.Random(2), capacity=steps)
    exact = []                                  # first draws the lowered bound left to the exact test
    choose_after = type(fast)._choose_after
    monkeypatch.setattr(type(fast), "_choose_after", lambda lane, u: exact.append(u) or choose_after(lane, u))

    def lower_the_bound() -> None:              # (after the joins: each join sets the bound for its engine count)
        fast._sure = 0.3

    _lockstep(fast, slow, n_eng, steps, random.Random(11), lambda step: 0.47, joined=lower_the_bound)
    assert len(exact) > 1_000 and max(exact) >= 0.9, len(exact)
    assert fast.columns() == slow.columns()
    assert fast._rng.getstate() == slow._rng.getstate()
