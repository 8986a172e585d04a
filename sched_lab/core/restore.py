"""Restoring a fresh scheduler from what a previous run of its driver left (a controller killed and restarted).

How this works. The driver reads its own records (the live controller: its task database) and replays
them as `TaskRestored` events; the rules for what each becomes live here, not in the driver:

- a finished task (`succeeded` True/False) is remembered with its outcome and engine, exactly as if it
  had finished in this run, so a dependent's `after`/`follow` is judged on the real outcome (a failed
  `after` dependency fails its dependent with ImpossibleDependency, as without the restart);
- an unfinished task that had `attempts_used` attempts dispatched queues again as attempt number
  `attempts_used` (the attempt that was out when the old run ended counts as lost, like an engine
  death), or, when that was its last allowed attempt (`attempts_used > retries`), fails with
  EngineError. Dependencies the scheduler does not know (purged before the restart) count as met, as
  for a resubmission.

`RestoreRules` is a part of TaskScheduler kept in its own file (scheduler.py is near the size cap).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from .errors import ENGINE_ERROR, SchedulerMisuse
from .model import Outcome, TaskRestored, TaskSpec
from .state import WAITING, TaskState, TaskStatus

if TYPE_CHECKING:
    from .actors import ActorBook

TaskId = Hashable
EngineId = Hashable


class RestoreRules:
    """TaskScheduler's handling of `TaskRestored` (a mixin; see the module docstring for the rules)."""

    _tasks: dict[TaskId, TaskState]
    _completed: dict[TaskId, EngineId | None]
    _failed: dict[TaskId, EngineId | None]
    _now: float
    _actors: ActorBook                      # actors and direct tasks (actors.py)

    if TYPE_CHECKING:                       # provided by TaskScheduler
        def _submit(self, spec: TaskSpec, purged_deps_met: bool, role: Any = None, attempt: int = 0) -> None: ...
        def _move(self, task: TaskState, new: TaskStatus) -> None: ...
        def _fail(self, task: TaskState, error_name: str, outcome: Outcome, message: str) -> None: ...

    def _on_restored(self, ev: TaskRestored) -> None:
        spec = ev.spec
        tid = spec.task_id
        if tid in self._tasks or tid in self._completed or tid in self._failed:
            raise SchedulerMisuse(f"task id {tid!r} is known already; restore a task once, into a fresh scheduler")
        if ev.succeeded is not None:
            (self._completed if ev.succeeded else self._failed)[tid] = ev.engine_id
            return
        used = ev.attempts_used
        if spec.actor_id is not None or spec.creates_actor is not None or spec.direct:
            self._actors.restore_unfinished(spec, used)        # actors.py: none survives a restart
            return
        if used <= spec.retries:
            self._submit(spec, purged_deps_met=True, attempt=used)
            return
        task = TaskState(spec, self._now)
        task.attempt = used - 1
        self._tasks[tid] = task
        self._move(task, WAITING)
        self._fail(task, ENGINE_ERROR, Outcome.ENGINE_LOST,
                   f"its scheduler stopped while attempt {used} of task {tid!r} was out, and it has no "
                   f"retries left")


__all__ = ["RestoreRules"]
