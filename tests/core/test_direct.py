"""Direct (DirectView) tasks in the core (docs/core-api.md, "Actors and direct tasks"): dispatched at
submission to their one engine in submission order, not held by the hwm, counted in the loads the
schemes see and against the hwm for load-balanced tasks; engine unknown or lost -> EngineError;
retries stay on their engine; validation."""

from __future__ import annotations

import pytest

from sched_lab.core import Cancel, Deliver, Dependency, Dispatch, Fail, Outcome, TaskSpec, WorkerDied

from _core_helpers import Harness


def direct(h: Harness, tid: str, engine: str, **flags: object) -> list:
    return h.submit(tid, direct=True, targets=engine, **flags)


def test_direct_tasks_go_at_once_in_order_whatever_the_hwm_and_the_queue():
    h = Harness(hwm=1)
    h.join("a", "b")
    h.place("t1"), h.place("t2")
    h.submit("t3")                                          # both engines full: t3 waits
    acts = []
    for i in range(4):
        acts += direct(h, f"d{i}", "a")
    assert acts == [Dispatch(f"d{i}", "a", 0) for i in range(4)]
    assert h.s.load("a") == 5 and h.s.task_state("t3") == "queued"
    assert h.s.queue_status() == {"a": 5, "b": 1, "unassigned": 1}


def test_direct_load_counts_against_the_hwm_and_in_the_schemes_loads():
    h = Harness(hwm=1)
    h.join("a", "b")
    direct(h, "d", "b")
    assert h.place("t") == "a"                              # b is at hwm because of d
    h.submit("u")
    assert h.finish("t", "a") == [Deliver("t", "a", 0, True), Dispatch("u", "a", 0)]
    h.finish("u", "a")
    direct(h, "d2", "b")                                    # b: load 2, above hwm
    h.finish("d", "b")
    h.submit("v")                                           # a is free: b (load 1 = hwm) is not a candidate
    assert h.where["v"] == "a"
    h.submit("w")
    assert h.s.task_state("w") == "queued"
    assert h.finish("d2", "b") == [Deliver("d2", "b", 0, True), Dispatch("w", "b", 0)]
    hl = Harness(hwm=0)                                     # unlimited: leastload sees the direct load
    hl.join("a", "b")
    direct(hl, "d", "b")
    direct(hl, "d2", "b")
    assert hl.place("t") == "a" and hl.place("t2") == "a"
    assert hl.place("t3") == "b"                            # loads 2 vs 2: b is the less recently assigned


def test_unknown_or_lost_engine_fails_engine_error_without_retry():
    h = Harness()
    h.join("a")
    acts = direct(h, "d0", "zz")
    assert [(a.task_id, a.error_name) for a in acts if isinstance(a, Fail)] == [("d0", "EngineError")]
    direct(h, "d1", "a", retries=3)
    acts = h.lose("a")
    assert [(a.task_id, a.error_name) for a in acts] == [("d1", "EngineError")]
    outcomes = [(r.task_id, r.outcome) for r in h.s.records.drain()]
    assert outcomes == [("d0", Outcome.ENGINE_LOST), ("d1", Outcome.ENGINE_LOST)]


def test_retries_stay_on_the_same_engine():
    h = Harness(hwm=1)
    h.join("a", "b")
    direct(h, "d", "b", retries=2)
    assert h.finish("d", "b", ok=False) == [Dispatch("d", "b", 1)]
    assert h.handle(WorkerDied(h.now, "d", "b", 1, "killed")) == [Dispatch("d", "b", 2)]
    assert h.finish("d", "b", 2, ok=False) == [Deliver("d", "b", 2, False)]
    assert h.s.load("b") == 0


def test_abort_and_unmet():
    h = Harness()
    h.join("a")
    direct(h, "d", "a")
    assert h.abort("d") == [Cancel("d", "a", 0)]
    direct(h, "e", "a")
    acts = h.unmet("e", "a")
    assert [(a.task_id, a.error_name) for a in acts if isinstance(a, Fail)] == [("e", "ImpossibleDependency")]


def test_direct_specs_are_validated():
    for bad in (dict(direct=True), dict(direct=True, targets={"a", "b"}),
                dict(direct=True, targets="a", after=Dependency(["x"])),
                dict(direct=True, targets="a", follow=Dependency(["x"])), dict(direct=1, targets="a")):
        with pytest.raises(ValueError):
            TaskSpec("d", **bad)                             # type: ignore[arg-type]
    assert TaskSpec("d", direct=True, targets="a").targets == frozenset({"a"})
