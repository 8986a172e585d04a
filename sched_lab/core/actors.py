"""Actors and direct tasks in the core: the rules behind TaskScheduler's actor hooks (internal).

How this works. The scheduler keeps one `ActorBook`; a task that creates an actor, calls one, or is
a direct (DirectView) task carries a `_Link` in `TaskState.actor`, and the scheduler hands such
tasks to the book at a few points (submission, an attempt's end, an engine's loss, `_finish`).
Everything else (placement by the scheme, the ReadyQueue, timers, records) is the scheduler's own.

- A creation task is placed like any task. When it finishes OK its engine slot is not released:
  the actor keeps it (counted by hwm and the schemes' loads) while it is ALIVE.
- Calls wait in their actor's own FIFO (state QUEUED, never in the ReadyQueue) and go to the
  actor's engine while fewer than `max_concurrency` are out. They add no load (the pinned slot is theirs).
- The instance dies with its engine (EngineLost), its worker (WorkerRestarted, or a call's
  WorkerDied/DispatchFailed): its slot is released, its calls out are retried (up to
  max_task_retries each, ahead of the queued ones) or fail ActorDiedError, and while restarts remain
  a re-creation (a fresh attempt of the creation task, placed by the scheme) is submitted internally.
  A re-creation emits no Deliver/Fail: the client had its answer for the creation task already.
- Direct tasks are dispatched at submission to their one target, not held by the hwm, and add one
  to that engine's load while out.
The rules, as the drivers see them, are in docs/core-api.md ("Actors and direct tasks").
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from .errors import ACTOR_DIED_ERROR, ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, TASK_ABORTED, SchedulerMisuse
from .model import (
    ActorKillRequested, ActorSpec, Cancel, Deliver, DependencyUnmet, Dispatch, DispatchFailed, DropActor, Fail,
    Outcome, TaskFinished, TaskSpec, WorkerDied, WorkerRestarted,
)
from .state import DONE, QUEUED, RUNNING, EngineState, TaskState

if TYPE_CHECKING:
    from .scheduler import TaskScheduler

ActorId = Hashable
EngineId = Hashable
TaskId = Hashable


class ActorState(StrEnum):
    """Where an actor is in its life (compares equal to its lower-case name)."""

    PENDING = "pending"          # its creation task has not finished yet
    ALIVE = "alive"              # an instance runs on `engine_id`; calls are dispatched there
    RESTARTING = "restarting"    # its instance died; a re-creation is queued or running
    DEAD = "dead"                # creation failed, restarts used up, or killed: every call fails ActorDiedError


@dataclass(frozen=True, slots=True)
class ActorInfo:
    """One actor as `TaskScheduler.actors()` reports it (for client.actors() and queue_status).

    `incarnation`: 0 until the first instance is alive, then 1, 2, ... one per successful
    (re-)creation. `engine_id` is set only while ALIVE.
    """

    actor_id: ActorId
    creation_task_id: TaskId
    state: ActorState
    engine_id: EngineId | None
    incarnation: int
    restarts_used: int
    max_restarts: int
    calls_queued: int
    calls_out: int
    killed: bool


@dataclass(frozen=True, slots=True)
class ActorRole:
    """What a task is to an actor (`TaskScheduler.actor_role(task_id)`), for the driver handling its Dispatch.

    `role`: "create" (the first construction), "recreate" (a restart: re-run the constructor; the
    core emits no Deliver/Fail for it) or "call". `incarnation`: for a call, the instance it was
    dispatched to (the current one while it waits); for a (re)creation, the number the instance
    will have if this attempt succeeds.
    """

    actor_id: ActorId
    role: str
    incarnation: int


CREATE, RECREATE, CALL, DIRECT = "create", "recreate", "call", "direct"


class _Link:
    """TaskState.actor: the task's role, its actor record (None for direct tasks) and, for a call,
    the incarnation it went to and its place in the actor's submission order."""

    __slots__ = ("role", "rec", "silent", "incarnation", "seq")

    def __init__(self, role: str, rec: _Actor | None, seq: int = 0) -> None:
        self.role = role
        self.rec = rec
        self.silent = role == RECREATE          # no Deliver/Fail: the client has its answer already
        self.incarnation = 0
        self.seq = seq


_DIRECT = _Link(DIRECT, None)


class _Actor:
    """The book's record of one actor."""

    __slots__ = ("spec", "creation", "state", "engine", "incarnation", "restarts_used", "queue", "out", "killed",
                 "next_attempt", "allowed", "blacklist", "next_seq", "creating")

    def __init__(self, creation: TaskSpec) -> None:
        assert creation.creates_actor is not None
        self.spec: ActorSpec = creation.creates_actor
        self.creation = creation
        self.state = ActorState.PENDING
        self.engine: EngineId | None = None
        self.incarnation = 0
        self.restarts_used = 0
        self.queue: deque[TaskState] = deque()      # calls waiting (lazily skipped once no longer QUEUED)
        self.out: dict[TaskId, TaskState] = {}      # calls dispatched, in dispatch order
        self.killed = False
        self.next_attempt = 0                       # the attempt number of the next (re-)creation
        self.allowed: frozenset[EngineId] | None = None
        self.blacklist: set[EngineId] | None = None
        self.next_seq = 0
        self.creating: TaskState | None = None      # the creation or re-creation task while it is tracked


class ActorBook:
    """Actors and direct tasks for one TaskScheduler (which calls these hooks; see the module docstring)."""

    def __init__(self, scheduler: TaskScheduler) -> None:
        self._s = scheduler
        self._actors: dict[ActorId, _Actor] = {}
        self._on_engine: dict[EngineId, dict[ActorId, _Actor]] = {}
        self.silent_ids: set[TaskId] = set()     # creation ids in the scheduler's tasks only as re-creations

    # ------------------------------------------------------------------------------ queries

    def hold_every_engine(self) -> bool:
        """Whether, with hwm > 0, every live engine is at or above hwm with its ALIVE actors' pinned slots alone (no
        task out whose end frees a slot): then no task waiting for an engine gets one until an actor dies or is
        killed, or an engine joins. O(engines)."""
        s = self._s
        return bool(s.hwm and s._engines) and all(self.holds(e) for e in s._engines)

    def holds(self, engine_id: EngineId) -> bool:
        """Whether, with hwm > 0, this live engine is at or above hwm with its ALIVE actors' pinned slots alone: no
        task waiting for an engine gets this one until one of those actors goes."""
        pinned = self._on_engine.get(engine_id)
        if not pinned:
            return False
        s = self._s
        return bool(s.hwm) and s.hwm <= s._engines[engine_id].load <= len(pinned)

    def held_tasks(self) -> int:
        """How many tasks wait for an engine while `hold_every_engine()` (0 otherwise): they run once an actor goes or
        an engine joins, or fail at their timeout. Calls wait for their actor, not for a slot: not counted. For
        drivers' diagnostics (the live controller logs it): O(the tasks waiting)."""
        s = self._s
        if not s.waiting_count or not self.hold_every_engine():
            return 0
        return s._queue.live_count() + len(s._staging.staged)

    def infos(self) -> list[ActorInfo]:
        return [self._info(rec) for rec in self._actors.values()]

    def info(self, actor_id: ActorId) -> ActorInfo | None:
        rec = self._actors.get(actor_id)
        return None if rec is None else self._info(rec)

    @staticmethod
    def _info(rec: _Actor) -> ActorInfo:
        queued = sum(1 for t in rec.queue if t.state == QUEUED)
        return ActorInfo(rec.spec.actor_id, rec.creation.task_id, rec.state, rec.engine, rec.incarnation,
                         rec.restarts_used, rec.spec.max_restarts, queued, len(rec.out), rec.killed)

    def role(self, task: TaskState) -> ActorRole | None:
        link = task.actor
        if link is None or link.rec is None:
            return None
        rec = link.rec
        if link.role == CALL:
            return ActorRole(rec.spec.actor_id, CALL, link.incarnation if task.state == RUNNING else rec.incarnation)
        return ActorRole(rec.spec.actor_id, link.role, rec.incarnation + 1)

    # --------------------------------------------------------------------------- submission

    def submit(self, spec: TaskSpec, resubmitted: bool) -> None:
        """A TaskSubmitted/TaskResubmitted whose spec is direct, creates an actor or calls one."""
        s = self._s
        tid = spec.task_id
        if tid in s._tasks or tid in s._completed or tid in s._failed:
            raise SchedulerMisuse(f"task id {tid!r} was submitted already")
        spec._check_kind()            # (again: a spec built without __post_init__ must not slip through)
        if spec.creates_actor is not None:
            aid = spec.creates_actor.actor_id
            if aid in self._actors:
                raise SchedulerMisuse(f"actor id {aid!r} exists already (a creation cannot be resubmitted)")
            rec = self._actors[aid] = _Actor(spec)
            s._submit(spec, purged_deps_met=resubmitted, role=_Link(CREATE, rec))
            task = s._tasks.get(tid)
            if task is not None and rec.state == ActorState.PENDING:
                rec.creating = task
            return
        task = TaskState(spec, s._now)
        s._tasks[tid] = task
        s._move(task, QUEUED)
        if spec.direct:
            task.actor = _DIRECT
            task.allowed = spec.targets
            (engine,) = spec.targets  # type: ignore[misc]
            if engine in s._engines:
                self._dispatch_direct(task, engine)
            else:
                s._fail(task, ENGINE_ERROR, Outcome.ENGINE_LOST, f"engine {engine!r} is not connected")
            return
        known = self._actors.get(spec.actor_id)
        if known is None or known.state == ActorState.DEAD or known.killed:
            task.actor = _Link(CALL, known)
            why = "it is unknown" if known is None else ("it was killed" if known.killed else "it died")
            s._fail(task, ACTOR_DIED_ERROR, Outcome.ACTOR_DIED, f"cannot call actor {spec.actor_id!r}: {why}")
            return
        rec = known
        rec.next_seq += 1
        task.actor = _Link(CALL, rec, rec.next_seq)
        rec.queue.append(task)
        self._pump(rec)
        if task.state == QUEUED and spec.timeout_s is not None:
            s._start_timer(task)

    def restore_unfinished(self, spec: TaskSpec, attempts_used: int) -> None:
        """TaskRestored of an unfinished creation, call or direct task: none survives its scheduler (the
        instances and the engine connections were the old run's). Calls and creations fail ActorDiedError,
        direct tasks EngineError; an actor restored as created is unknown here, so its calls fail too."""
        s = self._s
        task = TaskState(spec, s._now)
        task.attempt = max(attempts_used - 1, 0)
        s._tasks[spec.task_id] = task
        s._move(task, QUEUED)
        if spec.direct:
            s._fail(task, ENGINE_ERROR, Outcome.ENGINE_LOST, "its scheduler restarted: a direct task does not "
                                                              "survive it")
        else:
            s._fail(task, ACTOR_DIED_ERROR, Outcome.ACTOR_DIED, "its scheduler restarted: actors and their calls "
                                                                "do not survive it")

    # ----------------------------------------------------------------------------- dispatch

    def _pump(self, rec: _Actor) -> None:
        """Dispatch the actor's oldest queued calls while it is alive and below max_concurrency."""
        if rec.state != ActorState.ALIVE:
            return
        queue, limit = rec.queue, rec.spec.max_concurrency
        while queue and len(rec.out) < limit:
            task = queue.popleft()
            if task.state == QUEUED:
                self._dispatch_call(rec, task)

    def _dispatch_call(self, rec: _Actor, task: TaskState) -> None:
        s = self._s
        eng = s._engines[rec.engine]
        self._start(task, eng)
        task.actor.incarnation = rec.incarnation
        rec.out[task.id] = task

    def _dispatch_direct(self, task: TaskState, engine_id: EngineId) -> None:
        s = self._s
        eng = s._engines[engine_id]
        self._start(task, eng)
        eng.load += 1
        s._sync_pool(eng)

    def _start(self, task: TaskState, eng: EngineState) -> None:
        """Move a queued task to RUNNING on `eng` and emit its Dispatch (no load change, no LRU reorder)."""
        s = self._s
        s._move(task, RUNNING)
        task.qseq = 0
        task.engine = eng.id
        task.dispatched_at = s._now
        task.queue_len = s._count[2]           # COUNT_SLOT[QUEUED]
        task.engine_load = eng.load
        eng.running[task.id] = task
        if task.timer is not None:
            s._cancel_timer(task)
        s._out.append(Dispatch(task.id, eng.id, task.attempt))

    # ------------------------------------------------------------------------- attempt ends

    def finished(self, task: TaskState, ev: TaskFinished) -> bool:
        """A TaskFinished for a linked task, running there under that attempt. True if handled here."""
        link = task.actor
        if link.role == CALL:
            self._call_finished(task, ev)
            return True
        if link.role == DIRECT or ev.outcome is not Outcome.OK:
            return False                         # the scheduler's own path (release, retry or end)
        s = self._s
        rec = link.rec
        eng = s._engines[ev.engine_id]
        del eng.running[task.id]                 # the slot stays taken: the actor pins it
        s.records.add(task.id, task.attempt, ev.engine_id, task.submitted_at, task.dispatched_at, ev.started_at,
                      s._now, Outcome.OK, None, task.queue_len, task.engine_load, s.scheme_name, task.spec.label)
        rec.creating = None
        rec.state = ActorState.ALIVE
        rec.engine = ev.engine_id
        rec.incarnation += 1
        self._on_engine.setdefault(ev.engine_id, {})[rec.spec.actor_id] = rec
        if link.role == CREATE:
            rec.next_attempt = task.attempt + 1
            rec.allowed = task.allowed
            rec.blacklist = set(task.blacklist) if task.blacklist else None
            s._out.append(Deliver(task.id, ev.engine_id, task.attempt, True))
            s._move(task, DONE)
            s._finish(task, ok=True)
        else:
            self._end_silently(task)
        if rec.killed:                           # killed while it was being created
            self._drop(rec)
        else:
            self._pump(rec)
        if self.holds(ev.engine_id):         # a retried task that avoids the engines it failed on may have been
            for engine_id in list(s._pool.load):    # waiting for this one: it may have them again (_exclusions)
                s._drain(engine_id)
        return True

    def _call_finished(self, task: TaskState, ev: TaskFinished) -> None:
        s = self._s
        rec = task.actor.rec
        del s._engines[ev.engine_id].running[task.id]
        rec.out.pop(task.id, None)
        ok = ev.outcome is Outcome.OK
        if ok:
            s._record(task, Outcome.OK, None, ev.started_at, ev.engine_id)
        else:
            error = ev.error_name or (TASK_ABORTED if ev.outcome is Outcome.ABORTED else "Exception")
            s._record(task, ev.outcome, error, ev.started_at, ev.engine_id)
        s._out.append(Deliver(task.id, ev.engine_id, task.attempt, ok))
        s._move(task, DONE)
        s._finish(task, ok=ok)
        self._pump(rec)

    def taken_back(self, task: TaskState, ev: DependencyUnmet | DispatchFailed | WorkerDied) -> bool:
        """An engine report that takes a running call back. True if handled here (calls only)."""
        link = task.actor
        if link.role != CALL:
            return False
        s = self._s
        rec = link.rec
        if isinstance(ev, DependencyUnmet):
            del s._engines[ev.engine_id].running[task.id]
            rec.out.pop(task.id, None)
            s._record(task, Outcome.UNMET, "UnmetDependency", None, ev.engine_id)
            s._fail(task, IMPOSSIBLE_DEPENDENCY, Outcome.IMPOSSIBLE,
                    f"engine {ev.engine_id!r} refused a call of actor {rec.spec.actor_id!r}, which cannot move")
            self._pump(rec)
            return True
        outcome = Outcome.WORKER_LOST if isinstance(ev, WorkerDied) else Outcome.ENGINE_LOST
        why = (f"the worker of engine {ev.engine_id!r} died" if isinstance(ev, WorkerDied)
               else f"engine {ev.engine_id!r} could not be reached")
        if rec.state == ActorState.ALIVE and rec.engine == ev.engine_id:
            self._instance_died(rec, s._engines[ev.engine_id], outcome, why,
                                prefer_same=isinstance(ev, WorkerDied))
        else:                                    # a call of a killed actor: it ends here
            del s._engines[ev.engine_id].running[task.id]
            rec.out.pop(task.id, None)
            s._record(task, outcome, ENGINE_ERROR, None, ev.engine_id)
            self._end_call(task, f"actor {rec.spec.actor_id!r} is gone: {why}")
        return True

    def attempt_failed(self, task: TaskState, engine_id: EngineId, lost: bool, why: str) -> bool:
        """From TaskScheduler._retry_or_end: an attempt of a linked task failed. True if handled here."""
        s = self._s
        link = task.actor
        if link.role == CREATE:
            return False
        if link.role == CALL:                    # left on a lost engine after its actor was killed
            link.rec.out.pop(task.id, None)
            self._end_call(task, f"actor {link.rec.spec.actor_id!r} is gone: engine {engine_id!r} was lost")
            return True
        if link.role == DIRECT:
            if engine_id not in s._engines:
                s._out.append(Fail(task.id, ENGINE_ERROR, why or f"engine {engine_id!r} died while running direct "
                                                                  f"task {task.id!r}"))
                s._move(task, DONE)
                s._finish(task, ok=False)
                return True
            if task.attempt < task.spec.retries and not task.aborting:
                task.attempt += 1                # direct retries stay on their engine
                s._move(task, QUEUED)
                self._dispatch_direct(task, engine_id)
                return True
            return False
        rec = link.rec                           # a re-creation failed: it ends silently; restart again or die
        if task.blacklist:                       # engines that refused the class stay refused for the next try
            rec.blacklist = set(task.blacklist)
        self._end_silently(task)
        self._restart_or_die(rec, prefer=None, avoid=engine_id)
        return True

    def ended(self, task: TaskState, ok: bool) -> bool:
        """From TaskScheduler._finish (before the outcome is kept). True if the task is fully handled here."""
        link = task.actor
        rec = link.rec
        if link.role == CREATE and not ok:
            rec.creating = None
            self._die(rec, "its creation failed")
        elif link.role == RECREATE:              # failed in the scheduler (impossible, scheme error, killed)
            self._end_silently(task)
            if not ok:
                self._die(rec, "it could not be re-created")
            return True
        return False

    # ---------------------------------------------------------------------------- deaths

    def engine_lost(self, eng: EngineState) -> None:
        """From _on_engine_lost (the engine is already out of the scheduler): its actors' instances die."""
        for rec in list(self._on_engine.get(eng.id, {}).values()):
            self._instance_died(rec, eng, Outcome.ENGINE_LOST, f"engine {eng.id!r} was lost", prefer_same=False)
        self._on_engine.pop(eng.id, None)

    def on_worker_restarted(self, ev: WorkerRestarted) -> None:
        s = self._s
        eng = s._engines.get(ev.engine_id)
        if eng is None:
            return
        why = f"the worker of engine {ev.engine_id!r} was restarted" + (f": {ev.reason}" if ev.reason else "")
        for rec in list(self._on_engine.get(ev.engine_id, {}).values()):
            self._instance_died(rec, eng, Outcome.WORKER_LOST, why, prefer_same=True)
        if s._count[2] and ev.engine_id in s._engines:
            s._drain(ev.engine_id)

    def _instance_died(self, rec: _Actor, eng: EngineState, outcome: Outcome, why: str, prefer_same: bool) -> None:
        """The ALIVE actor's instance on `eng` is gone: free its slot, take back its calls, restart or die."""
        s = self._s
        self._on_engine.get(eng.id, {}).pop(rec.spec.actor_id, None)
        rec.engine = None
        rec.state = ActorState.RESTARTING
        live = eng.id in s._engines
        eng.load -= 1
        if live:
            s._sync_pool(eng)
        out = sorted(rec.out.values(), key=lambda t: t.actor.seq)
        rec.out.clear()
        retried, ending = [], []
        for call in out:
            del eng.running[call.id]
            s._record(call, outcome, ENGINE_ERROR, None, eng.id)
            if call.attempt < rec.spec.max_task_retries and not call.aborting:
                call.attempt += 1
                s._move(call, QUEUED)
                retried.append(call)
            else:
                ending.append(call)
        rec.queue.extendleft(reversed(retried))
        self._restart_or_die(rec, prefer=eng.id if prefer_same and live else None,
                             avoid=None if prefer_same else eng.id)
        for call in ending:
            self._end_call(call, f"actor {rec.spec.actor_id!r} died while running the call: {why}")
        for call in retried:
            if call.state == QUEUED and call.timer is None and call.spec.timeout_s is not None:
                s._start_timer(call)
        if live and s._count[2]:
            s._drain(eng.id)

    def _restart_or_die(self, rec: _Actor, prefer: EngineId | None, avoid: EngineId | None) -> None:
        """Submit a re-creation if restarts remain (placed on `prefer` if it is a candidate), else die."""
        s = self._s
        if rec.killed:
            self._die(rec, "it was killed")
            return
        if rec.restarts_used >= rec.spec.max_restarts:
            self._die(rec, f"its {rec.spec.max_restarts} restart(s) are used up")
            return
        rec.restarts_used += 1
        rec.state = ActorState.RESTARTING
        c = rec.creation
        spec = TaskSpec(c.task_id, targets=c.targets, label=c.label, time_limit_s=c.time_limit_s,
                        size_hint=c.size_hint, creates_actor=c.creates_actor)
        task = TaskState(spec, s._now)
        task.actor = _Link(RECREATE, rec)
        task.attempt = rec.next_attempt
        rec.next_attempt += 1
        task.allowed = rec.allowed
        task.blacklist = set(rec.blacklist) if rec.blacklist else None
        if avoid is not None:
            task.failed_on = {avoid}
        rec.creating = task
        s._tasks[c.task_id] = task
        self.silent_ids.add(c.task_id)
        s._move(task, QUEUED)
        if prefer is not None and prefer in s._pool and (task.allowed is None or prefer in task.allowed) \
                and not (task.blacklist and prefer in task.blacklist):
            s._dispatch(task, prefer)
        else:
            s._place_or_queue(task)

    def _die(self, rec: _Actor, why: str) -> None:
        """The actor is dead for good: every queued call fails ActorDiedError."""
        rec.state = ActorState.DEAD
        rec.engine = None
        s = self._s
        while rec.queue:
            call = rec.queue.popleft()
            if call.state == QUEUED:
                s._fail(call, ACTOR_DIED_ERROR, Outcome.ACTOR_DIED, f"actor {rec.spec.actor_id!r} is dead: {why}")

    def _end_call(self, call: TaskState, message: str) -> None:
        """A call that was out ends with ActorDiedError (its attempt's record is written already)."""
        s = self._s
        s._out.append(Fail(call.id, ACTOR_DIED_ERROR, message))
        s._move(call, DONE)
        s._finish(call, ok=False)

    def _end_silently(self, task: TaskState) -> None:
        """A re-creation task leaves the scheduler with no action (the creation's answer was given long ago)."""
        s = self._s
        if task.state != DONE:
            s._move(task, DONE)
        task.qseq = 0
        if task.timer is not None:
            s._cancel_timer(task)
        if s._tasks.get(task.id) is task:
            del s._tasks[task.id]
            self.silent_ids.discard(task.id)
        rec = task.actor.rec
        if rec.creating is task:
            rec.creating = None

    # ------------------------------------------------------------------------------ kill

    def on_kill(self, ev: ActorKillRequested) -> None:
        s = self._s
        rec = self._actors.get(ev.actor_id)
        if rec is None or rec.killed or rec.state == ActorState.DEAD:
            return
        rec.killed = True
        for call in list(rec.out.values()):      # out calls end with whatever their engine answers
            call.aborting = True
            s._out.append(Cancel(call.id, call.engine, call.attempt))
        creating = rec.creating
        if rec.state == ActorState.ALIVE:
            self._drop(rec)
        elif creating is not None and creating.state == RUNNING:
            creating.aborting = True             # its answer decides; an OK one is dropped at once
            s._out.append(Cancel(creating.id, creating.engine, creating.attempt))
            self._die(rec, "it was killed")
            rec.state = ActorState.PENDING if creating.actor.role == CREATE else ActorState.RESTARTING
        elif creating is not None:               # waiting or queued: it never runs
            s._fail(creating, TASK_ABORTED, Outcome.ABORTED, f"actor {ev.actor_id!r} was killed before it was created")
            self._die(rec, "it was killed")
        else:
            self._die(rec, "it was killed")

    def _drop(self, rec: _Actor) -> None:
        """Delete a killed actor's instance: DropActor, its slot freed, queued calls failed."""
        s = self._s
        engine = rec.engine
        self._on_engine.get(engine, {}).pop(rec.spec.actor_id, None)
        s._out.append(DropActor(rec.spec.actor_id, engine))
        self._die(rec, "it was killed")
        eng = s._engines.get(engine)
        if eng is not None:
            eng.load -= 1
            s._sync_pool(eng)
            if s._count[2]:
                s._drain(engine)


__all__ = ["ActorBook", "ActorInfo", "ActorRole", "ActorState"]
