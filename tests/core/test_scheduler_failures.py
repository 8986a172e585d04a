"""TaskScheduler rules, part 2 (docs/core-api.md): when things go wrong — one test per rule, exact actions.

Covers unmet functional dependencies (blacklist), retries and their engine preference, engine loss,
DispatchFailed, stale reports, timeouts and timer tokens, abort, resubmit, purge (and bounded memory),
records, misuse and the introspection properties. Part 1 (placement) is test_scheduler_rules.py.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import pytest

from _core_helpers import Harness, assert_actions, only_timer
from sched_lab.core import (
    Cancel, CancelTimer, Deliver, Dependency, Dispatch, EngineJoined, Fail, Outcome, SchedulerMisuse,
    TaskScheduler, TaskSpec, TaskSubmitted,
)

IMPOSSIBLE = "ImpossibleDependency"
INVALID = "InvalidDependency"
TIMEOUT = "TaskTimeout"
ENGINE_ERROR = "EngineError"
ABORTED = "TaskAborted"


# ---------------------------------------------------------------------- unmet (functional deps)

def test_unmet_blacklists_and_goes_elsewhere() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("t") == 1
    assert h.unmet("t", 1) == [Dispatch("t", 0, 0)]       # same attempt number
    assert h.s.load(1) == 0 and h.s.load(0) == 1


def test_unmet_never_twice_same_engine() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert [h.place("t"), h.place("u")] == [1, 0]
    assert h.unmet("t", 1) == []                          # 1 is free but refused it; 0 is busy
    assert h.s.task_state("t") == "queued"
    assert h.submit("v") == [Dispatch("v", 1, 0)]         # t is older but cannot use engine 1
    assert_actions(h.finish("v", 1), [Deliver("v", 1, 0, True)])
    assert_actions(h.finish("u", 0), [Deliver("u", 0, 0, True), Dispatch("t", 0, 0)])


def test_unmet_everywhere_is_impossible_naming_engines() -> None:
    h = Harness(hwm=1)
    h.join("alpha", "beta")
    assert h.place("t") == "beta"
    assert h.unmet("t", "beta") == [Dispatch("t", "alpha", 0)]
    acts = h.unmet("t", "alpha")
    assert_actions(acts, [Fail("t", IMPOSSIBLE)])
    assert "alpha" in acts[0].message and "beta" in acts[0].message  # type: ignore[union-attr]


def test_unmet_everywhere_with_timeout_waits_for_new_engine() -> None:
    h = Harness(hwm=1)
    h.join("alpha")
    assert h.submit("t", timeout_s=5.0, now=0.0) == [Dispatch("t", "alpha", 0)]   # no timer: placed at once
    start = only_timer(h.unmet("t", "alpha", now=1.0))
    assert start.deadline == pytest.approx(6.0)
    assert_actions(h.join("beta", now=2.0), [CancelTimer(start.token), Dispatch("t", "beta", 0)])
    assert h.fire(start.token, now=6.0) == []


def test_unmet_everywhere_with_timeout_times_out_if_no_engine_comes() -> None:
    h = Harness(hwm=1)
    h.join("alpha")
    h.place("t", timeout_s=5.0)
    start = only_timer(h.unmet("t", "alpha", now=1.0))
    assert_actions(h.fire(start.token, now=6.0), [Fail("t", TIMEOUT)])


def test_unmet_does_not_use_retries() -> None:
    h = Harness(hwm=1)
    h.join(0, 1, 2)
    assert h.place("t", retries=1) == 2
    assert h.unmet("t", 2) == [Dispatch("t", 1, 0)]
    assert h.finish("t", 1, ok=False) == [Dispatch("t", 0, 1)]     # the one retry is still there
    assert_actions(h.finish("t", 0, attempt=1, ok=False), [Deliver("t", 0, 1, False)])


def test_unmet_without_retries_then_error_delivers() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    h.place("t")
    assert h.unmet("t", 1) == [Dispatch("t", 0, 0)]
    assert_actions(h.finish("t", 0, ok=False), [Deliver("t", 0, 0, False)])


# ---------------------------------------------------------------------------- retries and loss

def test_retry_after_error_prefers_untried_engine() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert [h.place("t", retries=1), h.place("u"), h.place("u2")] == [1, 0, 1]
    h.finish("u2", 1)
    # loads now 0:1, 1:0 after t fails: leastload alone would take 1, where t just failed
    assert h.finish("t", 1, ok=False) == [Dispatch("t", 0, 1)]


def test_retry_with_follow_any_prefers_untried_engine_where_follow_is_now_met() -> None:
    """follow=any(a, b): when t is retried, b has finished on another engine, which is untried."""
    h = Harness(hwm=0)
    h.join(0, 1, 2)
    assert h.place("a") == 2
    h.finish("a", 2)
    assert h.place("b") == 1
    assert h.place("t", follow=Dependency(["a", "b"], all=False), retries=1) == 2   # only 2 qualifies yet
    assert_actions(h.finish("b", 1), [Deliver("b", 1, 0, True)])
    assert h.finish("t", 2, ok=False) == [Dispatch("t", 1, 1)]     # 1 now satisfies follow; 2 failed


def test_retry_waits_for_a_busy_untried_engine() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert [h.place("t", retries=1), h.place("u")] == [1, 0]
    assert h.finish("t", 1, ok=False) == []
    assert h.s.task_state("t") == "queued"
    assert_actions(h.finish("u", 0), [Deliver("u", 0, 0, True), Dispatch("t", 0, 1)])


def test_retry_never_hangs_when_all_tried() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("t", retries=2)
    assert h.finish("t", 0, ok=False) == [Dispatch("t", 0, 1)]
    assert h.finish("t", 0, attempt=1, ok=False) == [Dispatch("t", 0, 2)]
    assert_actions(h.finish("t", 0, attempt=2, ok=False), [Deliver("t", 0, 2, False)])


def test_retry_falls_back_to_failed_engine_but_never_to_blacklisted() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("t", retries=1) == 1
    assert h.unmet("t", 1) == [Dispatch("t", 0, 0)]
    assert h.finish("t", 0, ok=False) == [Dispatch("t", 0, 1)]


def test_retry_then_success_delivers_ok() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    h.place("t", retries=3)
    assert h.finish("t", 1, ok=False) == [Dispatch("t", 0, 1)]
    assert_actions(h.finish("t", 0, attempt=1), [Deliver("t", 0, 1, True)])


def test_engine_lost_retries_in_flight_task() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("t", retries=1) == 1
    assert h.lose(1) == [Dispatch("t", 0, 1)]
    assert h.s.engine_ids == [0]


def test_engine_lost_without_retries_fails_engine_error_at_once() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert h.place("t") == 1
    h.place("u")
    assert h.place("v", retries=1) == 1
    assert_actions(h.lose(1), [Fail("t", ENGINE_ERROR), Dispatch("v", 0, 1)])
    assert h.s.task_state("t") == "done"


def test_engine_lost_with_no_engine_left_retry_waits() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("t", retries=1)
    assert h.lose(0) == []
    assert h.s.task_state("t") == "queued"
    assert h.join(1) == [Dispatch("t", 1, 1)]


def test_dispatch_failed_counts_as_lost_attempt() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("t", retries=1) == 1
    assert h.dispatch_failed("t", 1) == [Dispatch("t", 0, 1)]
    assert h.s.load(1) == 0
    assert_actions(h.dispatch_failed("t", 0, attempt=1), [Fail("t", ENGINE_ERROR)])


def test_stale_finish_after_engine_lost_ignored() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    h.place("t", retries=1)
    assert h.lose(1) == [Dispatch("t", 0, 1)]
    assert h.finish("t", 1, attempt=0) == []
    assert h.unmet("t", 1, attempt=0) == []
    assert h.finish("t", 0, attempt=0) == []             # right engine, wrong attempt
    assert h.s.task_state("t") == "running"
    assert_actions(h.finish("t", 0, attempt=1), [Deliver("t", 0, 1, True)])
    assert h.finish("t", 0, attempt=1) == []             # a duplicate report
    assert h.finish("ghost", 0) == []                    # never submitted


# ---------------------------------------------------------------------------- timeouts, timers

def test_timeout_only_while_waiting() -> None:
    h = Harness(hwm=1)
    h.join(0)
    assert h.submit("run", timeout_s=0.5, now=0.0) == [Dispatch("run", 0, 0)]   # placed: no timer
    start = only_timer(h.submit("t", timeout_s=2.0, now=1.0))
    assert start.deadline == pytest.approx(3.0)
    assert_actions(h.fire(start.token, now=3.0), [Fail("t", TIMEOUT)])
    assert h.s.task_state("t") == "done"
    assert_actions(h.finish("run", 0, now=100.0), [Deliver("run", 0, 0, True)])  # never timed out


def test_timer_cancelled_when_task_dispatched() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    start = only_timer(h.submit("t", timeout_s=2.0, now=0.0))
    assert_actions(h.finish("u", 0, now=1.0), [Deliver("u", 0, 0, True), CancelTimer(start.token),
                                               Dispatch("t", 0, 0)])
    assert h.fire(start.token, now=2.0) == []


def test_stale_timer_token_ignored() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    start = only_timer(h.submit("t", timeout_s=2.0, now=0.0))
    h.finish("u", 0, now=1.0)
    h.finish("t", 0, now=1.5)
    assert h.fire(start.token, now=2.0) == []
    assert h.fire(start.token + 12345, now=2.0) == []
    assert h.s.task_state("t") == "done"


def test_retry_that_has_to_wait_arms_the_timeout() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.submit("t", retries=1, timeout_s=2.0, now=0.0) == [Dispatch("t", 1, 0)]   # placed: no timer
    assert h.place("u") == 0
    start = only_timer(h.finish("t", 1, ok=False, now=5.0))        # waits for untried engine 0
    assert start.deadline == pytest.approx(7.0)
    assert_actions(h.finish("u", 0, now=6.0), [Deliver("u", 0, 0, True), CancelTimer(start.token),
                                               Dispatch("t", 0, 1)])


def test_timer_tokens_are_distinct() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    tokens = [only_timer(h.submit(i, timeout_s=1.0 + i)).token for i in range(5)]
    assert len(set(tokens)) == 5
    assert_actions(h.fire(tokens[2], now=3.0), [Fail(2, TIMEOUT)])
    assert h.s.task_state(1) == "queued"


def test_timeout_while_waiting_for_after() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    start = only_timer(h.submit("b", after="a", timeout_s=1.0, now=0.0))
    assert_actions(h.fire(start.token, now=1.0), [Fail("b", TIMEOUT)])
    assert_actions(h.finish("a", 0, now=2.0), [Deliver("a", 0, 0, True)])


# ------------------------------------------------------------------------------ abort, resubmit

def test_abort_queued_task() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    assert h.submit("t") == []
    assert h.submit("d", after="t") == []
    assert_actions(h.abort("t"), [Fail("t", ABORTED), Fail("d", IMPOSSIBLE)])
    assert h.s.task_state("t") == "done"
    assert_actions(h.finish("u", 0), [Deliver("u", 0, 0, True)])    # nothing left to run


def test_abort_queued_task_with_timeout_never_times_out() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    start = only_timer(h.submit("t", timeout_s=1.0))
    acts = h.abort("t")
    # a CancelTimer for its token is welcome but optional: a stale firing is ignored anyway
    assert all(a == CancelTimer(start.token) for a in acts if isinstance(a, CancelTimer))
    assert_actions([a for a in acts if not isinstance(a, CancelTimer)], [Fail("t", ABORTED)])
    assert h.fire(start.token, now=5.0) == []


def test_abort_running_emits_cancel() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("u")
    assert h.abort("u") == [Cancel("u", 0, 0)]
    assert h.s.task_state("u") == "running"
    assert_actions(h.finish("u", 0, ok=False, error_name=ABORTED, outcome=Outcome.ABORTED), [Deliver("u", 0, 0, False)])


def test_resubmit_reruns_with_same_flags_and_ignores_purged_deps() -> None:
    h = Harness(hwm=0)
    h.join(0, 1)
    assert h.place("a") == 1
    h.finish("a", 1)
    assert h.place("b", after="a", targets={0}, label="L", retries=1) == 0
    h.finish("b", 0)
    h.s.records.drain()
    assert h.purge(("a",)) == []
    assert h.s.task_state("a") is None
    assert h.resubmit("b2", after="a", targets={0}, label="L", retries=1) == [Dispatch("b2", 0, 0)]
    assert h.finish("b2", 0, ok=False) == [Dispatch("b2", 0, 1)]          # retries carried over
    (rec,) = h.s.records.drain()
    assert rec.task_id == "b2" and rec.label == "L" and rec.outcome is Outcome.ERROR


def test_resubmit_waits_for_known_unfinished_deps() -> None:
    h = Harness(hwm=0)
    h.join(0)
    h.place("a")
    h.place("b")
    h.finish("b", 0)
    assert h.resubmit("b2", after="a") == []
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b2", 0, 0)])


# -------------------------------------------------------------------------------- purge, memory

def test_purge_frees_memory() -> None:
    h = Harness(hwm=0)
    h.join(0)
    for i in range(10):
        h.place(i)
        h.finish(i, 0)
    h.place("running")
    assert h.s.known_task_count == 11
    assert h.purge((0, 1)) == []
    assert h.s.known_task_count == 9 and h.s.task_state(0) is None and h.s.task_state(2) == "done"
    assert_actions(h.submit("x", after=0), [Fail("x", INVALID)])
    assert_actions(h.submit("y", follow=1), [Fail("y", INVALID)])
    assert h.purge() == []
    assert h.s.known_task_count == 1                  # only the running task is kept
    assert h.s.task_state("running") == "running"
    assert_actions(h.submit("z", after=5), [Fail("z", INVALID)])
    assert_actions(h.finish("running", 0), [Deliver("running", 0, 0, True)])


def test_purge_keeps_waiting_tasks() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("a")
    h.submit("b")
    h.purge()
    assert h.s.task_state("b") == "queued" and h.s.task_state("a") == "running"
    assert_actions(h.finish("a", 0), [Deliver("a", 0, 0, True), Dispatch("b", 0, 0)])


def test_purge_keeps_outcomes_a_waiting_follow_needs() -> None:
    """docs/core-api.md: a purge keeps the outcomes an unfinished task's `follow` names, until it finishes."""
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.place("a") == 1
    h.finish("a", 1)
    assert h.place("busy", targets={1}) == 1
    assert h.submit("f", follow="a") == []
    assert h.purge() == []
    assert_actions(h.finish("busy", 1), [Deliver("busy", 1, 0, True), Dispatch("f", 1, 0)])
    h.finish("f", 1)
    assert h.purge() == []
    assert h.s.known_task_count == 0 and h.s.task_state("a") is None


class _NullSink:
    def add(self, *fields: Any) -> None:
        pass


def _cycle(s: TaskScheduler, start: int, n: int, engines: int) -> None:
    from sched_lab.core import PurgeRequested, TaskFinished
    for i in range(start, start + n):
        deps = {"after": i - 1, "follow": i - 2} if i - 2 >= start else {}
        (d,) = s.handle(TaskSubmitted(float(i), TaskSpec(i, timeout_s=5.0, **deps)))
        s.handle(TaskFinished(float(i), i, d.engine_id, 0, Outcome.OK))
    s.handle(PurgeRequested(float(start + n)))


def test_purged_memory_stays_bounded() -> None:
    """Many submit/finish/purge rounds: the scheduler's memory does not grow with tasks seen."""
    import random
    s = TaskScheduler("leastload", hwm=1, rng=random.Random(1), records=_NullSink())
    for e in range(8):
        s.handle(EngineJoined(0.0, e))
    _cycle(s, 0, 3000, 8)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for r in range(1, 6):
            _cycle(s, r * 3000, 3000, 8)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert s.known_task_count == 0
    assert grown < 150_000, f"{grown} bytes kept after purging 15,000 tasks"


# ---------------------------------------------------------------------------------- records

def test_record_per_attempt() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    assert h.submit("t", retries=1, label="lab", now=1.0) == [Dispatch("t", 1, 0)]
    assert h.finish("t", 1, ok=False, error_name="ValueError", now=3.0, started_at=2.0) == [Dispatch("t", 0, 1)]
    assert_actions(h.finish("t", 0, attempt=1, now=5.0, started_at=4.0), [Deliver("t", 0, 1, True)])
    r0, r1 = h.s.records.drain()
    assert (r0.task_id, r0.attempt, r0.engine_id, r0.submitted_at, r0.dispatched_at, r0.started_at,
            r0.finished_at, r0.outcome, r0.error_name, r0.engine_load, r0.scheme, r0.label) == \
        ("t", 0, 1, 1.0, 1.0, 2.0, 3.0, Outcome.ERROR, "ValueError", 0, "leastload", "lab")
    assert (r1.task_id, r1.attempt, r1.engine_id, r1.submitted_at, r1.dispatched_at, r1.started_at,
            r1.finished_at, r1.outcome, r1.error_name, r1.engine_load) == \
        ("t", 1, 0, 1.0, 3.0, 4.0, 5.0, Outcome.OK, None, 0)
    assert isinstance(r0.queue_len, int) and r0.queue_len >= 0


def test_record_queue_len_and_engine_load_at_dispatch() -> None:
    h = Harness(hwm=2)
    h.join(0)
    h.place("a", now=0.0)
    h.place("b", now=0.0)
    for t in "cde":
        h.submit(t, now=0.0)
    h.finish("a", 0, now=1.0)                             # c dispatched with d, e still waiting
    h.finish("c", 0, now=2.0)
    recs = {r.task_id: r for r in h.s.records.drain()}
    assert recs["a"].engine_load == 0 and recs["a"].queue_len == 0
    assert recs["c"].engine_load == 1                     # b was outstanding on engine 0
    assert recs["c"].queue_len in (2, 3)                  # d and e waited (c itself, if counted)
    assert recs["c"].submitted_at == 0.0 and recs["c"].dispatched_at == 1.0


def test_records_for_unmet_lost_and_scheduler_failures() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    h.place("t", retries=1, now=0.0)                      # -> 1
    h.unmet("t", 1, now=1.0)                              # -> 0, attempt 0 again
    # engine 0 dies: the retry may not go to 1 (blacklisted), the only live engine: impossible
    assert_actions(h.lose(0, now=2.0), [Fail("t", IMPOSSIBLE)])
    h.submit("bad", after="ghost", now=3.0)
    h.place("busy", now=3.0)
    start = only_timer(h.submit("slow", timeout_s=1.0, now=3.0))
    h.fire(start.token, now=4.0)
    h.submit("queued", now=4.5)
    h.abort("queued", now=5.0)
    recs = h.s.records.drain()
    got = [(r.task_id, r.attempt, r.engine_id, r.outcome) for r in recs]
    assert ("t", 0, 1, Outcome.UNMET) in got
    assert ("t", 0, 0, Outcome.ENGINE_LOST) in got
    assert ("bad", 0, None, Outcome.INVALID) in got
    assert ("slow", 0, None, Outcome.TIMEOUT) in got
    assert ("queued", 0, None, Outcome.ABORTED) in got
    assert [r.outcome for r in recs if r.task_id == "t"].count(Outcome.IMPOSSIBLE) == 1
    by = {(r.task_id, r.outcome): r for r in recs}
    slow = by[("slow", Outcome.TIMEOUT)]
    assert slow.dispatched_at is None and slow.finished_at == 4.0 and slow.submitted_at == 3.0
    assert slow.error_name == TIMEOUT
    assert by[("bad", Outcome.INVALID)].error_name == INVALID
    assert by[("queued", Outcome.ABORTED)].error_name == ABORTED
    assert len(recs) == 6


def test_record_for_impossible() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.submit("x", targets={9}, now=2.0)
    (r,) = h.s.records.drain()
    assert (r.task_id, r.engine_id, r.outcome, r.error_name, r.finished_at) == \
        ("x", None, Outcome.IMPOSSIBLE, IMPOSSIBLE, 2.0)


def test_rescan_skips_a_queued_task_that_failed_with_an_earlier_one() -> None:
    """Engines come back after none was left: the rescan finds "a" impossible, which makes "b" (queued, following
    "a" or "x", which failed on no engine) impossible too; the rescan then reaches "b", ended, and leaves it (it
    used to fail it a second time: SchedulerMisuse 'done -> done', found by test_invariants.py)."""
    h = Harness(hwm=0)
    h.join(0)
    assert h.place("x") == 0
    assert_actions(h.lose(0), [Fail("x", ENGINE_ERROR)])
    assert h.submit("a", targets={0}) == []                 # no engine at all: queued
    assert h.submit("b", targets={0}, follow=Dependency(["x", "a"], all=False, success=True, failure=True)) == []
    assert_actions(h.join(1), [Fail("a", IMPOSSIBLE), Fail("b", IMPOSSIBLE)])
    assert h.s.task_state("b") == "done" and h.s.waiting_count == 0


# ------------------------------------------------------------------------ misuse, introspection

def test_duplicate_task_id_is_misuse() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("t")
    with pytest.raises(SchedulerMisuse):
        h.submit("t")
    assert issubclass(SchedulerMisuse, ValueError)


def test_duplicate_engine_join_is_misuse() -> None:
    h = Harness()
    h.join(0)
    with pytest.raises(SchedulerMisuse):
        h.join(0)


def test_unknown_event_is_misuse() -> None:
    with pytest.raises(SchedulerMisuse):
        Harness().handle(object())


def test_introspection() -> None:
    h = Harness("lru", hwm=1)
    assert h.s.scheme_name == "lru" and h.s.hwm == 1
    h.join("a", "b")
    assert sorted(h.s.engine_ids) == ["a", "b"]
    h.place(1)
    h.place(2)
    h.submit(3)
    assert (h.s.running_count, h.s.waiting_count, h.s.known_task_count) == (2, 1, 3)
    assert h.s.queue_status() == {"a": 1, "b": 1, "unassigned": 1}
    assert h.s.task_state(99) is None
    h.lose("a")
    assert h.s.engine_ids == ["b"]
