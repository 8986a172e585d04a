"""The core's own (small) error tree. Inside the core a failed task is data, not an exception."""


# Names of the failures the scheduler itself makes; drivers raise the same-named errors. (Here, not in model.py: a
# nanny names one, and model.py's dataclasses cost a process ~25 ms to import.)
INVALID_DEPENDENCY = "InvalidDependency"
IMPOSSIBLE_DEPENDENCY = "ImpossibleDependency"
TASK_TIMEOUT = "TaskTimeout"
ENGINE_ERROR = "EngineError"
TASK_ABORTED = "TaskAborted"
TIME_LIMIT_EXCEEDED = "TimeLimitExceeded"
UNMET_DEPENDENCY = "UnmetDependency"
ACTOR_DIED_ERROR = "ActorDiedError"


class SchedulerMisuse(ValueError):
    """Raised when a driver misuses the scheduler: a duplicate task id or engine, an unknown event."""
