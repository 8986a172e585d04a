"""The pure scheduling core: sans-IO, no clocks, no sockets, no simpy (see docs/core-api.md).

The names below are imported when first used (PEP 562): a worker or a nanny imports sched_lab.core.dependency and
options only, and importing a submodule imports this package first (bench: a worker's start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_NAMES = {
    "actors": ("ActorInfo", "ActorRole", "ActorState"),
    "dependency": ("Dependency",),
    "errors": ("SchedulerMisuse", "ACTOR_DIED_ERROR", "ENGINE_ERROR", "IMPOSSIBLE_DEPENDENCY", "INVALID_DEPENDENCY",
               "TASK_ABORTED", "TASK_TIMEOUT", "TIME_LIMIT_EXCEEDED", "UNMET_DEPENDENCY"),
    "model": ("AbortRequested", "Action", "ActorKillRequested", "ActorSpec", "Cancel", "CancelTimer", "Deliver",
              "DependencyUnmet", "Dispatch", "DispatchFailed", "DropActor", "EngineJoined", "EngineLost", "Event",
              "Fail", "Outcome", "PurgeRequested", "RecordList", "RecordSink", "Stage", "StageDepth",
              "StageReturned", "StartTimer", "TaskFinished", "TaskRecord", "TaskResubmitted", "TaskRestored",
              "TaskSpec", "TaskSubmitted", "TaskTaken", "TimerFired", "Unstage", "WorkerDied", "WorkerRestarted"),
    "pump": ("ACTION_TYPES", "OPTIONAL_ACTION_TYPES", "EventPump"),
    "scheduler": ("DONE", "QUEUED", "RUNNING", "TRANSITIONS", "WAITING", "TaskScheduler", "TaskStatus"),
    "schemes": ("SCHEMES", "Scheme", "get_scheme"),
}
_WHERE = {name: module for module, names in _NAMES.items() for name in names}

__all__ = [
    "Dependency", "SchedulerMisuse", "TaskScheduler", "SCHEMES", "Scheme", "get_scheme",
    "TaskSpec", "TaskRecord", "Outcome", "RecordList", "RecordSink",
    "EngineJoined", "EngineLost", "TaskSubmitted", "TaskResubmitted", "TaskFinished", "DependencyUnmet",
    "DispatchFailed", "TimerFired", "AbortRequested", "PurgeRequested", "WorkerDied", "TaskRestored", "Event",
    "Dispatch", "Deliver", "Fail", "Cancel", "StartTimer", "CancelTimer", "Action",
    "INVALID_DEPENDENCY", "IMPOSSIBLE_DEPENDENCY", "TASK_TIMEOUT", "ENGINE_ERROR", "TASK_ABORTED",
    "TIME_LIMIT_EXCEEDED",
    "UNMET_DEPENDENCY", "WAITING", "QUEUED", "RUNNING", "DONE", "TaskStatus", "TRANSITIONS",
    "EventPump", "ACTION_TYPES", "OPTIONAL_ACTION_TYPES",
    "ActorSpec", "ActorInfo", "ActorRole", "ActorState", "WorkerRestarted", "ActorKillRequested", "DropActor",
    "ACTOR_DIED_ERROR", "StageDepth", "TaskTaken", "StageReturned", "Stage", "Unstage",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value                 # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:                           # what a type checker and an editor see
    from .actors import ActorInfo, ActorRole, ActorState
    from .dependency import Dependency
    from .errors import (
        ACTOR_DIED_ERROR, ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, INVALID_DEPENDENCY, TASK_ABORTED, TASK_TIMEOUT,
        TIME_LIMIT_EXCEEDED, UNMET_DEPENDENCY, SchedulerMisuse,
    )
    from .model import (
        AbortRequested, Action, ActorKillRequested, ActorSpec, Cancel, CancelTimer, Deliver, DependencyUnmet,
        Dispatch, DispatchFailed, DropActor, EngineJoined, EngineLost, Event, Fail, Outcome, PurgeRequested,
        RecordList, RecordSink, Stage, StageDepth, StageReturned, StartTimer, TaskFinished, TaskRecord, TaskRestored,
        TaskResubmitted, TaskSpec, TaskSubmitted, TaskTaken, TimerFired, Unstage, WorkerDied, WorkerRestarted,
    )
    from .pump import ACTION_TYPES, OPTIONAL_ACTION_TYPES, EventPump
    from .scheduler import DONE, QUEUED, RUNNING, TRANSITIONS, WAITING, TaskScheduler, TaskStatus
    from .schemes import SCHEMES, Scheme, get_scheme
