"""The pure scheduling core: sans-IO, no clocks, no sockets, no simpy (see docs/core-api.md)."""

from .actors import ActorInfo, ActorRole, ActorState
from .dependency import Dependency
from .errors import SchedulerMisuse
from .model import (
    ACTOR_DIED_ERROR, ActorKillRequested, ActorSpec, DropActor, WorkerRestarted, ENGINE_ERROR, IMPOSSIBLE_DEPENDENCY, INVALID_DEPENDENCY, TASK_ABORTED, TASK_TIMEOUT, TIME_LIMIT_EXCEEDED,
    UNMET_DEPENDENCY, AbortRequested, Action, Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch,
    DispatchFailed, EngineJoined, EngineLost, Event, Fail, Outcome, PurgeRequested, RecordList,
    RecordSink, Stage, StageDepth, StageReturned, StartTimer, TaskFinished, TaskRecord, TaskResubmitted, TaskRestored,
    TaskSpec, TaskSubmitted, TaskTaken, TimerFired, Unstage, WorkerDied,
)
from .pump import ACTION_TYPES, OPTIONAL_ACTION_TYPES, EventPump
from .scheduler import DONE, QUEUED, RUNNING, TRANSITIONS, WAITING, TaskScheduler, TaskStatus
from .schemes import SCHEMES, Scheme, get_scheme

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
