"""TaskRestored: a fresh scheduler rebuilt from what a previous run left (core/restore.py).

Finished tasks are remembered with their real outcome, so dependents are judged as they would have been
without the restart; unfinished ones queue again with the attempts they had used (or fail EngineError
when the lost attempt was their last); restoring twice is misuse."""

from __future__ import annotations

import pytest
from _core_helpers import Harness, assert_actions

from sched_lab.core import (
    ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, Deliver, Dispatch, Fail, Outcome, SchedulerMisuse, TaskRestored, TaskSpec,
    TaskSubmitted, WorkerDied,
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


# --------------------------------------------------------------- restored == as if the engines had died
# Property: a scheduler restored from a snapshot (finished outcomes, unfinished tasks with their attempts)
# ends every task as the original would have had the attempts that were out died (WorkerDied), even when
# some of its own failures were not in the snapshot (their write was lost with the controller).

def _history(seed: int):
    """Random tasks (after-dependencies with random flags, retries) and a fixed outcome per (task, attempt)."""
    import random
    rnd = random.Random(seed)
    specs = []
    for i in range(14):
        deps = rnd.sample(range(i), k=min(i, rnd.choice((0, 0, 1, 2))))
        success, failure = rnd.choice(((True, False), (True, False), (False, True), (True, True)))
        after = Dependency([f"t{d}" for d in deps], all=rnd.random() < 0.7, success=success,
                           failure=failure) if deps else None
        specs.append(TaskSpec(f"t{i}", after=after, retries=rnd.choice((0, 1, 2))))
    ok = {(s.task_id, a): rnd.random() < 0.6 for s in specs for a in range(3)}
    return specs, ok, rnd.randrange(1, 20)


def _drive(h: Harness, ok: dict, pending: list, limit: int | None = None) -> int:
    """Finish dispatched attempts in order with their fixed outcomes (at most `limit`); returns how many."""
    done = 0
    while pending and (limit is None or done < limit):
        d = pending.pop(0)
        acts = h.finish(d.task_id, d.engine_id, attempt=d.attempt, ok=ok[(d.task_id, d.attempt)])
        pending += [a for a in acts if isinstance(a, Dispatch)]
        done += 1
    return done


def _finals(actions) -> dict:
    out = {}
    for a in actions:
        if isinstance(a, Deliver):
            out[a.task_id] = "ok" if a.ok else "raised"
        elif isinstance(a, Fail):
            out[a.task_id] = a.error_name
    return out


@pytest.mark.parametrize("seed", range(60))
def test_a_restored_scheduler_ends_every_task_as_if_its_engines_had_died(seed):
    specs, ok, cut = _history(seed)

    # A: run until the cut, then the controller "dies": snapshot what a task database would hold
    a = Harness()
    pending = a.join(0, 1)
    for s in specs:
        pending += [x for x in a.handle(TaskSubmitted(a.now, s)) if isinstance(x, Dispatch)]
    _drive(a, ok, pending, cut)
    finals = _finals(a.log)
    attempts = {}
    for x in a.log:
        if isinstance(x, Dispatch):
            attempts[x.task_id] = x.attempt + 1
    running = [(x.task_id, x.engine_id, x.attempt) for x in pending]
    # C (the oracle): the same scheduler goes on as if the running attempts' workers had died
    c_pending = []
    for tid, eng, att in running:
        c_pending += [x for x in a.handle(WorkerDied(a.now, tid, eng, att, "gone")) if isinstance(x, Dispatch)]
    pending[:] = []
    _drive(a, ok, c_pending)
    oracle = _finals(a.log)
    # B: a fresh scheduler restored from the snapshot, its engines joining afterwards. Some failures the
    # scheduler itself made (ImpossibleDependency) lost their final write in the crash: B must decide them again.
    import random
    lose = random.Random(seed)
    for tid in sorted(finals):
        if finals[tid] == IMPOSSIBLE_DEPENDENCY and lose.random() < 0.5:
            del finals[tid]
    b = Harness()
    by_id = {s.task_id: s for s in specs}
    for tid, how in finals.items():
        restore(b, tid, succeeded=how == "ok", engine_id=0)
    b_log_start = len(b.log)
    for s in specs:
        if s.task_id not in finals:
            b.handle(TaskRestored(b.now, by_id[s.task_id], None, attempts.get(s.task_id, 0)))
    b_pending = [x for x in b.join(0, 1) if isinstance(x, Dispatch)]
    _drive(b, ok, b_pending)
    restored = {**finals, **_finals(b.log[b_log_start:])}
    assert restored == oracle
    assert set(restored) == {s.task_id for s in specs}

