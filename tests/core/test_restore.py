"""TaskRestored: a fresh scheduler rebuilt from what a previous run left (core/restore.py).

Finished tasks are remembered with their real outcome, so dependents are judged as they would have been
without the restart; unfinished ones queue again with the attempts they had used (or fail EngineError
when the lost attempt was their last); restoring twice is misuse."""

from __future__ import annotations

import pytest
from _core_helpers import Harness, assert_actions

from sched_lab.core import (
    ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, Deliver, Dispatch, Fail, Outcome, SchedulerMisuse, TaskRestored, TaskSpec,
)
from sched_lab.core.dependency import Dependency


def restore(h: Harness, task_id, succeeded=None, attempts_used=0, engine_id=None, **flags):
    return h.handle(TaskRestored(h.now, TaskSpec(task_id, **flags), succeeded, attempts_used, engine_id))


def test_a_failed_after_dependency_from_before_the_restart_fails_the_dependent():
    h = Harness()
    assert restore(h, "dep", succeeded=False, engine_id=0) == []
    acts = restore(h, "t", after=["dep"])
    assert_actions(acts, [Fail("t", IMPOSSIBLE_DEPENDENCY, "")])


def test_the_same_rule_without_a_restart():
    h = Harness()
    h.join(0)
    h.place("dep")
    h.finish("dep", 0, ok=False)
    assert_actions(h.submit("t", after=["dep"]), [Fail("t", IMPOSSIBLE_DEPENDENCY, "")])


def test_failure_only_after_dependency_is_met_by_a_restored_failure():
    h = Harness()
    h.join(0)
    restore(h, "dep", succeeded=False, engine_id=0)
    acts = restore(h, "t", after=Dependency(["dep"], success=False, failure=True))
    assert acts == [Dispatch("t", 0, 0)]


def test_a_succeeded_dependency_is_met_and_follow_uses_its_engine():
    h = Harness()
    h.join(0, 1)
    restore(h, "dep", succeeded=True, engine_id=1)
    assert restore(h, "t", after=["dep"], follow=["dep"]) == [Dispatch("t", 1, 0)]


def test_an_unknown_dependency_counts_as_met_as_for_a_resubmission():
    h = Harness()
    h.join(0)
    assert restore(h, "t", after=["purged-long-ago"]) == [Dispatch("t", 0, 0)]


def test_a_restored_waiting_task_waits_for_a_restored_unfinished_dependency():
    h = Harness()
    restore(h, "dep")
    restore(h, "t", after=["dep"])
    h.join(0)
    assert h.log[-1] == Dispatch("dep", 0, 0)
    acts = h.finish("dep", 0, ok=False)
    assert_actions(acts, [Deliver("dep", 0, 0, False), Fail("t", IMPOSSIBLE_DEPENDENCY, "")])


def test_used_attempts_are_not_granted_again():
    h = Harness()
    h.join(0)
    assert restore(h, "t", attempts_used=1, retries=1) == [Dispatch("t", 0, 1)]     # its one retry
    acts = h.finish("t", 0, attempt=1, ok=False)
    assert acts == [Deliver("t", 0, 1, False)]                                     # and no more


def test_a_task_whose_lost_attempt_was_its_last_fails_engine_error_in_the_core():
    h = Harness()
    acts = restore(h, "t", attempts_used=2, retries=1)
    assert_actions(acts, [Fail("t", ENGINE_ERROR, "")])
    assert "no retries left" in acts[0].message
    (rec,) = h.s.records.records
    assert (rec.attempt, rec.outcome, rec.engine_id) == (1, Outcome.ENGINE_LOST, None)     # the lost attempt
    assert h.s.task_state("t") == "done"


def test_a_never_dispatched_task_keeps_all_its_retries():
    h = Harness()
    h.join(0)
    assert restore(h, "t", attempts_used=0, retries=2) == [Dispatch("t", 0, 0)]
    assert h.finish("t", 0, attempt=0, ok=False) == [Dispatch("t", 0, 1)]


def test_restoring_a_known_id_is_misuse():
    h = Harness()
    restore(h, "a", succeeded=True)
    with pytest.raises(SchedulerMisuse):
        restore(h, "a")
    h.submit("b")
    with pytest.raises(SchedulerMisuse):
        restore(h, "b", succeeded=True)


@pytest.mark.parametrize("kwargs", [{"succeeded": 1}, {"attempts_used": -1}, {"attempts_used": 1.0}])
def test_bad_restored_events_are_refused(kwargs):
    with pytest.raises(ValueError):
        TaskRestored(0.0, TaskSpec("t"), **kwargs)
    with pytest.raises(TypeError):
        TaskRestored(0.0, "t")
