"""The ready queue: tasks whose dependencies are met, waiting for an engine, in FIFO order.

How this works. Each entry is `(qseq, task)`, stamped with the task's queue sequence number; an
entry whose stamp no longer matches `task.qseq` is dead (the task left the queue some other way)
and is skipped, then dropped. Tasks go to one of four structures:

- `open`: tasks that may run on any engine (the common case), a deque;
- `open_excl`: tasks that may run on any engine but a few (blacklisted by an unmet functional
  dependency, or retries avoiding engines they failed on), scanned in order;
- `pinned[e]`: tasks restricted to an explicit engine set (targets, follow), one deque per engine
  of the set (the same entry in each);
- `stuck`: tasks no engine could ever take (they wait for a timeout, or for a first engine).

`oldest_for(e)` finds the oldest entry that can use engine e by looking only at the heads of the
structures that concern e, so a completion never rescans the whole queue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Hashable

from .state import TaskState

EngineId = Hashable
Entry = tuple[int, TaskState]
Exclusions = Callable[[TaskState], Collection[EngineId] | None]


class ReadyQueue:
    """FIFO of ready tasks, indexed by the engines they may use."""

    def __init__(self) -> None:
        self.open: deque[Entry] = deque()
        self.open_excl: deque[Entry] = deque()
        self.pinned: dict[EngineId, deque[Entry]] = {}
        self.stuck: deque[Entry] = deque()
        self._seq = 0
        self._dead = 0

    def push(self, task: TaskState) -> None:
        """Append a task (its `allowed`, `blacklist` and `failed_on` decide where it goes)."""
        self._seq += 1
        task.qseq = q = self._seq
        entry = (q, task)
        if task.allowed is not None and not task.allowed:
            self.stuck.append(entry)
        elif task.allowed is not None:
            for e in task.allowed:
                self.pinned.setdefault(e, deque()).append(entry)
        elif task.blacklist or task.failed_on:
            self.open_excl.append(entry)
        else:
            self.open.append(entry)

    def push_front(self, tasks: list[TaskState]) -> None:
        """Put tasks that left the open queue with their stamps kept (staging.py) back at its front, in the given
        order (oldest first: their stamps are older than every entry the open queue holds)."""
        self.open.extendleft((task.qseq, task) for task in reversed(tasks))

    def older_elsewhere(self, qseq: int) -> bool:
        """Whether a live entry older than stamp `qseq` waits outside the open queue (open_excl, pinned)."""
        for dq in (self.open_excl, *self.pinned.values()):
            for q, task in dq:
                if q == task.qseq:
                    if q < qseq:
                        return True
                    break
        return False

    def live_count(self) -> int:
        """How many tasks the queue holds (dead entries skipped; a task pinned to several engines once): O(entries)."""
        live: set[int] = set()
        for structure in (self.open, self.open_excl, self.stuck, *self.pinned.values()):
            live.update(q for q, task in structure if q == task.qseq)
        return len(live)

    def has_entries_for(self, engine_id: EngineId) -> bool:
        """Whether any structure that could hold a task for `engine_id` is non-empty (a cheap pre-check)."""
        return bool(self.open or self.open_excl or self.pinned.get(engine_id))

    def oldest_for(self, engine_id: EngineId, exclusions: Exclusions) -> tuple[Entry, deque[Entry]] | None:
        """The oldest live entry that may run on `engine_id`, with the structure holding it."""
        open_q = self.open
        while open_q and open_q[0][0] != open_q[0][1].qseq:
            open_q.popleft()
        best = open_q[0] if open_q else None
        source = open_q
        for queue in (self.pinned.get(engine_id), self.open_excl):
            if queue:
                entry = self._first_for(queue, engine_id, best[0] if best else None, exclusions)
                if entry is not None:
                    best, source = entry, queue
        return (best, source) if best is not None else None

    @staticmethod
    def remove(entry: Entry, source: deque[Entry]) -> None:
        """Take an entry found by `oldest_for` out of its structure."""
        if source[0] is entry:
            source.popleft()
        else:
            source.remove(entry)

    @staticmethod
    def _first_for(queue: deque[Entry], engine_id: EngineId, older_than: int | None,
                   exclusions: Exclusions) -> Entry | None:
        dead = 0
        found = None
        for entry in queue:
            q, task = entry
            if q != task.qseq:
                dead += 1
                continue
            if older_than is not None and q > older_than:
                break
            if task.blacklist or task.failed_on:
                avoid = exclusions(task)
                if avoid and engine_id in avoid:
                    continue
            found = entry
            break
        if dead > 16 and dead * 2 > len(queue):
            kept = [entry for entry in queue if entry[0] == entry[1].qseq]
            queue.clear()
            queue.extend(kept)
        return found

    def entry_died(self, n_live: int) -> None:
        """A queued task left without being taken (aborted, timed out); compact once the dead dominate."""
        self._dead += 1
        if self._dead > 1024 and self._dead > 2 * n_live:
            self.compact()

    def compact(self) -> None:
        """Drop dead entries so the memory of tasks that left the queue is freed."""
        def live(dq: deque[Entry]) -> deque[Entry]:
            return deque(entry for entry in dq if entry[0] == entry[1].qseq)
        self.open = live(self.open)
        self.open_excl = live(self.open_excl)
        self.stuck = live(self.stuck)
        self.pinned = {e: kept for e, dq in self.pinned.items() if (kept := live(dq))}
        self._dead = 0

    @property
    def has_dead(self) -> bool:
        return self._dead > 0

    def take_all(self) -> list[TaskState]:
        """Empty the queue; its live tasks in FIFO order (their stamps cleared)."""
        entries: dict[int, TaskState] = {}
        for dq in (self.open, self.open_excl, self.stuck, *self.pinned.values()):
            for q, t in dq:
                if q == t.qseq:
                    entries[q] = t
        self.open, self.open_excl, self.stuck, self.pinned = deque(), deque(), deque(), {}
        self._dead = 0
        tasks = [entries[q] for q in sorted(entries)]
        for task in tasks:
            task.qseq = 0
        return tasks
