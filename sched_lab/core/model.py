"""The core's vocabulary: task specifications, input events, output actions and task records.

Everything here is a frozen, slotted dataclass validated in `__post_init__`. Events are facts
(past tense) that a driver reports to `TaskScheduler.handle`; actions are what the scheduler asks
the driver to do. Times are floats in the driver's clock (seconds live, time units simulated).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol, TypeVar

from .dependency import Dependency

TaskId = Hashable
EngineId = Hashable
_T = TypeVar("_T")


def _fast_init(cls: type[_T] | None = None, *, plain_if: str | None = None) -> Any:
    """Give a frozen slotted dataclass a faster `__init__` with the same signature, defaults and `__post_init__`.

    How: the instance is switched for the duration of `__init__` to a plain twin class with the same
    slots (a documented, layout-checked `__class__` assignment), filled with ordinary attribute
    stores, and switched back; instances are always of the dataclass itself, frozen, equal and
    hashable as before (a subclass instance is filled through the slot descriptors instead). About
    3x cheaper than the generated frozen `__init__`, which calls `object.__setattr__` per field;
    events and actions are built once or twice per task (benchmarks/bench_sim.py, bench_core.py).
    `plain_if`: an expression over the parameters (and this module's globals) under which
    `__post_init__` has nothing to check or convert (it is then not called; `__post_init__` must
    still accept that case).
    """
    if cls is None:
        return lambda c: _fast_init(c, plain_if=plain_if)
    twin = type(f"_{cls.__name__}Fill", (), {"__slots__": cls.__slots__})  # type: ignore[attr-defined]
    namespace: dict[str, Any] = {**globals(), "_cls": cls, "_twin": twin, "_set_class": object.__setattr__}
    params, fill, slow = [], [], []
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        namespace[f"_set_{f.name}"] = getattr(cls, f.name).__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not dataclasses.MISSING:
            raise TypeError(f"{cls.__name__}.{f.name}: default factories are not supported here")
        else:
            params.append(f.name)
        fill.append(f"self.{f.name} = {f.name}")
        slow.append(f"_set_{f.name}(self, {f.name})")
    body = ["if self.__class__ is _cls:", "    _set_class(self, '__class__', _twin)",
            *("    " + line for line in fill), "    self.__class__ = _cls", "else:",
            *("    " + line for line in slow)]
    if hasattr(cls, "__post_init__"):
        body.append(f"if not ({plain_if}): self.__post_init__()" if plain_if else "self.__post_init__()")
    exec(f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = f"Create a {cls.__name__}."
    setattr(cls, "__init__", init)
    return cls


class Outcome(StrEnum):
    """How one attempt of a task ended (the `outcome` column of a TaskRecord)."""

    OK = "ok"                      # the engine ran it and it returned
    ERROR = "error"                # the engine ran it and it raised
    ENGINE_LOST = "engine_lost"    # its engine died (or could not be reached) while it was out
    UNMET = "unmet"                # the engine refused it: a functional dependency was unmet
    TIMEOUT = "timeout"            # it waited in the scheduler longer than its timeout
    IMPOSSIBLE = "impossible"      # its dependencies or placement can never be satisfied
    INVALID = "invalid"            # it named unknown task ids, or itself, as dependencies
    ABORTED = "aborted"            # aborted while queued in the scheduler (or by its engine)
    WORKER_LOST = "worker_lost"    # its engine's worker process died or was killed; the engine stays
    TIME_LIMIT = "time_limit"      # it ran longer than its time_limit_s: its engine stopped it
    SCHEME_ERROR = "scheme_error"  # the scheme raised or chose an engine that was not a candidate
    ACTOR_DIED = "actor_died"      # an actor call failed in the scheduler: its actor is dead or was killed


# Module-level aliases for hot paths: looking up `Outcome.OK` on the enum class costs ~0.2 µs each time.
_OK, _ERROR, _ABORTED = Outcome.OK, Outcome.ERROR, Outcome.ABORTED
_TIME_LIMIT = Outcome.TIME_LIMIT

# (The names of the failures the scheduler itself makes are in errors.py.)


@_fast_init
@dataclass(frozen=True, slots=True)
class ActorSpec:
    """What the scheduler needs to know about one actor (carried by the TaskSpec that creates it).

    `actor_id`: unique among the scheduler's actors (hashable, not None). `max_restarts`: how many
    times the instance is re-created after its engine or worker dies. `max_task_retries`: how many
    times each call is re-run when the instance dies while the call is out. `max_concurrency`: at
    most this many calls of the actor out at once (>= 1). See docs/core-api.md, "Actors and direct tasks".
    """

    actor_id: Hashable
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if self.actor_id is None:
            raise ValueError("actor_id must not be None")
        hash(self.actor_id)                                   # TypeError for an unhashable id
        for name, low in (("max_restarts", 0), ("max_task_retries", 0), ("max_concurrency", 1)):
            value = getattr(self, name)
            if type(value) is not int or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


@_fast_init(plain_if="targets is None and after is None and follow is None and retries.__class__ is int "
                     "and retries >= 0 and timeout_s is None and time_limit_s is None and size_hint is None "
                     "and direct is False and creates_actor is None and actor_id is None")
@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the scheduler needs to know about one task (never its function or arguments).

    `targets`: engine ids it may run on (None = any). `after`: tasks that must finish first
    (time dependency); `follow`: tasks whose engines it must run on (location dependency).
    `retries`: extra runs after a failure. `timeout_s`: longest wait in the scheduler (None or 0 =
    no limit; never interrupts a running task). `time_limit_s`: longest run on an engine (None = no
    limit); the engine (live: its nanny; simulated: the engine model) stops it and reports
    Outcome.TIME_LIMIT, which retries like an error. Module requirements are not the core's business:
    engines check them and report DependencyUnmet (the simulator keeps them in its workload).
    `size_hint`: the submitter's estimate of the task's length (>= 0, None = unknown), shown to
    schemes as `choice.task.size_hint`.
    `direct`: a DirectView task: `targets` names exactly one engine; it goes there at once, in
    submission order, not held by the hwm (no `after`/`follow`). `creates_actor`: this task runs an
    actor's constructor (an ActorSpec). `actor_id`: this task is a method call of that actor (no
    targets/after/follow/retries/time_limit_s: use the actor's max_task_retries). At most one of the
    three. Rules: docs/core-api.md, "Actors and direct tasks".
    """

    task_id: TaskId
    targets: frozenset[EngineId] | None = None
    after: Dependency | None = None
    follow: Dependency | None = None
    retries: int = 0
    timeout_s: float | None = None
    label: str | None = None
    time_limit_s: float | None = None
    size_hint: float | None = None
    direct: bool = False
    creates_actor: ActorSpec | None = None
    actor_id: Hashable | None = None

    def __post_init__(self) -> None:
        if (self.targets is None and self.after is None and self.follow is None and type(self.retries) is int
                and self.retries >= 0 and self.timeout_s is None and self.time_limit_s is None
                and self.size_hint is None and self.direct is False and self.creates_actor is None
                and self.actor_id is None):
            return                                   # the common case, checked cheaply
        if self.targets is not None:
            targets = frozenset((self.targets,)) if isinstance(self.targets, (int, str)) else frozenset(self.targets)
            if not targets:
                raise ValueError("targets must name at least one engine (use None for any engine)")
            object.__setattr__(self, "targets", targets)
        for name in ("after", "follow"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Dependency):
                object.__setattr__(self, name, Dependency.coerce(value))
            elif value is not None and not value.ids:
                object.__setattr__(self, name, None)
        from .options import check_retries, check_time_limit_s, check_timeout_s   # (options -> schemes -> model)

        check_retries(self.retries)
        object.__setattr__(self, "time_limit_s", check_time_limit_s(self.time_limit_s))
        timeout_s = check_timeout_s(self.timeout_s)
        object.__setattr__(self, "timeout_s", timeout_s or None)     # 0 = no limit
        if self.size_hint is not None and (isinstance(self.size_hint, bool) or not isinstance(self.size_hint, (int, float))
                                           or not self.size_hint >= 0):
            raise ValueError(f"size_hint must be a number >= 0 or None, got {self.size_hint!r}")
        if self.direct is not False or self.creates_actor is not None or self.actor_id is not None:
            self._check_kind()

    def _check_kind(self) -> None:
        """Validate the direct / creates_actor / actor_id flags (rare specs; see the class docstring)."""
        if type(self.direct) is not bool:
            raise ValueError(f"direct must be a bool, got {self.direct!r}")
        kinds = [name for name, on in (("direct", self.direct), ("creates_actor", self.creates_actor is not None),
                                       ("actor_id", self.actor_id is not None)) if on]
        if len(kinds) > 1:
            raise ValueError(f"a task is at most one of direct, creates_actor, actor_id; got {kinds}")
        if self.direct:
            if self.targets is None or len(self.targets) != 1:
                raise ValueError(f"a direct task needs exactly one target engine, got targets={self.targets!r}")
            if self.after is not None or self.follow is not None:
                raise ValueError("a direct task takes no after/follow dependencies (it goes to its engine at once)")
        elif self.creates_actor is not None:
            if not isinstance(self.creates_actor, ActorSpec):
                raise ValueError(f"creates_actor must be an ActorSpec, got {self.creates_actor!r}")
        else:
            hash(self.actor_id)
            bad = [name for name in ("targets", "after", "follow", "time_limit_s") if getattr(self, name) is not None]
            if self.retries:
                bad.append("retries")
            if bad:
                raise ValueError(f"an actor call takes no {', '.join(bad)} (it runs on its actor's engine; "
                                 "re-runs come from the actor's max_task_retries)")


# ----------------------------------------------------------------------------------------- events

@_fast_init
@dataclass(frozen=True, slots=True)
class EngineJoined:
    """An engine registered and can take tasks; `speed` (a factor > 0) and `labels` are what it advertises."""

    now: float
    engine_id: EngineId
    speed: float = 1.0
    labels: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if type(self.speed) is float and self.speed == 1.0 and type(self.labels) is frozenset and not self.labels:
            return
        if isinstance(self.speed, bool) or not isinstance(self.speed, (int, float)) or not 0 < self.speed < math.inf:
            raise ValueError(f"engine speed must be a finite number > 0, got {self.speed!r}")
        if isinstance(self.labels, str) or not all(isinstance(x, str) for x in self.labels):
            raise ValueError(f"engine labels must be a collection of strings, got {self.labels!r}")
        object.__setattr__(self, "labels", frozenset(self.labels))


@_fast_init
@dataclass(frozen=True, slots=True)
class EngineLost:
    """An engine died, disconnected or stopped answering heartbeats."""

    now: float
    engine_id: EngineId
    reason: str = ""


@_fast_init
@dataclass(frozen=True, slots=True)
class TaskSubmitted:
    """A client submitted a task."""

    now: float
    spec: TaskSpec


@_fast_init
@dataclass(frozen=True, slots=True)
class TaskResubmitted:
    """A client asked to run a finished task again under a new id (`spec` carries the new id and the old flags).

    Dependencies that are no longer known to the scheduler (purged) are taken as met: the original
    already waited for them.
    """

    now: float
    spec: TaskSpec


@_fast_init(plain_if="outcome is _OK")
@dataclass(frozen=True, slots=True)
class TaskFinished:
    """An engine finished one attempt of a task: `outcome` is Outcome.OK, ERROR (it raised) or ABORTED.

    `error_name` is the exception's name (ename) for ERROR/ABORTED; None for OK.
    """

    now: float
    task_id: TaskId
    engine_id: EngineId
    attempt: int
    outcome: Outcome
    error_name: str | None = None
    started_at: float | None = None

    def __post_init__(self) -> None:
        outcome = self.outcome
        if outcome is not _OK and outcome is not _ERROR and outcome is not _ABORTED and outcome is not _TIME_LIMIT:
            raise ValueError(f"TaskFinished.outcome must be Outcome.OK, ERROR, ABORTED or TIME_LIMIT, "
                             f"got {self.outcome!r}")


@_fast_init
@dataclass(frozen=True, slots=True)
class DependencyUnmet:
    """An engine refused a task because a functional dependency (`require`, `depend`) was unmet."""

    now: float
    task_id: TaskId
    engine_id: EngineId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class DispatchFailed:
    """The driver could not deliver a Dispatch to its engine (counts as a lost attempt)."""

    now: float
    task_id: TaskId
    engine_id: EngineId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer started by a StartTimer action reached its deadline."""

    now: float
    token: int


@_fast_init
@dataclass(frozen=True, slots=True)
class AbortRequested:
    """A client asked to abort a task (queued tasks fail with TaskAborted; running ones are cancelled on the engine)."""

    now: float
    task_id: TaskId


@_fast_init
@dataclass(frozen=True, slots=True)
class PurgeRequested:
    """Forget finished tasks (`task_ids`, or every finished task when None); their memory is freed."""

    now: float
    task_ids: tuple[TaskId, ...] | None = None


@_fast_init
@dataclass(frozen=True, slots=True)
class WorkerDied:
    """The process running an attempt on an engine died or was killed (os._exit, a signal, the memory
    limit, stopped too long); the engine itself stays. The attempt counts as lost (EngineError; retries
    apply); `reason` says how it ended and reaches the client."""

    now: float
    task_id: TaskId
    engine_id: EngineId
    attempt: int
    reason: str = ""


@_fast_init
@dataclass(frozen=True, slots=True)
class WorkerRestarted:
    """An engine's worker process was replaced (with or without a task running); the engine stays.

    Every actor alive on that engine dies (its instance lived in the old worker). A task that was
    running in the old worker is reported separately (WorkerDied).
    """

    now: float
    engine_id: EngineId
    reason: str = ""


@_fast_init
@dataclass(frozen=True, slots=True)
class ActorKillRequested:
    """A client asked to kill an actor: it is never restarted; its queued calls fail, calls out are cancelled."""

    now: float
    actor_id: Hashable


@_fast_init
@dataclass(frozen=True, slots=True)
class TaskRestored:
    """A task a previous run of the driver knew, replayed into a fresh scheduler after a restart (restore.py).

    `succeeded` True/False: it had finished (ok / failed) on `engine_id` (None: on no engine); it is only
    remembered, for its dependents. `succeeded` None: it had not finished; `attempts_used` attempts of it
    had been dispatched (the last one is lost with the old run). Replay finished tasks first, then the
    unfinished ones in their original submission order.
    """

    now: float
    spec: TaskSpec
    succeeded: bool | None = None
    attempts_used: int = 0
    engine_id: EngineId | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.spec, TaskSpec):
            raise TypeError(f"spec must be a TaskSpec, got {self.spec!r}")
        if not (self.succeeded is None or self.succeeded is True or self.succeeded is False):
            raise ValueError(f"succeeded must be None, True or False, got {self.succeeded!r}")
        if type(self.attempts_used) is not int or self.attempts_used < 0:
            raise ValueError(f"attempts_used must be an int >= 0, got {self.attempts_used!r}")


@_fast_init
@dataclass(frozen=True, slots=True)
class StageDepth:
    """How many queued tasks the scheduler may stage (Stage actions) for engines that pull their next task
    themselves; 0 (the start) stages none. Staged tasks already out stay so until taken or returned."""

    now: float
    depth: int

    def __post_init__(self) -> None:
        if type(self.depth) is not int or self.depth < 0:
            raise ValueError(f"StageDepth.depth must be an int >= 0, got {self.depth!r}")


@_fast_init
@dataclass(frozen=True, slots=True)
class TaskTaken:
    """Engine `engine_id` took staged attempt `attempt` of task `task_id` itself, and runs it: the scheduler records
    the dispatch (no Dispatch action: the engine has it). Reported before the answer that came with it (the engine
    still counts the task it just ended, and its load is recorded without that one)."""

    now: float
    task_id: TaskId
    engine_id: EngineId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class StageReturned:
    """The driver took these staged attempts back, (task_id, attempt) each, before any engine took them: they are
    queued again ahead of every other queued task, in their old order."""

    now: float
    keys: tuple[tuple[TaskId, int], ...]


Event = (EngineJoined | EngineLost | TaskSubmitted | TaskResubmitted | TaskFinished | DependencyUnmet
         | DispatchFailed | TimerFired | AbortRequested | PurgeRequested | WorkerDied | WorkerRestarted
         | ActorKillRequested | TaskRestored | StageDepth | TaskTaken | StageReturned)


# ---------------------------------------------------------------------------------------- actions

@_fast_init
@dataclass(frozen=True, slots=True)
class Dispatch:
    """Send attempt `attempt` of task `task_id` to engine `engine_id`."""

    task_id: TaskId
    engine_id: EngineId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class Deliver:
    """The engine's reply to this attempt is the task's final result: pass it to the client."""

    task_id: TaskId
    engine_id: EngineId
    attempt: int
    ok: bool


@_fast_init
@dataclass(frozen=True, slots=True)
class Fail:
    """The scheduler failed the task itself: raise `error_name` (e.g. TaskTimeout) with `message` to the client."""

    task_id: TaskId
    error_name: str
    message: str = ""


@_fast_init
@dataclass(frozen=True, slots=True)
class Cancel:
    """Ask an engine not to run a dispatched task it may not have started yet (abort)."""

    task_id: TaskId
    engine_id: EngineId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class StartTimer:
    """Report TimerFired(token) at time `deadline` (unless cancelled; a stale firing is harmless)."""

    token: int
    deadline: float


@_fast_init
@dataclass(frozen=True, slots=True)
class CancelTimer:
    """The timer `token` is no longer needed."""

    token: int


@_fast_init
@dataclass(frozen=True, slots=True)
class DropActor:
    """Delete actor `actor_id`'s instance on engine `engine_id` (it was killed; its slot is free again)."""

    actor_id: Hashable
    engine_id: EngineId


@_fast_init
@dataclass(frozen=True, slots=True)
class Stage:
    """Put attempt `attempt` of queued task `task_id` where engines that pull take their next task: the first
    one to end its task takes it (report TaskTaken), unless the driver takes it back first (StageReturned).
    Only while no engine is below hwm: then the next engine to end a task is the only candidate, so the take is
    the dispatch every scheme would make (docs/pull-at-hwm1.md)."""

    task_id: TaskId
    attempt: int


@_fast_init
@dataclass(frozen=True, slots=True)
class Unstage:
    """Take staged tasks back that no engine has taken: an engine has room and nothing else to take (`task_id` is
    then the oldest staged), or `task_id` was aborted. Report them in a StageReturned; a task an engine took first
    is reported by its TaskTaken (an aborted one is then cancelled there)."""

    task_id: TaskId
    attempt: int


Action = Dispatch | Deliver | Fail | Cancel | StartTimer | CancelTimer | DropActor | Stage | Unstage


# ---------------------------------------------------------------------------------------- records

@_fast_init
@dataclass(frozen=True, slots=True)
class TaskRecord:
    """One attempt of one task, as produced identically by the live cluster and the simulator.

    `queue_len` is the number of tasks waiting in the scheduler when this attempt was dispatched;
    `engine_load` the engine's outstanding tasks just before it. Unset times are None.
    """

    task_id: TaskId
    attempt: int
    engine_id: EngineId | None
    submitted_at: float
    dispatched_at: float | None
    started_at: float | None
    finished_at: float
    outcome: Outcome
    error_name: str | None
    queue_len: int | None
    engine_load: int | None
    scheme: str
    label: str | None = None

    @staticmethod
    def fields() -> tuple[str, ...]:
        """Column names, in order (the DataFrame columns of both drivers)."""
        return tuple(TaskRecord.__dataclass_fields__)

    def to_row(self) -> tuple[Any, ...]:
        """The values in `fields()` order, `outcome` as its plain string (ready for SQLite or JSON)."""
        return (self.task_id, self.attempt, self.engine_id, self.submitted_at, self.dispatched_at, self.started_at,
                self.finished_at, self.outcome.value, self.error_name, self.queue_len, self.engine_load,
                self.scheme, self.label)

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> TaskRecord:
        """The record of a row in `fields()` order (RecordSink.add's arguments, `to_row()`, a database row).

        `outcome` may be an Outcome or its string; a row of the wrong length is a ValueError.
        """
        if len(row) != _N_RECORD_FIELDS:
            raise ValueError(f"a TaskRecord row has {_N_RECORD_FIELDS} values, got {len(row)}: {row!r}")
        return cls(row[0], row[1], row[2], row[3], row[4], row[5], row[6], Outcome(row[7]), row[8], row[9],
                   row[10], row[11], row[12])


_N_RECORD_FIELDS = len(TaskRecord.fields())


class RecordSink(Protocol):
    """Where the scheduler writes one record per finished attempt (columnar in the simulator)."""

    def add(self, task_id: TaskId, attempt: int, engine_id: EngineId | None, submitted_at: float,
            dispatched_at: float | None, started_at: float | None, finished_at: float, outcome: Outcome,
            error_name: str | None, queue_len: int | None, engine_load: int | None, scheme: str,
            label: str | None) -> None: ...


class RecordList:
    """The default sink: keeps records (as tuples until read) — `records` lists them, `drain()` hands them over."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[tuple[Any, ...]] = []

    def add(self, *fields: Any) -> None:
        self._rows.append(fields)

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def records(self) -> list[TaskRecord]:
        return [TaskRecord.from_row(row) for row in self._rows]

    def drain(self) -> list[TaskRecord]:
        """The records so far, removed from the sink."""
        rows, self._rows = self._rows, []
        return [TaskRecord.from_row(row) for row in rows]
