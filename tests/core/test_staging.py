"""Staging (core/staging.py): the queue's head handed to engines that pull their next task themselves.

Held to the scheduler without staging: on random runs at hwm=1 where each engine that ends a task takes the oldest
staged one, both dispatch the same tasks to the same engines and write the same records (for the schemes that draw
no random numbers: a take draws none, so a random scheme's later draws differ; those are in the random runs below).
On random runs where takes come in any order, engines vanish and the driver takes tasks back at random, every task
ends exactly once and no attempt is out twice. And the rules: what is staged, aborts of staged tasks, takes by a
gone engine, an engine with room while tasks are staged, user schemes, misuse."""

import random

import pytest

from sched_lab.core import (
    TASK_ABORTED, AbortRequested, Cancel, Deliver, Dispatch, EngineJoined, EngineLost, Fail, Outcome, RecordList,
    SchedulerMisuse, Stage, StageDepth, StageReturned, TaskFinished, TaskScheduler, TaskSpec, TaskSubmitted,
    TaskTaken, Unstage,
)


def _kinds(actions, kind):
    return [a for a in actions if isinstance(a, kind)]


def _pair_run(scheme: str, seed: int, depth: int, retries: tuple[int, ...], n_eng: int = 3, steps: int = 500):
    """The same random run (joins, submissions, aborts, finishes OK or raised) on a plain scheduler and on one that
    stages, whose engines take the oldest staged task as they end one. Returns both runs' (dispatches, records)."""
    runs = []
    for staged_run in (False, True):
        pick = random.Random(seed)
        records = RecordList()
        core = TaskScheduler(scheme, 1, random.Random(seed), records)
        staged: list[tuple[int, int]] = []             # the driver's shared queue, oldest first
        seen = {"takes": 0, "unstages": 0}
        running: dict[int, tuple[int, int]] = {}       # engine -> (task, attempt)
        dispatched: list[tuple[int, int, int]] = []    # (task, attempt, engine)
        now = 0.0

        def feed(event):
            acts = core.handle(event)
            for a in acts:
                if isinstance(a, Dispatch):
                    assert a.engine_id not in running, "an engine got a second task at hwm=1"
                    running[a.engine_id] = (a.task_id, a.attempt)
                    dispatched.append((a.task_id, a.attempt, a.engine_id))
                elif isinstance(a, Stage):
                    staged.append((a.task_id, a.attempt))
                elif isinstance(a, Unstage):           # the driver reads its queue back: all of it comes back
                    seen["unstages"] += 1
                    back, staged[:] = tuple(staged), []
                    feed(StageReturned(event.now, back))
            return acts

        for e in range(n_eng):
            feed(EngineJoined(now, e))
        if staged_run:
            feed(StageDepth(now, depth))
        n_sub = 0
        for _ in range(steps):
            now += pick.choice((0.0, 0.5, 1.0))
            r = pick.random()
            if r < 0.5:
                feed(TaskSubmitted(now, TaskSpec(n_sub, retries=pick.choice(retries))))
                n_sub += 1
            elif r < 0.55 and n_sub:
                feed(AbortRequested(now, pick.randrange(n_sub)))
            elif running:
                e = pick.choice(sorted(running))
                tid, attempt = running.pop(e)
                if staged:                              # it ends its task, and takes the next before answering
                    took = staged.pop(0)
                    seen["takes"] += 1
                    feed(TaskTaken(now, took[0], e, took[1]))
                    running[e] = took
                    dispatched.append((took[0], took[1], e))
                outcome = Outcome.OK if pick.random() < 0.8 else Outcome.ERROR
                feed(TaskFinished(now, tid, e, attempt, outcome, None if outcome is Outcome.OK else "Boom", now))
        runs.append((dispatched, sorted(records.drain(), key=lambda rec: (rec.task_id, rec.attempt)), seen))
    return runs


@pytest.mark.parametrize("scheme", ["leastload", "lru", "fastest"])
@pytest.mark.parametrize("depth", [1, 2, 5])
def test_taking_the_staged_head_is_the_dispatch_the_scheme_would_make(scheme, depth):
    takes = unstages = 0
    for seed in range(12):
        (plain, plain_records, _), (pulled, pulled_records, seen) = _pair_run(scheme, seed, depth, (0,))
        assert len(plain) > 100
        assert pulled == plain, (scheme, depth, seed)
        assert pulled_records == plain_records, (scheme, depth, seed)
        takes, unstages = takes + seen["takes"], unstages + seen["unstages"]
    assert takes > 12 * 50 and unstages > 0          # tasks did go by take, and staged ones were aborted


@pytest.mark.parametrize("depth", [1, 3])
def test_with_retries_too_only_the_queue_length_a_take_saw_differs(depth):
    """A failed attempt that retries is queued again when its answer is handled: after the take that came with it
    (so the record of the taken task counts one queued task fewer than the plain scheduler's)."""
    differ = 0
    for seed in range(12):
        (plain, plain_records, _), (pulled, pulled_records, _) = _pair_run("leastload", seed, depth, (0, 1))
        assert pulled == plain, (depth, seed)
        for a, b in zip(pulled_records, plain_records, strict=True):
            assert _without_queue_len(a) == _without_queue_len(b)
            differ += a.queue_len != b.queue_len
    assert differ > 0


def _without_queue_len(rec):
    return tuple(getattr(rec, f) for f in rec.__slots__ if f != "queue_len")


def _chaos_run(seed: int, steps: int = 800):
    """Takes of any staged task in any order, returns of random subsets, aborts, engines lost and joining: every
    attempt is out on at most one engine, and once every engine ends what it holds, every task has ended once."""
    pick = random.Random(seed)
    core = TaskScheduler(pick.choice(["leastload", "lru", "plainrandom", "weighted"]), 1, random.Random(seed))
    staged: dict[tuple[int, int], None] = {}
    running: dict[int, tuple[int, int]] = {}
    ended: dict[int, int] = {}
    engines: list[int] = []
    next_engine = 0
    now = 0.0

    def feed(event):
        for a in core.handle(event):
            if isinstance(a, Dispatch):
                assert a.engine_id not in running
                running[a.engine_id] = (a.task_id, a.attempt)
            elif isinstance(a, Stage):
                key = (a.task_id, a.attempt)
                assert key not in staged and key not in running.values()
                staged[key] = None
            elif isinstance(a, (Deliver, Fail)):
                ended[a.task_id] = ended.get(a.task_id, 0) + 1
            elif isinstance(a, Cancel):
                assert running.get(a.engine_id) == (a.task_id, a.attempt)

    def return_some():
        back = tuple(k for k in staged if pick.random() < 0.5)
        for k in back:
            del staged[k]
        if back:
            feed(StageReturned(now, back))

    feed(StageDepth(now, pick.choice((1, 3, 8))))
    n_sub = 0
    for _ in range(steps):
        now += 0.5
        r = pick.random()
        if r < 0.05 or not engines:
            feed(EngineJoined(now, next_engine))
            engines.append(next_engine)
            next_engine += 1
        elif r < 0.45:
            feed(TaskSubmitted(now, TaskSpec(n_sub, retries=pick.choice((0, 2)))))
            n_sub += 1
        elif r < 0.5 and n_sub:
            feed(AbortRequested(now, pick.randrange(n_sub)))
        elif r < 0.55:
            return_some()
        elif r < 0.58 and len(engines) > 1:
            e = engines.pop(pick.randrange(len(engines)))
            running.pop(e, None)
            if staged and pick.random() < 0.5:       # its take was on its way when it was lost
                key = pick.choice(list(staged))
                del staged[key]
                feed(EngineLost(now, e))
                feed(TaskTaken(now, key[0], e, key[1]))
            else:
                feed(EngineLost(now, e))
        elif running:
            e = pick.choice(sorted(running))
            tid, attempt = running.pop(e)
            if staged and pick.random() < 0.9:
                key = pick.choice(list(staged))      # not always the oldest: reports cross
                del staged[key]
                running[e] = key
                feed(TaskTaken(now, key[0], e, key[1]))
            feed(TaskFinished(now, tid, e, attempt, Outcome.OK if pick.random() < 0.8 else Outcome.ERROR,
                              None, now))
    feed(StageDepth(now, 0))                         # wind down: take everything back, let engines finish
    while staged or running:
        if staged:
            back = tuple(staged)
            staged.clear()
            feed(StageReturned(now, back))
        while running:
            e = next(iter(running))
            tid, attempt = running.pop(e)
            feed(TaskFinished(now, tid, e, attempt, Outcome.OK, None, now))
    assert core.waiting_count == 0 and core.running_count == 0
    assert sorted(ended) == list(range(n_sub)) and set(ended.values()) == {1}
    return n_sub


def test_random_takes_returns_aborts_and_losses_end_every_task_exactly_once():
    assert sum(_chaos_run(seed) for seed in range(40)) > 4000


def _engine_of(actions, task_id):
    return next(a.engine_id for a in _kinds(actions, Dispatch) if a.task_id == task_id)


def _saturated(depth=2, hwm=1, n_eng=2, n_tasks=6, **spec_kw):
    core = TaskScheduler("leastload", hwm, random.Random(0))
    for e in range(n_eng):
        core.handle(EngineJoined(0.0, e))
    core.handle(StageDepth(0.0, depth))
    acts = []
    for i in range(n_tasks):
        acts += core.handle(TaskSubmitted(0.0, TaskSpec(i, **spec_kw)))
    return core, acts


def test_only_the_head_is_staged_and_only_while_no_engine_has_room():
    core, acts = _saturated(depth=3)
    assert sorted((a.task_id, a.engine_id) for a in _kinds(acts, Dispatch)) in ([(0, 0), (1, 1)], [(0, 1), (1, 0)])
    assert [a.task_id for a in _kinds(acts, Stage)] == [2, 3, 4]
    assert core.state_counts["queued"] == 4          # staged tasks are still queued
    core2, acts2 = _saturated(depth=0)
    assert not _kinds(acts2, Stage)
    core3, acts3 = _saturated(hwm=0)
    assert not _kinds(acts3, Stage) and len(_kinds(acts3, Dispatch)) == 6


@pytest.mark.parametrize("spec_kw", [{"timeout_s": 5.0}, {"time_limit_s": 5.0}, {"targets": frozenset({0, 1})}])
def test_tasks_with_a_timeout_time_limit_or_targets_are_never_staged(spec_kw):
    core, acts = _saturated(**spec_kw)
    assert len(_kinds(acts, Dispatch)) == 2 and not _kinds(acts, Stage)


def test_an_older_task_another_structure_holds_blocks_staging():
    core, acts = _saturated(depth=0, n_tasks=2)
    e = _engine_of(acts, 1)
    core.handle(TaskSubmitted(0.0, TaskSpec("pinned", targets=frozenset({e}))))
    core.handle(TaskSubmitted(0.0, TaskSpec("open")))
    assert not _kinds(core.handle(StageDepth(0.0, 4)), Stage)
    acts = core.handle(TaskFinished(1.0, 1, e, 0, Outcome.OK, None, 0.5))
    assert [(a.task_id, a.engine_id) for a in _kinds(acts, Dispatch)] == [("pinned", e)]
    assert [a.task_id for a in _kinds(acts, Stage)] == ["open"]


def test_a_take_is_recorded_as_the_dispatch_with_the_load_the_engine_had_without_its_ended_task():
    records = RecordList()
    core = TaskScheduler("leastload", 1, random.Random(0), records)
    core.handle(EngineJoined(0.0, 0))
    core.handle(StageDepth(0.0, 1))
    core.handle(TaskSubmitted(0.0, TaskSpec("a")))
    assert _kinds(core.handle(TaskSubmitted(0.5, TaskSpec("b"))), Stage) == [Stage("b", 0)]
    assert core.handle(TaskTaken(2.0, "b", 0, 0)) == []
    assert core.load(0) == 2
    core.handle(TaskFinished(2.0, "a", 0, 0, Outcome.OK, None, 1.0))
    assert core.load(0) == 1 and core.task_state("b") == "running"
    core.handle(TaskFinished(3.0, "b", 0, 0, Outcome.OK, None, 2.0))
    rec = {r.task_id: r for r in records.drain()}["b"]
    assert (rec.engine_id, rec.dispatched_at, rec.engine_load, rec.queue_len) == (0, 2.0, 0, 0)


def test_an_aborted_staged_task_fails_when_returned_and_is_cancelled_when_taken():
    core, _ = _saturated(depth=2, n_tasks=4)               # 0, 1 out; 2, 3 staged
    assert core.handle(AbortRequested(1.0, 2)) == [Unstage(2, 0)]
    assert core.handle(AbortRequested(1.0, 2)) == []       # asked once
    acts = core.handle(StageReturned(1.0, ((2, 0), (3, 0))))
    assert acts == [Fail(2, TASK_ABORTED, "aborted before it ran")]
    assert core.task_state(3) == "queued"
    assert core.handle(AbortRequested(2.0, 3)) == [Fail(3, TASK_ABORTED, "aborted before it ran")]   # (queued)
    core, _ = _saturated(depth=2, n_tasks=4)
    core.handle(AbortRequested(1.0, 3))
    assert core.handle(TaskTaken(1.0, 3, 0, 0)) == [Cancel(3, 0, 0)]
    acts = core.handle(TaskFinished(1.0, 3, 0, 0, Outcome.ABORTED, TASK_ABORTED, None))
    assert _kinds(acts, Deliver) == [Deliver(3, 0, 0, False)]      # aborted where it ran: no retry


def test_returned_tasks_go_first_to_the_next_engine_with_room_in_their_old_order():
    core, acts = _saturated(depth=3, n_tasks=6)            # 0, 1 out; 2, 3, 4 staged; 5 queued
    e = _engine_of(acts, 0)
    core.handle(StageReturned(1.0, ((4, 0), (2, 0), (3, 0))))
    acts = core.handle(TaskFinished(1.0, 0, e, 0, Outcome.OK, None, 0.5))
    assert [(a.task_id, a.engine_id) for a in _kinds(acts, Dispatch)] == [(2, e)]
    assert [a.task_id for a in _kinds(acts, Stage)] == [3, 4, 5]


def test_a_take_by_an_engine_already_lost_queues_the_task_again():
    core, acts = _saturated(depth=1, n_tasks=3)            # 0, 1 out; 2 staged
    lost, busy = _engine_of(acts, 0), _engine_of(acts, 1)
    core.handle(EngineLost(1.0, lost))                     # its task 0 fails (no retries); the other still busy
    acts = core.handle(TaskTaken(1.0, 2, lost, 0))
    assert [a.task_id for a in _kinds(acts, Stage)] == [2]     # queued again, and staged again at once
    core.handle(StageReturned(2.0, ((2, 0),)))             # the busy engine ends its task without taking it:
    acts = core.handle(TaskFinished(2.0, 1, busy, 0, Outcome.OK, None, 1.0))
    assert [(a.task_id, a.engine_id) for a in _kinds(acts, Dispatch)] == [(2, busy)]     # sent to it


def test_misuse_of_staging_raises():
    core, _ = _saturated(depth=1, n_tasks=3)
    with pytest.raises(SchedulerMisuse):
        core.handle(TaskTaken(1.0, 0, 1, 0))               # running, not staged
    with pytest.raises(SchedulerMisuse):
        core.handle(TaskTaken(1.0, 2, 1, 1))               # staged, but another attempt
    with pytest.raises(SchedulerMisuse):
        core.handle(StageReturned(1.0, (("nope", 0),)))
    with pytest.raises(ValueError):
        StageDepth(0.0, -1)


def test_while_an_engine_has_room_the_oldest_staged_task_is_asked_back_and_goes_there():
    core, _ = _saturated(depth=3, n_tasks=5)               # 0, 1 out; 2, 3, 4 staged
    assert core.handle(EngineJoined(1.0, "new")) == [Unstage(2, 0)]
    assert core.handle(TaskSubmitted(1.0, TaskSpec("late"))) == [Dispatch("late", "new", 0)]   # (no older one free)
    core2, _ = _saturated(depth=3, n_tasks=5)
    core2.handle(EngineJoined(1.0, "new"))
    acts = core2.handle(StageReturned(1.0, ((3, 0), (4, 0))))   # 2 was taken meanwhile: its Took is on its way
    assert [(a.task_id, a.engine_id) for a in _kinds(acts, Dispatch)] == [(3, "new")]
    assert core2.handle(TaskTaken(1.0, 2, 0, 0)) == [Stage(4, 0)]     # no engine has room: staged again


def test_under_a_users_scheme_nothing_is_staged():
    """A take asks no scheme (the choice is forced): a user's scheme, which may count or learn, sees every task."""
    from sched_lab.core.scheme_api import SCHEMES, register_scheme
    register_scheme("stagingprobe", lambda choice: choice.candidates[0])
    try:
        core = TaskScheduler("stagingprobe", 1, random.Random(0))
        core.handle(EngineJoined(0.0, 0))
        core.handle(StageDepth(0.0, 4))
        acts = [a for i in range(4) for a in core.handle(TaskSubmitted(0.0, TaskSpec(i)))]
        assert len(_kinds(acts, Dispatch)) == 1 and not _kinds(acts, Stage)
    finally:
        SCHEMES.pop("stagingprobe", None)
