"""TaskScheduler rules for engines made of a nanny and a worker (issue 10, DESIGN §5), exact actions:
a worker's death (WorkerDied) loses the attempt but not the engine; a time limit (Outcome.TIME_LIMIT)
retries like an error; a task the client aborted while it ran is never retried."""

from __future__ import annotations

import pytest

from _core_helpers import Harness, assert_actions
from sched_lab.core import (
    ENGINE_ERROR, TIME_LIMIT_EXCEEDED, Cancel, Deliver, Dispatch, Fail, Outcome, TaskSpec, WorkerDied,
)


def died(h: Harness, task_id, engine, attempt: int = 0, reason: str = "killed by SIGKILL") -> list:
    return h.handle(WorkerDied(h.now, task_id, engine, attempt, reason))


def outcomes(h: Harness, task_id) -> list[str]:
    return [str(r.outcome) for r in h.s.records.records if r.task_id == task_id]


def test_worker_death_fails_with_engine_error_naming_the_reason_and_the_engine_stays() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("t")
    assert h.submit("u") == []                            # queued behind t
    acts = died(h, "t", 0, reason="the worker used 300 bytes, over the memory limit of 200 bytes")
    assert_actions(acts, [Fail("t", ENGINE_ERROR), Dispatch("u", 0, 0)])   # engine 0 serves the next task
    fail = next(a for a in acts if isinstance(a, Fail))
    assert "memory limit of 200 bytes" in fail.message and "worker" in fail.message
    assert h.s.engine_ids == [0] and outcomes(h, "t") == ["worker_lost"]


def test_worker_death_is_retried_preferring_another_engine() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    first = h.place("t", retries=1)
    assert died(h, "t", first) == [Dispatch("t", 1 - first, 1)]
    assert_actions(h.finish("t", 1 - first, attempt=1), [Deliver("t", 1 - first, 1, True)])
    assert outcomes(h, "t") == ["worker_lost", "ok"]


def test_stale_worker_death_reports_are_ignored() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    e = h.place("t", retries=2)
    assert died(h, "t", e, attempt=1) == []               # not the running attempt
    assert died(h, "t", 1 - e) == []                      # not its engine
    assert died(h, "nope", e) == []                       # unknown task
    assert h.s.task_state("t") == "running"


def test_time_limit_is_retried_like_an_error_and_then_delivered() -> None:
    h = Harness(hwm=1)
    h.join(0)
    h.place("t", retries=1, time_limit_s=2.0)
    assert h.finish("t", 0, ok=False, error_name=TIME_LIMIT_EXCEEDED, outcome=Outcome.TIME_LIMIT) == \
        [Dispatch("t", 0, 1)]
    assert_actions(h.finish("t", 0, attempt=1, ok=False, error_name=TIME_LIMIT_EXCEEDED, outcome=Outcome.TIME_LIMIT),
                   [Deliver("t", 0, 1, False)])
    assert outcomes(h, "t") == ["time_limit", "time_limit"]
    assert [r.error_name for r in h.s.records.records if r.task_id == "t"] == [TIME_LIMIT_EXCEEDED] * 2


def test_abort_of_a_running_task_is_not_retried() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    e = h.place("t", retries=3)
    assert h.abort("t") == [Cancel("t", e, 0)]
    assert_actions(h.finish("t", e, ok=False, error_name="TaskAborted", outcome=Outcome.ABORTED),
                   [Deliver("t", e, 0, False)])
    assert h.s.task_state("t") == "done"


def test_abort_then_worker_death_is_not_retried_either() -> None:
    h = Harness(hwm=1)
    h.join(0, 1)
    e = h.place("t", retries=3)
    h.abort("t")
    assert_actions(died(h, "t", e), [Fail("t", ENGINE_ERROR)])


def test_time_limit_is_validated_and_kept_on_resubmit() -> None:
    assert TaskSpec("t", time_limit_s=1).time_limit_s == 1.0
    for bad in (0, -1, float("nan"), "1", True):
        with pytest.raises((TypeError, ValueError)):
            TaskSpec("t", time_limit_s=bad)
    h = Harness(hwm=1)
    h.join(0)
    h.place("a")
    h.finish("a", 0)
    h.place("t", after="a", time_limit_s=5.0)
    assert h.s._tasks["t"].spec.time_limit_s == 5.0       # rebuilt specs keep it (_replace_deps)
