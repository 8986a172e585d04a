"""Actors in the core (docs/core-api.md, "Actors and direct tasks"): creation placed by the scheme and
pinning a slot, calls FIFO per actor under max_concurrency and outside the hwm, deaths by engine loss,
worker restart and a call's lost worker, restarts and per-call retries with counts, kill, queries."""

from __future__ import annotations

import pytest

from sched_lab.core import (
    ACTOR_DIED_ERROR, ActorKillRequested, ActorSpec, ActorState, Cancel, Deliver, Dispatch, DropActor, EngineLost,
    EventPump, Fail, Outcome, TaskSpec, WorkerDied, WorkerRestarted, ACTION_TYPES,
)
from sched_lab.core.dependency import Dependency

from _core_helpers import Harness


def make_actor(h: Harness, aid: str = "A", ctid: str = "c", **opts: object) -> str:
    """Create actor `aid` (its creation task `ctid`) and finish the creation OK; return its engine."""
    flags = {k: opts.pop(k) for k in ("targets", "follow", "after", "retries") if k in opts}
    acts = h.submit(ctid, creates_actor=ActorSpec(aid, **opts), **flags)   # type: ignore[arg-type]
    (d,) = [a for a in acts if isinstance(a, Dispatch)]
    h.finish(ctid, d.engine_id, d.attempt)
    return d.engine_id


def call(h: Harness, tid: str, aid: str = "A", **flags: object) -> list:
    return h.submit(tid, actor_id=aid, **flags)


def restarted(h: Harness, engine: str, now: float | None = None) -> list:
    return h.handle(WorkerRestarted(h._at(now), engine, "test"))


def kill(h: Harness, aid: str = "A") -> list:
    return h.handle(ActorKillRequested(h.now, aid))


def fails(acts: list, tid: str) -> list[str]:
    return [a.error_name for a in acts if isinstance(a, Fail) and a.task_id == tid]


# ------------------------------------------------------------------------------- creation, slots

def test_creation_is_placed_by_the_scheme_and_pins_its_slot():
    h = Harness(hwm=1)
    h.join("a", "b")
    acts = h.submit("c", creates_actor=ActorSpec("A"))
    assert acts == [Dispatch("c", "b", 0)]             # leastload, ties to LRU: the newest joined
    assert h.s.actor("A").state == ActorState.PENDING and h.s.actor_role("c").role == "create"
    assert h.finish("c", "b") == [Deliver("c", "b", 0, True)]
    info = h.s.actor("A")
    assert (info.state, info.engine_id, info.incarnation) == (ActorState.ALIVE, "b", 1)
    assert h.s.load("b") == 1 and h.s.queue_status() == {"a": 0, "b": 1, "unassigned": 0}
    assert h.submit("t1") == [Dispatch("t1", "a", 0)]  # b is at hwm: its slot is the actor's
    assert h.submit("t2") == []                         # both full: waits
    assert h.s.task_state("t2") == "queued"


def test_held_by_actors_counts_tasks_no_engine_will_make_room_for():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert h.s.held_by_actors() == 0                    # nothing waits
    make_actor(h, "A", "ca")
    h.submit("t1")                                      # runs on the other engine: its end frees a slot
    h.submit("t2")
    assert h.s.task_state("t2") == "queued" and h.s.held_by_actors() == 0
    h.submit("cb", creates_actor=ActorSpec("B"))        # waits for t1's slot
    call(h, "m", "A")                                   # out on A's slot (a call adds no load) ...
    call(h, "m2", "A")                                  # ... and one queued behind it: calls wait for their actor,
    assert h.s.task_state("m2") == "queued" and h.s.held_by_actors() == 0   # not for a slot: never counted
    assert Dispatch("t2", "a", 0) in h.finish("t1", "a")    # the queue's oldest first
    assert Dispatch("cb", "a", 0) in h.finish("t2", "a")
    h.submit("t3")
    h.submit("t4")
    assert h.s.held_by_actors() == 0                    # B's creation is out: its end is news
    h.finish("cb", "a")                                 # B pins a's slot: both engines are the actors' alone
    assert h.s.actors_hold_every_engine() and h.s.held_by_actors() == 2    # t3 and t4, not the call m2
    h.submit("tt", targets=["a", "b"])                  # queued once per engine it may use: counted once
    assert h.s.held_by_actors() == 3
    h.abort("tt")
    assert h.s.held_by_actors() == 2                    # (its entries are dead now)
    h.submit("d", direct=True, targets="a")             # a direct task adds load that will end
    assert h.s.held_by_actors() == 0
    h.finish("d", "a")
    assert h.s.held_by_actors() == 2
    acts = kill(h, "B")                                 # a's slot is free again: t3 takes it
    assert Dispatch("t3", "a", 0) in acts and h.s.held_by_actors() == 0
    h.join("c")
    assert h.s.task_state("t4") == "running" and h.s.held_by_actors() == 0
    h0 = Harness(hwm=0)                                 # no hwm: an actor's engine still takes tasks
    h0.join("a")
    make_actor(h0)
    h0.submit("t")
    assert h0.s.held_by_actors() == 0 and h0.s.task_state("t") == "running"
    h2 = Harness(hwm=2)                                 # two slots: one actor leaves one
    h2.join("a")
    make_actor(h2, "A", "ca")
    make_actor(h2, "B", "cb")
    h2.submit("t")
    assert h2.s.held_by_actors() == 1
    assert Harness(hwm=1).s.held_by_actors() == 0       # no engine: not the actors' doing
    h1 = Harness(hwm=1)
    h1.join("a")
    make_actor(h1)
    assert h1.s.actors_hold_every_engine() and h1.s.held_by_actors() == 0     # held, but nothing waits


def test_creation_honours_targets_and_follow():
    h = Harness(hwm=0)
    h.join("a", "b", "c")
    assert make_actor(h, "A", "c1", targets={"a"}) == "a"
    h.place("x")
    where = h.where["x"]
    h.finish("x", where)
    assert make_actor(h, "B", "c2", follow=Dependency(["x"])) == where


def test_a_failed_creation_makes_the_actor_dead_and_its_calls_fail():
    h = Harness()
    h.join("a")
    h.submit("c", creates_actor=ActorSpec("A"))
    assert call(h, "m1") == []
    acts = h.finish("c", "a", ok=False)
    assert Deliver("c", "a", 0, False) in acts and fails(acts, "m1") == [ACTOR_DIED_ERROR]
    assert h.s.actor("A").state == ActorState.DEAD and h.s.load("a") == 0
    assert fails(call(h, "m2"), "m2") == [ACTOR_DIED_ERROR]


def test_creation_retries_apply_before_the_actor_exists():
    h = Harness()
    h.join("a", "b")
    h.submit("c", creates_actor=ActorSpec("A"), retries=1)
    acts = h.finish("c", "b", ok=False)
    assert acts == [Dispatch("c", "a", 1)]
    h.finish("c", "a", 1)
    assert h.s.actor("A").state == ActorState.ALIVE and h.s.actor("A").engine_id == "a"


# ---------------------------------------------------------------------------------- calls

def test_calls_wait_for_the_actor_then_run_fifo_one_at_a_time():
    h = Harness(hwm=1)
    h.join("a")
    h.submit("c", creates_actor=ActorSpec("A"))
    for i in range(3):
        assert call(h, f"m{i}") == []
    assert h.s.actor("A").calls_queued == 3 and h.s.waiting_count == 3
    assert h.finish("c", "a") == [Deliver("c", "a", 0, True), Dispatch("m0", "a", 0)]
    assert h.finish("m0", "a") == [Deliver("m0", "a", 0, True), Dispatch("m1", "a", 0)]
    assert h.s.load("a") == 1                           # calls add no load: the slot is the actor's
    assert h.s.actor_role("m1").incarnation == 1
    assert h.finish("m1", "a") == [Deliver("m1", "a", 0, True), Dispatch("m2", "a", 0)]


def test_max_concurrency_bounds_the_calls_out_and_keeps_submission_order():
    h = Harness(hwm=1)
    h.join("a")
    make_actor(h, max_concurrency=2)
    acts = []
    for i in range(5):
        acts += call(h, f"m{i}")
    assert acts == [Dispatch("m0", "a", 0), Dispatch("m1", "a", 0)]
    assert h.s.actor("A").calls_out == 2 and h.s.actor("A").calls_queued == 3
    assert h.finish("m1", "a")[1:] == [Dispatch("m2", "a", 0)]
    assert h.finish("m0", "a")[1:] == [Dispatch("m3", "a", 0)]
    assert sorted(h.s.running_on("a")) == ["m2", "m3"]


def test_calls_are_not_held_by_the_hwm_and_a_raising_call_fails_alone():
    h = Harness(hwm=1)
    h.join("a")
    make_actor(h)
    h.submit("t")                                       # the engine is full (the actor's slot)
    assert h.s.task_state("t") == "queued"
    assert call(h, "m0") == [Dispatch("m0", "a", 0)]
    assert h.finish("m0", "a", ok=False) == [Deliver("m0", "a", 0, False)]
    assert call(h, "m1") == [Dispatch("m1", "a", 0)]
    assert h.s.actor("A").state == ActorState.ALIVE


def test_a_queued_call_times_out_and_leaves_the_fifo():
    h = Harness()
    h.join("a")
    make_actor(h)
    call(h, "m0")
    acts = call(h, "m1", timeout_s=1.0)
    (timer,) = acts
    acts = h.fire(timer.token, now=1.0)
    assert fails(acts, "m1") == ["TaskTimeout"]
    call(h, "m2")
    assert h.finish("m0", "a")[1:] == [Dispatch("m2", "a", 0)]


def test_aborting_calls_queued_and_out():
    h = Harness()
    h.join("a")
    make_actor(h)
    call(h, "m0")
    call(h, "m1")
    assert fails(h.abort("m1"), "m1") == ["TaskAborted"]
    assert h.abort("m0") == [Cancel("m0", "a", 0)]
    assert h.finish("m0", "a", ok=False, outcome=Outcome.ABORTED, error_name="TaskAborted") == \
        [Deliver("m0", "a", 0, False)]


def test_calling_an_unknown_actor_fails_at_once():
    h = Harness()
    h.join("a")
    acts = call(h, "m", aid="nobody")
    assert fails(acts, "m") == [ACTOR_DIED_ERROR]
    assert h.s.records.drain()[-1].outcome == Outcome.ACTOR_DIED


# --------------------------------------------------------------------------- deaths, restarts

def test_worker_restart_recreates_on_the_same_engine_and_retries_calls_in_flight():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert make_actor(h, max_restarts=1, max_task_retries=1, max_concurrency=2) == "b"
    call(h, "m0"), call(h, "m1"), call(h, "m2")
    acts = restarted(h, "b")
    assert acts == [Dispatch("c", "b", 1)]              # the re-creation: next attempt of the creation
    assert h.s.actor_role("c").role == "recreate" and h.s.actor_role("c").incarnation == 2
    info = h.s.actor("A")
    assert (info.state, info.restarts_used, info.calls_queued, info.calls_out) == \
        (ActorState.RESTARTING, 1, 3, 0)
    assert h.s.load("b") == 1                           # the re-creation holds the slot
    acts = h.finish("c", "b", 1)
    assert acts == [Dispatch("m0", "b", 1), Dispatch("m1", "b", 1)]   # no Deliver: ctid was answered
    assert h.s.actor("A").incarnation == 2 and h.s.actor_role("m0").incarnation == 2
    recs = [(r.task_id, r.attempt, r.outcome) for r in h.s.records.drain()]
    assert ("m0", 0, Outcome.WORKER_LOST) in recs and ("c", 1, Outcome.OK) in recs


def test_calls_in_flight_are_retried_exactly_max_task_retries_times():
    h = Harness(hwm=0)
    h.join("a")
    make_actor(h, max_restarts=5, max_task_retries=2)
    call(h, "m")
    runs = 1
    for k in range(1, 4):
        acts = restarted(h, "a")
        if k <= 2:
            assert acts == [Dispatch("c", "a", k)]
            assert h.finish("c", "a", k) == [Dispatch("m", "a", k)]
            runs += 1
        else:
            assert Dispatch("c", "a", 3) in acts and fails(acts, "m") == [ACTOR_DIED_ERROR]
    assert runs == 3                                    # 1 + max_task_retries
    assert h.s.actor("A").restarts_used == 3


def test_restarts_used_up_fail_every_queued_and_later_call():
    h = Harness()
    h.join("a")
    make_actor(h, max_restarts=1)
    call(h, "m0"), call(h, "m1")
    acts = restarted(h, "a")
    assert fails(acts, "m0") == [ACTOR_DIED_ERROR]       # out, and max_task_retries=0
    assert fails(acts, "m1") == [] and Dispatch("c", "a", 1) in acts
    assert h.finish("c", "a", 1) == [Dispatch("m1", "a", 0)]
    call(h, "m2")
    acts = restarted(h, "a")
    assert fails(acts, "m1") == [ACTOR_DIED_ERROR] and fails(acts, "m2") == [ACTOR_DIED_ERROR]
    assert not [a for a in acts if isinstance(a, Dispatch)]
    info = h.s.actor("A")
    assert (info.state, info.restarts_used, h.s.load("a")) == (ActorState.DEAD, 1, 0)
    assert fails(call(h, "m3"), "m3") == [ACTOR_DIED_ERROR]


def test_a_retried_task_is_not_left_waiting_for_an_engine_an_actor_holds():
    # The retry preference (avoid the engines a task failed on while others exist) must not count an engine that
    # actors hold whole: at hwm=1 the task would wait for it until the actor went, beside an idle engine.
    h = Harness(hwm=1)
    h.join("a", "b")
    make_actor(h, "A", "ca")                            # b's slot is the actor's
    assert h.submit("t", retries=1) == [Dispatch("t", "a", 0)]
    assert h.handle(WorkerDied(h.now, "t", "a", 0, "killed")) == [Dispatch("t", "a", 1)]    # a again, not queued
    # ... also when the engine becomes the actor's while the retried task waits for it
    h = Harness(hwm=1)
    h.join("a", "b")
    assert h.submit("cb", creates_actor=ActorSpec("B")) == [Dispatch("cb", "b", 0)]
    assert h.submit("u", retries=1) == [Dispatch("u", "a", 0)]
    assert h.handle(WorkerDied(h.now, "u", "a", 0, "killed")) == []     # b may still free up: u waits for it
    assert h.s.task_state("u") == "queued"
    assert Dispatch("u", "a", 1) in h.finish("cb", "b")                # b is the actor's now: a will do
    # while the other engine is only busy, the preference holds
    h = Harness(hwm=1)
    h.join("a", "b")
    assert h.submit("v1") == [Dispatch("v1", "b", 0)]
    assert h.submit("v", retries=1) == [Dispatch("v", "a", 0)]
    assert h.handle(WorkerDied(h.now, "v", "a", 0, "killed")) == []
    assert h.finish("v1", "b") == [Deliver("v1", "b", 0, True), Dispatch("v", "b", 1)]


def test_engine_loss_moves_the_actor_and_its_slot():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert make_actor(h, max_restarts=1) == "b"
    call(h, "m0")
    acts = h.lose("b")
    assert [a for a in acts if isinstance(a, Dispatch)] == [Dispatch("c", "a", 1)]
    assert fails(acts, "m0") == [ACTOR_DIED_ERROR]       # out when it died, max_task_retries=0
    assert h.s.load("a") == 1
    h.finish("c", "a", 1)
    assert h.s.actor("A").engine_id == "a" and h.s.actor("A").incarnation == 2
    assert call(h, "m1") == [Dispatch("m1", "a", 0)]


def test_a_restart_waits_for_room_and_for_engines():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert make_actor(h, max_restarts=1) == "b"
    h.place("t")                                         # a is busy
    assert h.lose("b") == []                             # no room anywhere: the re-creation queues
    assert h.s.actor("A").state == ActorState.RESTARTING and h.s.task_state("c") == "queued"
    assert h.finish("t", "a") == [Deliver("t", "a", 0, True), Dispatch("c", "a", 1)]


def test_a_worker_restart_places_elsewhere_when_the_engine_is_no_candidate():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert make_actor(h, max_restarts=1) == "b"
    h.submit("d", direct=True, targets="b")             # b stays at hwm without the actor's slot
    acts = restarted(h, "b")
    assert acts == [Dispatch("c", "a", 1)]


def test_worker_died_of_a_call_is_the_death_of_the_instance():
    h = Harness()
    h.join("a")
    make_actor(h, max_restarts=1, max_task_retries=1)
    call(h, "m0")
    acts = h.handle(WorkerDied(h.now, "m0", "a", 0, "segfault"))
    assert acts == [Dispatch("c", "a", 1)]
    assert restarted(h, "a") == []                       # the same death, reported again: no effect
    assert h.finish("c", "a", 1) == [Dispatch("m0", "a", 1)]


def test_a_failing_recreation_uses_another_restart_and_answers_no_one():
    h = Harness(hwm=1)
    h.join("a", "b")
    assert make_actor(h, max_restarts=2) == "b"
    restarted(h, "b")
    acts = h.finish("c", "b", 1, ok=False)               # the constructor raised on restart
    assert acts == [Dispatch("c", "a", 2)]               # avoids the engine it failed on
    acts = h.finish("c", "a", 2, ok=False)
    assert not [a for a in acts if isinstance(a, (Deliver, Fail, Dispatch))]
    assert h.s.actor("A").state == ActorState.DEAD and h.s.actor("A").restarts_used == 2
    assert h.s.load("a") == 0 and h.s.load("b") == 0
    assert h.abort("c") == []


# ----------------------------------------------------------------------------------- kill

def test_kill_fails_queued_cancels_out_drops_the_instance_and_frees_the_slot():
    h = Harness(hwm=1)
    h.join("a")
    make_actor(h, max_restarts=3)
    call(h, "m0"), call(h, "m1")
    h.submit("t")                                         # waits for the actor's slot
    acts = kill(h)
    assert Cancel("m0", "a", 0) in acts and DropActor("A", "a") in acts and Dispatch("t", "a", 0) in acts
    assert fails(acts, "m1") == [ACTOR_DIED_ERROR]
    assert h.finish("m0", "a", ok=False, outcome=Outcome.ABORTED, error_name="TaskAborted") == \
        [Deliver("m0", "a", 0, False)]
    info = h.s.actor("A")
    assert info.state == ActorState.DEAD and info.killed and h.s.load("a") == 1   # t's load only
    assert restarted(h, "a") == [] and kill(h) == [] and kill(h, "nobody") == []
    assert fails(call(h, "m2"), "m2") == [ACTOR_DIED_ERROR]


def test_kill_before_creation_and_during_it():
    h = Harness(hwm=1)
    h.join("a")
    h.place("t")
    h.submit("c1", creates_actor=ActorSpec("A"))         # queued behind t
    call(h, "m", aid="A")
    acts = h.handle(ActorKillRequested(h.now, "A"))
    assert fails(acts, "c1") == ["TaskAborted"] and fails(acts, "m") == [ACTOR_DIED_ERROR]
    h.finish("t", "a")
    h.submit("c2", creates_actor=ActorSpec("B"))
    acts = h.handle(ActorKillRequested(h.now, "B"))
    assert acts == [Cancel("c2", "a", 0)]
    assert h.finish("c2", "a") == [Deliver("c2", "a", 0, True), DropActor("B", "a")]
    assert h.s.load("a") == 0 and h.s.actor("B").state == ActorState.DEAD


def test_calls_of_a_killed_actor_left_on_a_lost_engine_end_once():
    h = Harness()
    h.join("a", "b")
    e = make_actor(h)
    call(h, "m0")
    kill(h)
    acts = h.lose(e)
    assert fails(acts, "m0") == [ACTOR_DIED_ERROR]


# ----------------------------------------------------------------------- validation, pump

def test_specs_refuse_what_an_actor_call_cannot_honour():
    with pytest.raises(ValueError):
        TaskSpec("m", actor_id="A", targets={"a"})
    with pytest.raises(ValueError):
        TaskSpec("m", actor_id="A", after=Dependency(["x"]))
    with pytest.raises(ValueError):
        TaskSpec("m", actor_id="A", retries=1)
    with pytest.raises(ValueError):
        TaskSpec("c", creates_actor=ActorSpec("A"), actor_id="A")
    with pytest.raises(ValueError):
        TaskSpec("c", creates_actor="A")                  # type: ignore[arg-type]
    for bad in (dict(max_restarts=-1), dict(max_task_retries=1.5), dict(max_concurrency=0)):
        with pytest.raises(ValueError):
            ActorSpec("A", **bad)                         # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ActorSpec(None)
    with pytest.raises(TypeError):
        ActorSpec(["unhashable"])                         # type: ignore[arg-type]


def test_a_duplicate_actor_id_is_a_misuse():
    from sched_lab.core import SchedulerMisuse
    h = Harness()
    h.join("a")
    make_actor(h)
    with pytest.raises(SchedulerMisuse):
        h.submit("c2", creates_actor=ActorSpec("A"))


def test_the_pump_needs_no_drop_actor_handler_until_one_comes():
    h = Harness()
    seen: list = []
    handlers = {t: seen.append for t in ACTION_TYPES}
    pump = EventPump(h.s, handlers)
    from sched_lab.core import EngineJoined, TaskSubmitted, TaskFinished
    pump.feed(EngineJoined(0.0, "a"))
    pump.feed(TaskSubmitted(0.0, TaskSpec("c", creates_actor=ActorSpec("A"))))
    pump.feed(TaskFinished(0.0, "c", "a", 0, Outcome.OK))
    with pytest.raises(ValueError, match="DropActor"):
        pump.feed(ActorKillRequested(0.0, "A"))
    pump2 = EventPump(Harness().s, {**handlers, DropActor: seen.append})
    assert pump2.handlers[DropActor] == seen.append


def test_actors_listing():
    h = Harness()
    h.join("a")
    make_actor(h, max_restarts=2, max_concurrency=3)
    (info,) = h.s.actors()
    assert (info.actor_id, info.creation_task_id, info.state, info.engine_id, info.incarnation,
            info.restarts_used, info.max_restarts, info.calls_queued, info.calls_out, info.killed) == \
        ("A", "c", "alive", "a", 1, 0, 2, 0, 0, False)
    assert h.s.actor("nobody") is None and h.s.actor_role("unknown") is None


def test_a_restart_numbers_its_attempt_after_every_creation_attempt():
    h = Harness()
    h.join("a")
    h.submit("c", creates_actor=ActorSpec("A", max_restarts=1), retries=2)
    h.finish("c", "a", 0, ok=False)
    h.finish("c", "a", 1)                                # created by attempt 1
    assert restarted(h, "a") == [Dispatch("c", "a", 2)]


def test_restored_actor_tasks_do_not_survive_a_scheduler_restart():
    from sched_lab.core import TaskRestored
    h = Harness()
    h.handle(TaskRestored(0.0, TaskSpec("c", creates_actor=ActorSpec("A")), succeeded=True, engine_id="a"))
    acts = h.handle(TaskRestored(0.0, TaskSpec("m", actor_id="A"), attempts_used=1))
    assert fails(acts, "m") == [ACTOR_DIED_ERROR]
    acts = h.handle(TaskRestored(0.0, TaskSpec("c2", creates_actor=ActorSpec("B"))))
    assert fails(acts, "c2") == [ACTOR_DIED_ERROR]
    acts = h.handle(TaskRestored(0.0, TaskSpec("d", direct=True, targets="a")))
    assert [(a.task_id, a.error_name) for a in acts] == [("d", "EngineError")]
    h.join("a")
    assert fails(call(h, "m2"), "m2") == [ACTOR_DIED_ERROR]          # A is unknown to this scheduler
    assert h.s.actors() == [] and h.s.waiting_count == 0
