"""TaskScheduler rules, part 1 (docs/core-api.md): placement — one test per rule, exact actions.

Covers LRU ordering and the schemes' tie-breaks (the ipyparallel placement sequence), hwm and the FIFO
queue, `after`/`follow`, InvalidDependency / ImpossibleDependency and targets. Part 2 is
test_scheduler_failures.py. Actions are compared as multisets (the contract fixes which actions, not
their order); a Fail's free-text message is checked only where the contract says what it names.
"""

from __future__ import annotations

from typing import Any

import pytest

from _core_helpers import Harness, assert_actions, dispatches, only_timer
from sched_lab.core import CancelTimer, Deliver, Dependency, Dispatch, Fail

IMPOSSIBLE = "ImpossibleDependency"
INVALID = "InvalidDependency"
TIMEOUT = "TaskTimeout"
ENGINE_ERROR = "EngineError"
ABORTED = "TaskAborted"
ALL_SCHEMES = ["leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd"]


# ------------------------------------------------------------------------ ordering and schemes

def test_ipyparallel_placement_sequence_leastload_hwm1() -> None:
    """Three fresh engines 0, 1, 2 joined in order, six tasks: [2, 1, 0, 0, 1, 2] (semantics §1.3)."""
    h = Harness(hwm=1)
    h.join(0, 1, 2)
    assert [h.place(f"t{i}") for i in range(3)] == [2, 1, 0]
    for i in range(3, 6):
        assert h.submit(f"t{i}") == []
    assert_actions(h.finish("t2", 0), [Deliver("t2", 0, 0, True), Dispatch("t3", 0, 0)])
    assert_actions(h.finish("t1", 1), [Deliver("t1", 1, 0, True), Dispatch("t4", 1, 0)])
    assert_actions(h.finish("t0", 2), [Deliver("t0", 2, 0, True), Dispatch("t5", 2, 0)])


@pytest.mark.parametrize("scheme", ["leastload", "lru"])
def test_among_never_assigned_engines_newest_first(scheme: str) -> None:
    h = Harness(scheme, hwm=0)
    h.join("a", "b", "c", "d")
    assert [h.place(i) for i in range(4)] == ["d", "c", "b", "a"]


@pytest.mark.parametrize("scheme", ["leastload", "lru"])
def test_new_engine_counts_as_least_recently_used(scheme: str) -> None:
    h = Harness(scheme, hwm=0)
    h.join(0, 1)
    assert [h.place("a"), h.place("b")] == [1, 0]
    h.finish("a", 1)
    h.finish("b", 0)
    h.join(2)
    assert h.place("c") == 2          # newcomer before engines 1 and 0, which were assigned
    assert h.place("d") == 1          # then the least recently assigned


def test_assignment_makes_engine_most_recent_and_finish_does_not_reorder() -> None:
    h = Harness("lru", hwm=0)
    h.join(0, 1, 2)
    assert [h.place(t) for t in "abc"] == [2, 1, 0]
    h.finish("a", 2)                   # finishing must not make 2 the most recently used
    assert h.place("d") == 2
    assert h.place("e") == 1           # 2 was just assigned: now it is the most recent


def test_leastload_picks_lowest_load_over_lru() -> None:
    h = Harness("leastload", hwm=0)
    h.join(0, 1)
    assert [h.place(t) for t in "abcd"] == [1, 0, 1, 0]
    h.finish("a", 1)
    h.finish("c", 1)                   # loads: 1 -> 0, 0 -> 2
    assert h.place("e") == 1
    assert h.place("f") == 1           # 1 is the most recently used but still the least loaded


def test_leastload_ties_go_to_least_recently_assigned() -> None:
    h = Harness("leastload", hwm=0)
    h.join(0, 1, 2)
    assert [h.place(t) for t in "abc"] == [2, 1, 0]
    assert h.place("d") == 2           # all at load 1: the least recently assigned is 2
    h.finish("b", 1)                   # loads 0:1, 1:0, 2:2
    assert h.place("e") == 1
    assert h.place("f") == 0           # 0 and 1 tie at load 1; 0 was assigned before 1


def test_lru_ignores_loads() -> None:
    h = Harness("lru", hwm=0)
    h.join(0, 1)
    assert [h.place(t) for t in "abcd"] == [1, 0, 1, 0]
    h.finish("b", 0)
    h.finish("d", 0)                   # loads 0:0, 1:2; LRU order 1 (at c) then 0 (at d)
    assert h.place("e") == 1


@pytest.mark.parametrize("scheme", ALL_SCHEMES)
def test_schemes_choose_only_among_candidates(scheme: str) -> None:
    h = Harness(scheme, hwm=1, seed=3)
    h.join(*range(6))
    placed: list[Any] = []
    for i in range(40):
        placed += [d.engine_id for d in dispatches(h.submit(i, targets={1, 4}))]
        if h.s.load(1) and h.s.load(4):
            for e in (1, 4):
                (tid,) = h.running_on(e)
                placed += [d.engine_id for d in dispatches(h.finish(tid, e))]
    assert len(placed) == 40 and set(placed) == {1, 4}
    assert h.s.load(0) == h.s.load(2) == h.s.load(3) == h.s.load(5) == 0


# ------------------------------------------------------------------------------- hwm and queue

def test_hwm_caps_outstanding_per_engine() -> None:
    h = Harness(hwm=2)
    h.join(0, 1)
    assert [h.place(t) for t in "abcd"] == [1, 0, 1, 0]
    assert h.submit("e") == []
    assert h.s.load(0) == h.s.load(1) == 2
    assert h.s.queue_status() == {0: 2, 1: 2, "unassigned": 1}
    assert_actions(h.finish("c", 1), [Deliver("c", 1, 0, True), Dispatch("e", 1, 0)])


def test_hwm_zero_is_unlimited() -> None:
    h = Harness(hwm=0)
    h.join(0)
    for i in range(50):
        assert h.submit(i) == [Dispatch(i, 0, 0)]
    assert h.s.load(0) == 50 and h.s.running_count == 50 and h.s.waiting_count == 0


def test_hwm_one_queues_fifo() -> None:
    h = Harness(hwm=1)
    h.join(0)
    assert h.place("a") == 0
    for t in "bcd":
        assert h.submit(t) == []
    assert h.s.waiting_count == 3 and h.s.task_state("b") == "queued"
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b", 0, 0)])
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Dispatch("c", 0, 0)])
    assert_actions(h.finish("c", 0), [Deliver("c", 0, 0, True), Dispatch("d", 0, 0)])
    assert_actions(h.finish("d", 0), [Deliver("d", 0, 0, True)])
    assert h.s.waiting_count == 0


def test_fifo_oldest_task_that_can_use_the_capacity_goes_first() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert [h.place("x"), h.place("y")] == [1, 0]
    assert h.submit("a", targets={1}) == []
    assert h.submit("b") == []
    assert h.submit("c") == []
    assert_actions(h.finish("y", 0), [Deliver("y", 0, 0, True), Dispatch("b", 0, 0)])
    assert_actions(h.finish("x", 1), [Deliver("x", 1, 0, True), Dispatch("a", 1, 0)])
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Dispatch("c", 0, 0)])


def test_engine_join_places_queued_tasks_in_fifo_order() -> None:
    h = Harness(hwm=1)
    for t in "abc":
        assert h.submit(t) == []           # no engines: tasks simply wait
    assert h.s.waiting_count == 3 and h.s.queue_status() == {"unassigned": 3}
    assert h.join(0) == [Dispatch("a", 0, 0)]
    assert h.join(1) == [Dispatch("b", 1, 0)]
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("c", 0, 0)])


def test_no_live_engines_tasks_wait_even_if_unplaceable() -> None:
    h = Harness(hwm=1)
    assert h.submit("a", targets={9}) == []
    assert h.s.waiting_count == 1            # zero live engines: it waits
    h.join(0)                                # now a live engine exists and none can take "a"
    assert h.s.task_state("a") == "done"
    h.lose(0)
    assert h.submit("b", targets={9}) == []  # zero live engines again: "b" waits
    assert h.s.waiting_count == 1


def test_engine_join_never_redispatches_a_running_task() -> None:
    """The original runs a task twice when an engine joins with hwm=0 (semantics §1.6); never here."""
    h = Harness(hwm=0)
    h.join(0)
    assert h.place("a") == 0
    assert h.submit("b", after="a") == []
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b", 0, 0)])
    assert h.join(1) == []
    assert h.join(2) == []
    assert h.s.running_count == 1


# ------------------------------------------------------------------------------ after / follow

def test_after_waits_then_dispatches() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    assert h.submit("b", after="a") == []
    assert h.s.task_state("b") == "waiting" and h.s.waiting_count == 1
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b", 0, 0)])


def test_after_all_waits_for_every_dependency() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    h.place("b")
    assert h.submit("c", after=["a", "b"]) == []
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True)])
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Dispatch("c", 0, 0)])


def test_after_any_dispatches_on_first_met() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    h.place("b")
    assert h.submit("c", after=Dependency(["a", "b"], all=False)) == []
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Dispatch("c", 0, 0)])


def test_after_already_met_dispatches_at_once() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    h.finish("a", 0)
    assert h.submit("b", after="a") == [Dispatch("b", 0, 0)]


def test_after_on_failed_task_is_impossible_at_once() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    assert_actions(h.finish("a", 0, ok=False), [Deliver("a", 0, 0, False)])
    assert_actions(h.submit("b", after="a"), [Fail("b", IMPOSSIBLE)])
    # and while waiting: the failure of its dependency fails it in the same step
    h.place("c")
    assert h.submit("d", after="c") == []
    assert_actions(h.finish("c", 0, ok=False), [Deliver("c", 0, 0, False), Fail("d", IMPOSSIBLE)])
    assert h.s.task_state("d") == "done"


def test_after_with_failure_flag_runs_after_failure_and_is_impossible_after_success() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    h.place("b")
    on_failure = Dependency(["a"], success=False, failure=True)
    assert h.submit("c", after=on_failure) == []
    assert h.submit("d", after=Dependency(["b"], success=False, failure=True)) == []
    assert_actions(h.finish("a", 0, ok=False), [Deliver("a", 0, 0, False), Dispatch("c", 0, 0)])
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Fail("d", IMPOSSIBLE)])


def test_impossible_cascades_to_dependents() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    assert h.submit("b", after="a") == []
    assert h.submit("c", after="b") == []
    assert h.submit("d", after=Dependency(["c"], success=True, failure=True)) == []
    assert_actions(h.finish("a", 0, ok=False),
                   [Deliver("a", 0, 0, False), Fail("b", IMPOSSIBLE), Fail("c", IMPOSSIBLE), Dispatch("d", 0, 0)])


def test_scheduler_failures_count_as_failed_for_dependents() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("busy")
    start = only_timer(h.submit("a", timeout_s=1.0, now=0.0))
    assert h.submit("b", after="a") == []
    assert_actions(h.fire(start.token, now=1.0), [Fail("a", TIMEOUT), Fail("b", IMPOSSIBLE)])


def test_unknown_dependency_is_invalid() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    assert_actions(h.submit("b", after="nope"), [Fail("b", INVALID)])
    assert_actions(h.submit("c", follow="nope"), [Fail("c", INVALID)])
    assert_actions(h.submit("d", after=["a", "nope"]), [Fail("d", INVALID)])
    assert h.s.task_state("b") == "done"


def test_self_dependency_is_invalid() -> None:
    h = Harness(hwm=0)
    h.join(0)
    assert_actions(h.submit("a", after="a"), [Fail("a", INVALID)])
    assert_actions(h.submit("b", follow="b"), [Fail("b", INVALID)])


def test_invalid_dependency_is_reported_even_without_engines() -> None:
    h = Harness(hwm=1)
    assert_actions(h.submit("a", after="ghost"), [Fail("a", INVALID)])


def test_follow_pins_to_engine() -> None:
    h = Harness(hwm=0)
    h.join(0, 1, 2)
    assert h.place("a") == 2
    h.finish("a", 2)
    assert h.submit("b", follow="a") == [Dispatch("b", 2, 0)]   # leastload alone would pick 1
    assert h.submit("c", follow="a") == [Dispatch("c", 2, 0)]


def test_follow_waits_for_the_followed_task_to_finish() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert h.place("a") == 1
    assert h.submit("b", follow="a") == []
    assert_actions(h.finish("a", 1), [Deliver("a", 1, 0, True), Dispatch("b", 1, 0)])


def test_follow_all_on_two_engines_is_impossible() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert [h.place("a"), h.place("b")] == [1, 0]
    h.finish("a", 1)
    h.finish("b", 0)
    assert_actions(h.submit("c", follow=["a", "b"]), [Fail("c", IMPOSSIBLE)])
    acts = h.submit("d", follow=Dependency(["a", "b"], all=False))
    assert len(acts) == 1 and isinstance(acts[0], Dispatch) and acts[0].engine_id in (0, 1)


def test_follow_on_failed_task_is_impossible() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    h.place("a")
    h.finish("a", 1, ok=False)
    assert_actions(h.submit("b", follow="a"), [Fail("b", IMPOSSIBLE)])


def test_follow_engine_dead_is_impossible() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("a") == 1
    h.finish("a", 1)
    assert [h.place("x"), h.place("y")] == [0, 1]
    assert h.submit("c", follow="a") == []            # waits for engine 1
    assert_actions(h.lose(1), [Fail("y", ENGINE_ERROR), Fail("c", IMPOSSIBLE)])
    assert_actions(h.submit("d", follow="a"), [Fail("d", IMPOSSIBLE)])


def test_follow_and_after_combined() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert h.place("a") == 1
    h.finish("a", 1)
    assert h.place("b") == 0
    assert h.submit("c", follow="a", after="b") == []
    assert_actions(h.finish("b", 0), [Deliver("b", 0, 0, True), Dispatch("c", 1, 0)])


# ------------------------------------------------------------------------------------- targets

def test_targets_filter() -> None:
    h = Harness(hwm=1)
    h.join(0, 1, 2)
    assert h.place("a", targets={0}) == 0
    assert h.submit("b", targets={0}) == []
    assert h.place("c") == 2
    assert h.place("d", targets={0, 1}) == 1
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b", 0, 0)])


def test_targets_all_dead_is_impossible() -> None:
    h = Harness(hwm=1)
    h.join(0, 5)
    assert_actions(h.submit("t", targets={7, 8}), [Fail("t", IMPOSSIBLE)])
    assert h.place("x", targets={5}) == 5
    assert h.submit("u", targets={5}) == []
    assert_actions(h.lose(5), [Fail("x", ENGINE_ERROR), Fail("u", IMPOSSIBLE)])


def test_targets_impossible_detected_when_first_engine_joins() -> None:
    h = Harness(hwm=1)
    assert h.submit("t", targets={7}) == []           # no live engine: waits
    assert_actions(h.join(0), [Fail("t", IMPOSSIBLE)])


def test_follow_engine_dead_detected_when_first_engine_joins() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("a")
    h.finish("a", 0)
    h.lose(0)
    assert h.submit("b", follow="a") == []            # no live engine: waits
    assert_actions(h.join(1), [Fail("b", IMPOSSIBLE)])


@pytest.mark.parametrize("targets", [{0}, {2}, {0, 2}])
def test_follow_with_targets_impossible_detected_when_first_engine_joins(targets: set) -> None:
    """follow needs dead engine 1; no live engine can ever take the task once engine 2 is up."""
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("a") == 1
    h.finish("a", 1)
    h.lose(1)
    h.lose(0)
    assert h.submit("t", follow="a", targets=targets) == []     # no live engine: waits
    assert_actions(h.join(2), [Fail("t", IMPOSSIBLE)])


def test_targets_all_dead_with_timeout_waits_for_new_engine() -> None:
    h = Harness(hwm=1)
    h.join(0)
    start = only_timer(h.submit("t", targets={5}, timeout_s=3.0, now=1.0))
    assert start.deadline == pytest.approx(4.0)
    assert_actions(h.join(5, now=2.0), [CancelTimer(start.token), Dispatch("t", 5, 0)])
    start2 = only_timer(h.submit("u", targets={6}, timeout_s=3.0, now=2.0))
    assert_actions(h.fire(start2.token, now=5.0), [Fail("u", TIMEOUT)])
