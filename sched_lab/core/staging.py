"""Staging: the queue's head handed to engines that pull their next task themselves (internal to the core).

How this works. At hwm > 0, while no engine is below hwm, every scheme gives the queue's oldest task to the next
engine that ends a task: it is the only candidate. A driver whose engines can take that task without a hop (the
live cluster's local workers: docs/pull-at-hwm1.md) says how many tasks may wait for them (StageDepth). The
scheduler then moves the oldest queued tasks, up to that many, out of the ReadyQueue and emits a Stage for each;
the driver puts them where those engines look. An engine that ends a task takes the first one (TaskTaken, reported
before that task's answer): the scheduler records the dispatch it would have made. The driver takes back what no
engine took when it must (an engine went idle without taking one, an abort: StageReturned); those tasks are queued
again ahead of all others, with their old stamps, so the FIFO order is kept.

Only under a built-in scheme: a user's scheme sees every decision, and a take asks no scheme (the forced choice).
Which tasks are staged: only plain ones at the head of the open queue (no targets, dependencies, timeout, time
limit, actor or direct flag, retry exclusions), and only while no older task waits in another structure of the
queue that an engine ending its task might be owed instead. A staged task stays QUEUED (counted so), is in no queue
structure, and is never dispatched by the scheduler itself, so a task cannot run twice: the driver takes it back or
an engine takes it, never both (the driver's shared queue hands each task to one reader).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING

from .errors import TASK_ABORTED, SchedulerMisuse
from .model import Cancel, Outcome, Stage, StageDepth, StageReturned, TaskTaken, Unstage
from .state import QUEUED, TaskState

if TYPE_CHECKING:
    from .scheduler import TaskScheduler

TaskId = Hashable


class StageBook:
    """The scheduler's staged tasks (oldest first) and how many it may stage."""

    __slots__ = ("_sched", "depth", "staged")

    def __init__(self, sched: TaskScheduler) -> None:
        self._sched = sched
        self.depth = 0
        self.staged: dict[TaskId, TaskState] = {}

    # ------------------------------------------------------------------------------------ events
    def on_depth(self, ev: StageDepth) -> None:
        self.depth = ev.depth if self._sched._scheme.builtin else 0     # a user's scheme sees every decision

    def on_taken(self, ev: TaskTaken) -> None:
        task = self.staged.get(ev.task_id)
        if task is None or task.attempt != ev.attempt:
            raise SchedulerMisuse(f"engine {ev.engine_id!r} took task {ev.task_id!r} attempt {ev.attempt}, "
                                  f"which is not staged")
        del self.staged[ev.task_id]
        sched = self._sched
        eng = sched._engines.get(ev.engine_id)
        if eng is None:                              # its engine is gone (and its worker with it): as if returned
            return self._back([task])
        sched._dispatch(task, ev.engine_id, send=False)
        if task.engine_load:                         # the engine still counts the task it just ended (see TaskTaken)
            task.engine_load -= 1
        if task.aborting:                            # aborted while staged: cancel it where it runs
            sched._out.append(Cancel(task.id, ev.engine_id, task.attempt))

    def on_returned(self, ev: StageReturned) -> None:
        back: list[TaskState] = []
        for task_id, attempt in ev.keys:
            task = self.staged.get(task_id)
            if task is None or task.attempt != attempt:
                raise SchedulerMisuse(f"task {task_id!r} attempt {attempt} was returned but is not staged")
            del self.staged[task_id]
            back.append(task)
        self._back(back)

    # ----------------------------------------------------------------------------- scheduler hooks
    def abort(self, task: TaskState) -> bool:
        """An abort of `task`: True if it is staged (the driver is asked to take it back; see Unstage)."""
        if task.id not in self.staged:
            return False
        if not task.aborting:
            task.aborting = True
            self._sched._out.append(Unstage(task.id, task.attempt))
        return True

    def after(self, returned: bool) -> None:
        """After an event (`returned`: a StageReturned): while staged tasks wait and an engine has room, ask the
        driver for them back (Unstage of the oldest), so that engine gets it; else stage more (not right after a
        return: the driver feeds that just before what gives an engine room)."""
        if returned:
            return
        if self.staged and self._sched._pool.load:
            task = next(iter(self.staged.values()))
            self._sched._out.append(Unstage(task.id, task.attempt))
            return
        self.fill()

    def fill(self) -> None:
        """Stage the open queue's head while no engine is below hwm and fewer than `depth` are staged."""
        staged, depth = self.staged, self.depth
        if len(staged) >= depth:
            return
        sched = self._sched
        if sched._pool.load or not sched.hwm:       # an engine has room: the scheduler places tasks itself
            return
        queue = sched._queue
        open_q = queue.open
        out = sched._out
        while open_q and len(staged) < depth:
            q, task = open_q[0]
            if q != task.qseq:
                open_q.popleft()
                continue
            spec = task.spec
            if (task.actor is not None or spec.timeout_s is not None or spec.time_limit_s is not None
                    or task.blacklist or task.failed_on or queue.older_elsewhere(q)):
                return
            open_q.popleft()                         # (its stamp stays: it orders the task if it comes back)
            staged[task.id] = task
            out.append(Stage(task.id, task.attempt))

    def _back(self, tasks: list[TaskState]) -> None:
        """Tasks taken out of the staging, no engine's: an aborted one fails, the rest are queued again ahead of the
        open queue with their old stamps, and go to any engine with room (oldest first)."""
        sched = self._sched
        keep = []
        for task in tasks:
            if task.state != QUEUED:
                raise SchedulerMisuse(f"staged task {task.id!r} is {task.state}, not queued")
            if task.aborting:
                task.qseq = 0
                sched._fail(task, TASK_ABORTED, Outcome.ABORTED, "aborted before it ran")
            else:
                keep.append(task)
        if not keep:
            return
        sched._queue.push_front(sorted(keep, key=lambda t: t.qseq))
        for engine_id in list(sched._pool.load):
            sched._drain(engine_id)
