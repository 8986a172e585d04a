"""The task scheduler: a sans-IO state machine shared by the live cluster and the simulator.

How this works. `handle(event)` applies one event and returns the actions the driver must carry
out. A task moves through four states:

    waiting (for `after`/`follow` deps) -> queued (ready, no engine free) -> running -> done

Tasks that wait for dependencies are indexed by the ids they wait for (`_waiters`), so a finishing
task only touches its own dependents. Ready tasks that cannot be placed wait in the ReadyQueue
(queue.py), indexed by the engines they may use: when capacity appears on engine e, the oldest task
that can use e is placed, and so on while e has room; a completion never rescans the whole queue.
Rare events (losing an engine, the first engine joining) rescan it.
The scheme only chooses among candidates: the fast pool (see pools.py) for unrestricted tasks, the
law over an explicit list for restricted ones (scheme_api.py). A scheme that raises or chooses a
non-candidate fails that task with SchemeError; the scheduler goes on.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Hashable
from random import Random
from typing import Any

from .actors import ActorBook, ActorInfo, ActorRole
from .dependency import Dependency
from .errors import ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, INVALID_DEPENDENCY, TASK_ABORTED, TASK_TIMEOUT, SchedulerMisuse
from .model import (
    AbortRequested, Action, ActorKillRequested, Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch,
    DispatchFailed, EngineJoined, EngineLost, Event, Fail, Outcome, PurgeRequested, RecordList, RecordSink,
    StageDepth, StageReturned, StartTimer, TaskFinished, TaskResubmitted, TaskRestored, TaskSpec, TaskSubmitted,
    TaskTaken, TimerFired, WorkerDied, WorkerRestarted,
)
from .options import check_hwm, check_scheme
from .queue import ReadyQueue
from .readiness import follow_engines, invalid_ids, known_only
from .restore import RestoreRules
from .scheme_api import SCHEME_ERROR, EngineDirectory, SchemeFailure, parse_scheme
from .schemes import SCHEMES
from .staging import StageBook
from .state import COUNT_SLOT, DONE, MOVES, QUEUED, RUNNING, TRANSITIONS, WAITING, EngineState, TaskState, TaskStatus

TaskId = Hashable
EngineId = Hashable
_OK = Outcome.OK                     # (a module global: `Outcome.OK` is a slow class-attribute lookup)
_N_WAITING, _N_QUEUED, _N_RUNNING = COUNT_SLOT[WAITING], COUNT_SLOT[QUEUED], COUNT_SLOT[RUNNING]

class TaskScheduler(RestoreRules):
    """Schedules tasks on engines with one of the registered schemes (see docs/core-api.md for the rules).

    `scheme`: `NAME[:key=value,..]`, NAME registered in SCHEMES (InvalidOption listing the choices). `hwm`: at most this many outstanding tasks per engine (0 =
    unlimited). `rng`: the scheduler's own seeded generator (random.Random). `records`: where one
    record per attempt goes (default: a RecordList). `forget_finished`: drop finished tasks at once
    (as if purged) — for large simulations of independent tasks, where nothing depends on them.
    """

    def __init__(self, scheme: str = "leastload", hwm: int = 1, rng: Random | None = None,
                 records: RecordSink | None = None, forget_finished: bool = False) -> None:
        self.scheme_name = check_scheme(scheme)            # canonical NAME:k=v
        self._scheme = parse_scheme(self.scheme_name)
        self._directory = EngineDirectory()                # what each engine advertises (speed, labels)
        self.hwm = check_hwm(hwm)
        self._rng = rng if rng is not None else Random(0)
        self.records: RecordSink = records if records is not None else RecordList()
        self._forget = forget_finished
        self._pool = self._scheme.new_pool(self._directory)
        self._engines: dict[EngineId, EngineState] = {}
        self._join_count = 0
        self._assign_count = 0
        self._tasks: dict[TaskId, TaskState] = {}          # every task not finished (and not purged)
        self._completed: dict[TaskId, EngineId | None] = {}
        self._failed: dict[TaskId, EngineId | None] = {}
        self._waiters: dict[TaskId, list[TaskState]] = {}
        self._queue = ReadyQueue()
        self._timers: dict[int, TaskState] = {}
        self._next_token = 0
        # Tasks per state by COUNT_SLOT, kept by _move only (the None and DONE slots are never read).
        self._count: list[int] = [0] * len(COUNT_SLOT)
        self._finished_queue: deque[tuple[TaskId, bool]] = deque()
        self._notifying = False
        self._out: list[Action] = []
        self._now = 0.0
        self._actors = ActorBook(self)                     # actors and direct tasks (actors.py)
        self._staging = StageBook(self)                    # tasks engines pull themselves (staging.py)
        self._handlers: dict[type, Any] = {
            TaskSubmitted: self._on_submitted, TaskFinished: self._on_finished,
            EngineJoined: self._on_engine_joined, EngineLost: self._on_engine_lost,
            DependencyUnmet: self._on_unmet, DispatchFailed: self._on_dispatch_failed,
            TimerFired: self._on_timer, AbortRequested: self._on_abort,
            TaskResubmitted: self._on_resubmitted, PurgeRequested: self._on_purge,
            WorkerDied: self._on_worker_died, WorkerRestarted: self._actors.on_worker_restarted,
            ActorKillRequested: self._actors.on_kill, TaskRestored: self._on_restored,
            StageDepth: self._staging.on_depth, TaskTaken: self._staging.on_taken,
            StageReturned: self._staging.on_returned,
        }

    # ------------------------------------------------------------------------------ public API

    def handle(self, event: Event) -> list[Action]:
        """Apply one event; return the actions the driver must carry out, in order."""
        handler = self._handlers.get(type(event))
        if handler is None:
            raise SchedulerMisuse(f"not a scheduler event: {event!r}")
        self._now = event.now
        out = self._out = []
        handler(event)
        if self._staging.depth or self._staging.staged:      # (staging.py)
            self._staging.after(event.__class__ is StageReturned)
        return out

    @property
    def engine_ids(self) -> list[EngineId]:
        return list(self._engines)

    def load(self, engine_id: EngineId) -> int:
        return self._engines[engine_id].load

    @property
    def waiting_count(self) -> int:
        count = self._count
        return count[_N_WAITING] + count[_N_QUEUED]

    @property
    def running_count(self) -> int:
        return self._count[_N_RUNNING]

    @property
    def state_counts(self) -> dict[TaskStatus, int]:
        """How many tracked tasks are WAITING, QUEUED and RUNNING (as kept by the one transition method)."""
        return {s: self._count[COUNT_SLOT[s]] for s in (WAITING, QUEUED, RUNNING)}

    @property
    def known_task_count(self) -> int:
        return len(self._tasks) + len(self._completed) + len(self._failed)

    def task_state(self, task_id: TaskId) -> TaskStatus | None:
        task = self._tasks.get(task_id)
        if task is not None:
            return task.state
        return DONE if task_id in self._completed or task_id in self._failed else None

    def running_on(self, engine_id: EngineId) -> list[TaskId]:
        """Ids of the tasks outstanding on a live engine, in dispatch order."""
        return list(self._engines[engine_id].running)

    def unassigned_ids(self) -> list[TaskId]:
        """Ids of the tasks waiting in the scheduler (for dependencies or for an engine)."""
        return [t.id for t in self._tasks.values() if t.state == WAITING or t.state == QUEUED]

    def actors(self) -> list[ActorInfo]:
        """Every actor the scheduler knows (alive, pending, restarting or dead), in creation order."""
        return self._actors.infos()

    def actor(self, actor_id: Hashable) -> ActorInfo | None:
        return self._actors.info(actor_id)

    def actor_role(self, task_id: TaskId) -> ActorRole | None:
        """What a tracked task is to an actor (create / recreate / call, and the incarnation), or None."""
        task = self._tasks.get(task_id)
        return None if task is None else self._actors.role(task)

    def queue_status(self) -> dict[Any, int]:
        status: dict[Any, int] = {e.id: e.load for e in self._engines.values()}
        status["unassigned"] = self.waiting_count
        return status

    def actors_hold_every_engine(self) -> bool:
        """Every live engine at or above hwm (> 0) with actor slots alone: nothing waiting gets one (see Actors)."""
        return self._actors.hold_every_engine()

    def held_by_actors(self) -> int:
        """The tasks waiting for an engine while `actors_hold_every_engine()` (0 otherwise; actor calls not counted)."""
        return self._actors.held_tasks()

    # ----------------------------------------------------------------------------- submission

    def _on_submitted(self, ev: TaskSubmitted) -> None:
        spec = ev.spec
        if spec.after is not None or spec.follow is not None or spec.targets is not None \
                or spec.actor_id is not None or spec.creates_actor is not None:      # (a direct task has targets)
            if spec.actor_id is not None or spec.creates_actor is not None or spec.direct:
                self._actors.submit(spec, resubmitted=False)
            else:
                self._submit(spec, purged_deps_met=False)
            return
        # The common case, kept short (benchmarks/bench_core.py): no dependencies, no targets.
        tid = spec.task_id
        if tid in self._tasks or tid in self._completed or tid in self._failed:
            raise SchedulerMisuse(f"task id {tid!r} was submitted already")
        task = TaskState(spec, self._now)
        self._tasks[tid] = task
        self._move(task, QUEUED)
        try:
            engine = self._pool.choose(self._rng, None, spec) if self._pool.load else None
        except SchemeFailure as exc:
            self._fail(task, SCHEME_ERROR, Outcome.SCHEME_ERROR, str(exc))
            return
        if engine is not None:
            self._dispatch(task, engine)
        else:
            self._place_or_queue(task)

    def _on_resubmitted(self, ev: TaskResubmitted) -> None:
        spec = ev.spec
        if spec.actor_id is not None or spec.creates_actor is not None or spec.direct:
            self._actors.submit(spec, resubmitted=True)
            return
        self._submit(spec, purged_deps_met=True)

    def _submit(self, spec: TaskSpec, purged_deps_met: bool, role: Any = None, attempt: int = 0) -> None:
        tid = spec.task_id
        if tid in self._tasks or tid in self._completed or tid in self._failed:
            raise SchedulerMisuse(f"task id {tid!r} was submitted already")
        task = TaskState(spec, self._now)
        task.actor = role
        task.attempt = attempt                  # > 0: restored after a restart (restore.py)
        after, follow = spec.after, spec.follow
        if after is not None or follow is not None:
            known, silent = self._tasks, self._actors.silent_ids   # (an actor's re-creation is not its
            if silent and any(d is not None and not silent.isdisjoint(d.ids) for d in (after, follow)):
                known = {i: t for i, t in known.items() if i not in silent}  # creation: purged = unknown)
            if purged_deps_met:                 # a resubmission: purged deps were met already
                tables = (known, self._completed, self._failed)
                after, follow = known_only(after, *tables), known_only(follow, *tables)
                spec_deps_dropped = (after is not spec.after) or (follow is not spec.follow)
                if spec_deps_dropped:
                    task.spec = spec = dataclasses.replace(spec, after=after, follow=follow)
            bad = invalid_ids(tid, (after, follow), known, self._completed, self._failed)
            if bad:
                self._tasks[tid] = task
                self._move(task, WAITING)
                self._fail(task, INVALID_DEPENDENCY, Outcome.INVALID,
                           f"unknown or self dependency: {', '.join(map(repr, bad))}")
                return
        self._tasks[tid] = task
        self._move(task, WAITING)
        if after is not None or follow is not None:
            self._count_deps(task)
        self._evaluate(task)

    def _count_deps(self, task: TaskState) -> None:
        """Count finished after-deps, and register the task as a waiter on every unfinished dep."""
        after, follow = task.spec.after, task.spec.follow
        waiting_on: set[TaskId] = set()
        if after is not None:
            for i in after.ids:
                if i in self._completed:
                    self._tally_after(task, after, True)
                elif i in self._failed:
                    self._tally_after(task, after, False)
                else:
                    waiting_on.add(i)
        if follow is not None:
            waiting_on.update(i for i in follow.ids if i not in self._completed and i not in self._failed)
        task.pending = len(waiting_on)
        for i in waiting_on:
            self._waiters.setdefault(i, []).append(task)

    @staticmethod
    def _tally_after(task: TaskState, after: Dependency, succeeded: bool) -> None:
        if after.counts_as_met(succeeded):
            task.after_good += 1
        else:
            task.after_bad += 1

    # ------------------------------------------------------------------- readiness and placement

    def _evaluate(self, task: TaskState) -> None:
        """Decide a waiting (or queued, pinned) task's fate after its dependencies changed."""
        spec = task.spec
        after = spec.after
        if after is not None:
            n = len(after.ids)
            if (task.after_bad >= 1) if after.all else (task.after_bad == n):
                self._fail(task, IMPOSSIBLE_DEPENDENCY, Outcome.IMPOSSIBLE,
                           "an `after` dependency can no longer be met")
                return
            if not ((task.after_good == n) if after.all else (task.after_good >= 1)):
                self._wait(task)
                return
        allowed = spec.targets
        if spec.follow is not None:
            where, why = follow_engines(spec.follow, self._completed, self._failed)
            if why:
                self._fail(task, IMPOSSIBLE_DEPENDENCY, Outcome.IMPOSSIBLE, why)
                return
            if where is None:                       # follow deps still running
                self._wait(task)
                return
            allowed = where if allowed is None else allowed & where
        task.allowed = allowed
        if task.state == QUEUED:
            task.qseq = 0                           # its old queue entries are dead
        else:                                       # waiting, or running: a retry or an unmet report
            self._move(task, QUEUED)
        self._place_or_queue(task)

    def _wait(self, task: TaskState) -> None:
        if task.timer is None and task.spec.timeout_s is not None:
            self._start_timer(task)

    def _exclusions(self, task: TaskState) -> set[EngineId] | None:
        """Engines this task must avoid now: its blacklist, plus engines it failed on while others exist."""
        blacklist, failed_on = task.blacklist, task.failed_on
        if not failed_on:
            return blacklist
        avoid = failed_on | blacklist if blacklist else set(failed_on)
        pool_of_live = self._engines if task.allowed is None else \
            [e for e in task.allowed if e in self._engines]
        if all(e in avoid or self._actors.holds(e) for e in pool_of_live):    # (an engine actors hold whole may
            return blacklist                        # never free up) every live engine was tried: any will do
        return avoid

    def _choose(self, task: TaskState) -> EngineId | None:
        """The scheme's choice among the task's candidates (None: no candidate); SchemeFailure if the scheme errs."""
        exclude = self._exclusions(task) if (task.blacklist or task.failed_on) else None
        if task.allowed is None:
            return self._pool.choose(self._rng, exclude, task.spec)
        pool = self._pool
        cands = sorted((self._engines[e].seq, e) for e in task.allowed
                       if e in pool and not (exclude and e in exclude))
        if not cands:
            return None
        ids = [e for _, e in cands]
        return self._scheme.choose_among(ids, [self._engines[e].load for e in ids], self._directory, task.spec,
                                         self._rng)

    def _place_or_queue(self, task: TaskState) -> None:
        """Dispatch a ready (queued-state) task now if a candidate exists, else enqueue it."""
        try:
            engine = self._choose(task)
        except SchemeFailure as exc:
            self._fail(task, SCHEME_ERROR, Outcome.SCHEME_ERROR, str(exc))
            return
        if engine is not None:
            self._dispatch(task, engine)
            return
        if self._never_placeable(task):
            if task.spec.timeout_s is None:
                self._fail(task, IMPOSSIBLE_DEPENDENCY, Outcome.IMPOSSIBLE, self._impossible_reason(task))
                return
        self._enqueue(task)

    def _never_placeable(self, task: TaskState) -> bool:
        """With at least one live engine, does none of the live engines qualify (ignoring load)?"""
        if not self._engines or (task.pending and task.spec.follow is not None):
            return False
        if not task.blacklist and task.allowed is None:     # (the usual task, queued while every engine is busy)
            return False                                    # any live engine qualifies, and there is one
        blacklist = task.blacklist or ()
        live = self._engines if task.allowed is None else [e for e in task.allowed if e in self._engines]
        return all(e in blacklist for e in live)

    def _impossible_reason(self, task: TaskState) -> str:
        if task.blacklist:
            tried = ", ".join(map(str, sorted(map(str, task.blacklist))))
            return f"every live candidate engine refused the task (unmet dependency on engines {tried})"
        if task.allowed is not None and not task.allowed:
            return "no engine is both a target and where the `follow` dependencies ran"
        if task.spec.follow is not None:
            return "the engine(s) that `follow` requires are gone"
        return "none of the target engines is alive"

    def _enqueue(self, task: TaskState) -> None:
        self._queue.push(task)
        if task.timer is None and task.spec.timeout_s is not None:
            self._start_timer(task)

    def _dispatch(self, task: TaskState, engine_id: EngineId, send: bool = True) -> None:
        eng = self._engines[engine_id]
        self._move(task, RUNNING)
        task.qseq = 0
        task.engine = engine_id
        task.dispatched_at = self._now
        task.queue_len = self._count[_N_QUEUED]
        task.engine_load = eng.load
        eng.load += 1
        self._assign_count += 1
        eng.seq = self._assign_count
        eng.running[task.id] = task
        if self.hwm and eng.load >= self.hwm:
            self._pool.discard(engine_id)
        else:
            self._pool.update(engine_id, eng.load, eng.seq)
        if task.timer is not None:
            self._cancel_timer(task)
        if send:                                    # (not for a task the engine took: staging.py)
            self._out.append(Dispatch(task.id, engine_id, task.attempt))

    def _release(self, task: TaskState) -> None:
        """Take a running task off its engine (it stays RUNNING until moved); the engine regains capacity."""
        eng = self._engines[task.engine]
        del eng.running[task.id]
        eng.load -= 1
        self._sync_pool(eng)

    def _sync_pool(self, eng: EngineState) -> None:
        """Tell the pool an engine's load changed: available below hwm, else out (direct tasks and actors
        can hold an engine at or above hwm)."""
        if self.hwm and eng.load >= self.hwm:
            self._pool.discard(eng.id)
        else:
            self._pool.update(eng.id, eng.load, eng.seq)

    def _drain(self, engine_id: EngineId) -> None:
        """Capacity appeared on `engine_id`: place the oldest queued tasks that can use it."""
        queue = self._queue
        if not queue.has_entries_for(engine_id):
            return
        available = self._pool.load                  # every pool keeps its available engines' loads
        while engine_id in available:
            found = queue.oldest_for(engine_id, self._exclusions)
            if found is None:
                return
            entry, source = found
            task = entry[1]
            try:
                chosen = self._choose(task)
            except SchemeFailure as exc:             # this task fails; its entry dies with it
                self._fail(task, SCHEME_ERROR, Outcome.SCHEME_ERROR, str(exc))
                continue
            if chosen is None:                       # cannot happen while engine_id qualifies
                raise AssertionError(f"queued task {task.id!r} could not be placed on a free engine")
            queue.remove(entry, source)
            self._dispatch(task, chosen)

    def _drain_all(self) -> None:
        """Rescan every queued task in FIFO order (after rare events such as losing an engine).

        A task found impossible here fails with its dependents, and a dependent may be one of the tasks still to
        rescan (a `follow` on it, queued): that one has ended and is skipped."""
        for task in self._queue.take_all():
            if task.state == QUEUED:
                self._place_or_queue(task)

    # -------------------------------------------------------------------------- task endings

    def _record(self, task: TaskState, outcome: Outcome, error_name: str | None, started_at: float | None,
                engine_id: EngineId | None) -> None:
        dispatched = engine_id is not None
        self.records.add(task.id, task.attempt, engine_id, task.submitted_at,
                         task.dispatched_at if dispatched else None, started_at, self._now, outcome,
                         error_name, task.queue_len if dispatched else None,
                         task.engine_load if dispatched else None, self.scheme_name, task.spec.label)

    def _fail(self, task: TaskState, error_name: str, outcome: Outcome, message: str) -> None:
        """The scheduler fails a task that is not on an engine (waiting, queued, or taken back)."""
        was_queued = task.state == QUEUED
        self._move(task, DONE)
        if was_queued and task.qseq:     # its queue entries are dead now
            task.qseq = 0
            self._queue.entry_died(self._count[_N_QUEUED])
        self._record(task, outcome, error_name, None, None)
        if task.actor is None or not task.actor.silent:      # a re-creation answers no one (actors.py)
            self._out.append(Fail(task.id, error_name, message))
        task.engine = None               # failed in the scheduler: it failed on no engine (for `follow`)
        self._finish(task, ok=False)

    def _finish(self, task: TaskState, ok: bool) -> None:
        """Forget a task just moved to DONE; its dependents react in FIFO order, iteratively (chains can be long)."""
        if task.actor is not None and self._actors.ended(task, ok):
            return
        task.qseq = 0
        if task.timer is not None:
            self._cancel_timer(task)
        tid = task.id
        del self._tasks[tid]
        has_dependents = tid in self._waiters
        if not self._forget or has_dependents:       # dependents still need the outcome
            (self._completed if ok else self._failed)[tid] = task.engine
        if not has_dependents:
            return
        self._finished_queue.append((tid, ok))
        if self._notifying:
            return
        self._notifying = True
        try:
            while self._finished_queue:
                self._notify_dependents(*self._finished_queue.popleft())
        finally:
            self._notifying = False

    def _notify_dependents(self, task_id: TaskId, succeeded: bool) -> None:
        for dep_task in self._waiters.pop(task_id, ()):
            if dep_task.state == DONE:
                continue
            after = dep_task.spec.after
            if after is not None and task_id in after.ids:
                self._tally_after(dep_task, after, succeeded)
            dep_task.pending -= 1
            if dep_task.state == WAITING or (dep_task.state == QUEUED and dep_task.spec.follow is not None):
                self._evaluate(dep_task)

    def _retry_or_end(self, task: TaskState, engine_id: EngineId, lost: bool, why: str = "") -> None:
        """An attempt failed on `engine_id` (raised, aborted, timed out, engine or worker lost): retry or end
        the task. A task the client asked to abort while it ran is never retried."""
        if task.actor is not None and self._actors.attempt_failed(task, engine_id, lost, why):
            return
        if task.attempt < task.spec.retries and not task.aborting:
            task.attempt += 1
            if task.failed_on is None:
                task.failed_on = set()
            task.failed_on.add(engine_id)
            self._requeue(task)
            return
        if lost:
            self._out.append(Fail(task.id, ENGINE_ERROR, why or f"engine {engine_id!r} died while running task "
                                                                f"{task.id!r}"))
        else:
            self._out.append(Deliver(task.id, engine_id, task.attempt, False))
        self._move(task, DONE)
        self._finish(task, ok=False)

    def _requeue(self, task: TaskState) -> None:
        """Place a task that came back from an engine (retry, unmet) again; `follow` is re-evaluated."""
        if task.spec.follow is not None:
            self._evaluate(task)                     # follow may be met on more engines by now
            return
        self._move(task, QUEUED)
        self._place_or_queue(task)

    def _running_on(self, task_id: TaskId, engine_id: EngineId, attempt: int) -> TaskState | None:
        task = self._tasks.get(task_id)
        if task is None or task.state != RUNNING or task.engine != engine_id or task.attempt != attempt:
            return None                                # stale report: ignore
        return task

    def _on_finished(self, ev: TaskFinished) -> None:
        task = self._tasks.get(ev.task_id)
        if task is None or task.state != RUNNING or task.engine != ev.engine_id or task.attempt != ev.attempt:
            return                                       # stale report: ignore
        if task.actor is not None and self._actors.finished(task, ev):
            return
        eng = self._engines[ev.engine_id]                # release the engine (inline _release: hot path)
        del eng.running[task.id]
        eng.load -= 1
        if self.hwm and eng.load >= self.hwm:            # held there by direct tasks or actors
            self._pool.discard(eng.id)
        else:
            self._pool.update(eng.id, eng.load, eng.seq)
        if ev.outcome is _OK:
            self.records.add(task.id, task.attempt, ev.engine_id, task.submitted_at, task.dispatched_at,
                             ev.started_at, self._now, _OK, None, task.queue_len, task.engine_load,
                             self.scheme_name, task.spec.label)
            self._out.append(Deliver(task.id, ev.engine_id, task.attempt, True))
            tid = task.id
            self._move(task, DONE)
            if task.timer is None and tid not in self._waiters:   # _finish, inlined for the hot path
                del self._tasks[tid]
                if not self._forget:
                    self._completed[tid] = task.engine
            else:
                self._finish(task, ok=True)
        else:
            error = ev.error_name or (TASK_ABORTED if ev.outcome is Outcome.ABORTED else "Exception")
            self._record(task, ev.outcome, error, ev.started_at, ev.engine_id)
            self._retry_or_end(task, ev.engine_id, lost=False)
        if self._count[_N_QUEUED] and ev.engine_id in self._engines:
            self._drain(ev.engine_id)

    def _take_back(self, ev: DependencyUnmet | DispatchFailed | WorkerDied) -> TaskState | None:
        """The task an engine report is about, taken off that engine; None for a stale report."""
        task = self._running_on(ev.task_id, ev.engine_id, ev.attempt)
        if task is not None:
            if task.actor is not None and self._actors.taken_back(task, ev):
                return None                              # an actor call: handled there
            self._release(task)
        return task

    def _on_worker_died(self, ev: WorkerDied) -> None:
        task = self._take_back(ev)
        if task is None:
            return
        self._record(task, Outcome.WORKER_LOST, ENGINE_ERROR, None, ev.engine_id)
        self._retry_or_end(task, ev.engine_id, lost=True,
                           why=f"the worker of engine {ev.engine_id!r} died while running task {task.id!r}"
                               + (f": {ev.reason}" if ev.reason else ""))
        if self._count[_N_QUEUED] and ev.engine_id in self._engines:
            self._drain(ev.engine_id)

    def _on_unmet(self, ev: DependencyUnmet) -> None:
        task = self._take_back(ev)
        if task is None:
            return
        self._record(task, Outcome.UNMET, "UnmetDependency", None, ev.engine_id)
        if task.blacklist is None:
            task.blacklist = set()
        task.blacklist.add(ev.engine_id)
        if task.aborting:                            # aborted while out: it ends here instead of moving on
            self._fail(task, TASK_ABORTED, Outcome.ABORTED, "aborted while its engine checked its dependencies")
        else:
            self._requeue(task)
        if ev.engine_id in self._engines:
            self._drain(ev.engine_id)

    def _on_dispatch_failed(self, ev: DispatchFailed) -> None:
        task = self._take_back(ev)
        if task is None:
            return
        self._record(task, Outcome.ENGINE_LOST, "DispatchFailed", None, ev.engine_id)
        self._retry_or_end(task, ev.engine_id, lost=True)
        if ev.engine_id in self._engines:
            self._drain(ev.engine_id)

    def _move(self, task: TaskState, new: TaskStatus,
              _moves: dict[TaskStatus | None, dict[TaskStatus, tuple[int, int]]] = MOVES) -> None:
        """The one place a task changes state: only moves in TRANSITIONS (else SchedulerMisuse); keeps the counts.

        (MOVES is TRANSITIONS with the count slots precomputed: this runs three times per task.)
        """
        try:
            slots = _moves[task.state][new]
        except KeyError:
            raise SchedulerMisuse(f"task {task.id!r}: illegal state change {task.state} -> {new}") from None
        count = self._count
        count[slots[0]] -= 1
        count[slots[1]] += 1
        task.state = new

    # ------------------------------------------------------------------------------- engines

    def _on_engine_joined(self, ev: EngineJoined) -> None:
        if ev.engine_id in self._engines:
            raise SchedulerMisuse(f"engine {ev.engine_id!r} joined twice")
        self._join_count += 1
        eng = EngineState(ev.engine_id, -self._join_count)   # newest joined = least recently used
        first = not self._engines
        self._engines[ev.engine_id] = eng
        self._directory.join(ev.engine_id, ev.speed, ev.labels)
        self._pool.add(ev.engine_id, 0, eng.seq)
        if first:       # tasks that queued with no engine at all: place them, or find them impossible
            self._drain_all()
        else:
            self._drain(ev.engine_id)

    def _on_engine_lost(self, ev: EngineLost) -> None:
        eng = self._engines.pop(ev.engine_id, None)
        if eng is None:
            return
        self._pool.discard(ev.engine_id)
        self._directory.leave(ev.engine_id)
        self._actors.engine_lost(eng)                    # its actors die (their calls leave eng.running)
        stranded = list(eng.running.values())
        eng.running.clear()
        for task in stranded:
            self._record(task, Outcome.ENGINE_LOST, ENGINE_ERROR, None, ev.engine_id)
            self._retry_or_end(task, ev.engine_id, lost=True)
        self._drain_all()

    # ------------------------------------------------------------------- timers, abort, purge

    def _start_timer(self, task: TaskState) -> None:
        self._next_token += 1
        token = task.timer = self._next_token
        self._timers[token] = task
        assert task.spec.timeout_s is not None
        self._out.append(StartTimer(token, self._now + task.spec.timeout_s))

    def _cancel_timer(self, task: TaskState) -> None:
        token = task.timer
        task.timer = None
        if token is not None and self._timers.pop(token, None) is not None:
            self._out.append(CancelTimer(token))

    def _on_timer(self, ev: TimerFired) -> None:
        task = self._timers.pop(ev.token, None)
        if task is None or task.timer != ev.token:
            return
        task.timer = None
        if task.state in (WAITING, QUEUED):
            self._fail(task, TASK_TIMEOUT, Outcome.TIMEOUT,
                       f"task waited longer than its timeout of {task.spec.timeout_s} s")

    def _on_abort(self, ev: AbortRequested) -> None:
        task = self._tasks.get(ev.task_id)
        if task is None or (task.actor is not None and task.actor.silent):   # a re-creation: kill the actor
            return
        if task.state == RUNNING:
            task.aborting = True
            self._out.append(Cancel(task.id, task.engine, task.attempt))
        elif not (self._staging.staged and self._staging.abort(task)):
            self._fail(task, TASK_ABORTED, Outcome.ABORTED, "aborted before it ran")

    def _on_purge(self, ev: PurgeRequested) -> None:
        needed = {i for t in self._tasks.values() if t.spec.follow is not None for i in t.spec.follow.ids}
        ids = list(self._completed) + list(self._failed) if ev.task_ids is None else ev.task_ids
        for tid in ids:
            if tid not in needed:
                self._completed.pop(tid, None)
                self._failed.pop(tid, None)
        if ev.task_ids is None and not needed:   # release the dicts' own memory too
            self._completed = {}
            self._failed = {}
        if self._queue.has_dead:
            self._queue.compact()


__all__ = ["TaskScheduler", "SCHEMES", "TaskStatus", "TRANSITIONS", "WAITING", "QUEUED", "RUNNING", "DONE"]
