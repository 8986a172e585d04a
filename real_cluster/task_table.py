"""The controller's tables: tasks not yet final (with who wants their results) and registered engines.

The controller and the request handlers (hub_requests) both read and change these tables, so
neither reaches into the other. A PendingTask holds the opaque payload, the flags, the clients
subscribed to its result, the client that submitted it and the engine's latest reply; the table
keeps, per submitting client, how many of its tasks are still pending (the controller batches the
results of a client with many in flight). RecordRows is the core's record sink, kept as rows for the
task database.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sched_lab.core import ActorSpec, RecordList, TaskSpec

from .aio_link import Link
from .messages import NO_FLAGS, TaskDone, TaskFlags


@dataclass(slots=True)
class EngineConn:
    """A registered engine: its connection, identity and liveness."""

    engine_id: int
    uuid: str
    pid: int
    link: Link
    last_seen: float
    completed: int = 0
    given: set[tuple[str, int]] = field(default_factory=set)    # (task id, attempt) sent and not yet reported
    direct: Link | None = None                  # its worker's own connection (tasks go straight to the worker)
    direct_out: dict[tuple[str, int], Any] = field(default_factory=dict)    # attempts out over a direct link: its
                                                                            # WorkerLink (direct_links.py)


@dataclass(slots=True)
class PendingTask:
    """A task not yet final: its opaque payload, who wants its result, and its engine's latest reply."""

    task_id: str
    payload: bytes
    flags: TaskFlags
    submitted_at: float | None
    subscribers: set[Link] = field(default_factory=set)
    reply: tuple[TaskDone, int] | None = None
    owner: Link | None = None           # the client that submitted it


def spec_for(task_id: str, flags: TaskFlags) -> TaskSpec:
    """The core's view of a task."""
    if flags is NO_FLAGS:                   # most tasks: the core's defaults are the default flags
        return TaskSpec(task_id)
    if flags.actor is not None or flags.actor_id is not None:
        return _actor_spec(task_id, flags)
    return TaskSpec(task_id, targets=frozenset(flags.targets) if flags.targets else None, after=flags.after,
                    follow=flags.follow, retries=flags.retries, timeout_s=flags.timeout_s, label=flags.label,
                    time_limit_s=flags.time_limit_s, size_hint=flags.size_hint, direct=flags.direct)


def _actor_spec(task_id: str, flags: TaskFlags) -> TaskSpec:
    """The core's view of an actor's creation (an ActorSpec) or method call (its actor id, nothing else)."""
    if flags.actor_id is not None:
        return TaskSpec(task_id, label=flags.label, actor_id=flags.actor_id)
    opts = flags.actor
    assert opts is not None
    return TaskSpec(task_id, targets=frozenset(flags.targets) if flags.targets else None, after=flags.after,
                    follow=flags.follow, retries=flags.retries, timeout_s=flags.timeout_s, label=flags.label,
                    time_limit_s=flags.time_limit_s,
                    creates_actor=ActorSpec(opts.actor_id, max_restarts=opts.max_restarts,
                                            max_task_retries=opts.max_task_retries,
                                            max_concurrency=opts.max_concurrency))


class TaskTable:
    """Tasks not yet final, by id, and per submitting client the number of them still pending."""

    def __init__(self) -> None:
        self._tasks: dict[str, PendingTask] = {}
        self._owned: dict[Link, int] = {}

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[str]:
        return iter(self._tasks)

    def __getitem__(self, task_id: str) -> PendingTask:
        return self._tasks[task_id]

    def get(self, task_id: str) -> PendingTask | None:
        return self._tasks.get(task_id)

    def add(self, task: PendingTask) -> None:
        """Hold a new task; counts it against its owner (if any). The id must not be pending already."""
        if task.task_id in self._tasks:
            raise ValueError(f"task id {task.task_id!r} is already pending")
        self._tasks[task.task_id] = task
        if task.owner is not None:
            self._owned[task.owner] = self._owned.get(task.owner, 0) + 1

    def pop(self, task_id: str) -> PendingTask | None:
        """Remove a task (None if it is not pending); its owner's count goes down."""
        task = self._tasks.pop(task_id, None)
        if task is not None and task.owner is not None and task.owner in self._owned:
            self._owned[task.owner] -= 1
        return task

    def subscribe(self, task_id: str, link: Link) -> None:
        """Send this task's result to `link` too when it is final."""
        self._tasks[task_id].subscribers.add(link)

    def pending_of(self, owner: Link) -> int:
        """How many tasks `owner` submitted that are still pending (0 once the client is gone)."""
        return self._owned.get(owner, 0)

    def client_gone(self, link: Link) -> None:
        """Forget a closed client's count (its tasks run on; their results go to other subscribers)."""
        self._owned.pop(link, None)


class RecordRows(RecordList):
    """The core's record sink: rows kept as the tuples the core hands over, for the task database as they are
    (no TaskRecord built and taken apart again per task: bench_cpu_split.py)."""

    __slots__ = ()

    def drain_rows(self) -> list[tuple[Any, ...]]:
        """The rows so far, removed from the sink."""
        rows, self._rows = self._rows, []
        return rows
