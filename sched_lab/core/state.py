"""The scheduler's mutable bookkeeping for one engine and one task (internal to sched_lab.core)."""

from __future__ import annotations

from collections.abc import Hashable
from enum import StrEnum
from typing import Any

from .model import TaskSpec

TaskId = Hashable
EngineId = Hashable


class TaskStatus(StrEnum):
    """Where a task is in its life (compares equal to its lower-case name, e.g. "queued")."""

    WAITING = "waiting"      # for its `after`/`follow` dependencies
    QUEUED = "queued"        # ready, waiting for an engine
    RUNNING = "running"      # dispatched to an engine (or just taken back from it)
    DONE = "done"            # terminal: delivered or failed


WAITING, QUEUED, RUNNING, DONE = TaskStatus.WAITING, TaskStatus.QUEUED, TaskStatus.RUNNING, TaskStatus.DONE

# The one transition table: state -> the states a task may move to from it (None = not yet tracked).
TRANSITIONS: dict[TaskStatus | None, frozenset[TaskStatus]] = {
    None: frozenset({WAITING, QUEUED}),
    WAITING: frozenset({QUEUED, DONE}),
    QUEUED: frozenset({RUNNING, DONE}),
    RUNNING: frozenset({QUEUED, DONE}),
    DONE: frozenset(),
}

# For TaskScheduler._move: per-state count slots, and per allowed move (old -> {new: (slot_old, slot_new)}).
COUNT_SLOT: dict[TaskStatus | None, int] = {None: 0, WAITING: 1, QUEUED: 2, RUNNING: 3, DONE: 4}
MOVES: dict[TaskStatus | None, dict[TaskStatus, tuple[int, int]]] = {
    old: {new: (COUNT_SLOT[old], COUNT_SLOT[new]) for new in allowed} for old, allowed in TRANSITIONS.items()
}


class EngineState:
    """A live engine: its outstanding tasks, its load and its last-assignment sequence number."""

    __slots__ = ("id", "load", "seq", "running")

    def __init__(self, engine_id: EngineId, seq: int) -> None:
        self.id = engine_id
        self.load = 0
        self.seq = seq
        self.running: dict[TaskId, TaskState] = {}


class TaskState:
    """A task the scheduler still tracks: where it is in its life, and what placing it must respect.

    `qseq` is the stamp of its current queue entry (0 = not queued); `pending` counts unfinished
    dependency ids; `after_good`/`after_bad` count finished `after` ids that do / do not count as
    met; `allowed` is its explicit engine set (targets ∩ follow engines) or None for any engine.
    """

    __slots__ = ("id", "spec", "state", "attempt", "engine", "blacklist", "failed_on", "submitted_at",
                 "dispatched_at", "timer", "qseq", "pending", "after_good", "after_bad", "allowed",
                 "queue_len", "engine_load", "aborting", "actor")

    def __init__(self, spec: TaskSpec, now: float) -> None:
        self.id = spec.task_id
        self.spec = spec
        self.state: TaskStatus | None = None      # set by TaskScheduler._move only
        self.attempt = 0
        self.engine: EngineId | None = None
        self.blacklist: set[EngineId] | None = None
        self.failed_on: set[EngineId] | None = None
        self.submitted_at = now
        self.dispatched_at: float | None = None
        self.timer: int | None = None
        self.qseq = 0
        self.pending = 0
        self.after_good = 0
        self.after_bad = 0
        self.allowed: frozenset[EngineId] | None = None
        self.queue_len: int | None = None
        self.engine_load: int | None = None
        self.aborting = False                 # a client asked to abort it while it ran: no retry
        self.actor: Any = None                # actors.py's link for actor creations, calls and direct tasks
