"""The scheduler's plain lane: TaskScheduler's rules for independent, flagless tasks, with plain arguments.

How this works. A large simulation of independent tasks with no flags (no targets, dependencies,
retries, timeouts, time limits, size hints, actors) on engines that never fail needs only a small
part of TaskScheduler: the fast pool of a built-in scheme, each engine's load and last-assignment
seq, the FIFO of tasks waiting for an engine, and one record per task. `PlainLane` is that part,
called with plain numbers instead of event and action objects (no per-task TaskSpec, TaskState,
event, action or record tuple), so a task costs a fraction of `TaskScheduler.handle`'s
(benchmarks/bench_sim.py). The decisions are the same: the same pool class gets the same calls with
the same arguments in the same order (so it draws the same random numbers; `take` is choose + update
in one call), and the records are the same, field for field. The two schemes the simulator goal is
measured on have lanes of their own, which `PlainLane(...)` returns: leastload (`_LeastLoadLane`, below)
and weighted (weighted_lane.py) keep their structure on the lane's own load and seq lists instead of a
pool beside them with dicts of the same numbers (about a quarter fewer bytecodes per task).
tests/core/test_lane.py holds every lane to TaskScheduler on random event sequences and the own lanes
to the pool-based one at scale; tests/sim/test_fast_path.py holds the simulator's two paths to the
same records.

Ids: engines join as 0, 1, 2, ... (their join order); task i is the i-th submitted. Records are kept
as columns (lists): by task id the values fixed at dispatch, in completion order the rest.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heapify, heappop, heappush
from collections.abc import Iterator
from random import Random
from typing import Any

from .errors import SchedulerMisuse
from .model import Outcome
from .options import check_hwm, check_scheme
from .scheme_api import _BUILTIN, EngineDirectory, parse_scheme

_OK, _ERROR = Outcome.OK, Outcome.ERROR


def lane_supports(scheme: str) -> bool:
    """Whether `scheme` (NAME[:k=v,..]) can run in a PlainLane: a built-in scheme (its pool never raises)."""
    return parse_scheme(check_scheme(scheme)).scheme.name in _BUILTIN


def _own_lane(scheme: str) -> type[PlainLane]:
    """The lane class for `scheme`: a scheme's own (leastload, weighted: no pool beside the lane), else PlainLane."""
    try:
        bound = parse_scheme(check_scheme(scheme))
    except (TypeError, ValueError):
        return PlainLane                                   # (PlainLane.__init__ raises it again, in full)
    name = bound.scheme.name
    if name not in _BUILTIN or bound.given:
        return PlainLane
    if name == "leastload":
        return _LeastLoadLane
    if name == "weighted":
        from .weighted_lane import WeightedLane

        return WeightedLane
    return PlainLane


class PlainLane:
    """TaskScheduler for independent tasks without flags on engines that never leave (see the module doc).

    `capacity`: how many tasks will be submitted at most (the per-task columns are allocated once).
    `submit(now)` returns the engine the new task goes to, or -1 when it waits for one; `finish`
    reports the end of a task's only attempt and returns the waiting tasks it let through as
    (task id, engine) pairs, or None. Raises SchedulerMisuse when misused (as TaskScheduler does).
    """

    __slots__ = ("scheme_name", "hwm", "_rng", "_directory", "_pool", "_avail", "_load", "_seq", "_assigned",
                 "_queue", "_n", "_cap", "_submitted", "_dispatched", "_engine", "_queue_len", "_engine_load",
                 "_done", "_started", "_finished", "_errors", "_waited")

    def __new__(cls, scheme: str, hwm: int, rng: Random, capacity: int) -> PlainLane:
        if cls is PlainLane:
            cls = _own_lane(scheme)                        # leastload and weighted: their own, leaner lanes
        return object.__new__(cls)

    def __init__(self, scheme: str, hwm: int, rng: Random, capacity: int) -> None:
        self.scheme_name = check_scheme(scheme)
        bound = parse_scheme(self.scheme_name)
        if bound.scheme.name not in _BUILTIN:
            raise SchedulerMisuse(f"the plain lane runs built-in schemes only, not {self.scheme_name!r}")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise SchedulerMisuse(f"capacity must be an int >= 0, got {capacity!r}")
        self.hwm = check_hwm(hwm)
        self._rng = rng
        self._directory = EngineDirectory()
        self._pool: Any = bound.new_pool(self._directory)
        self._avail: dict[Any, int] = self._pool.load     # every pool keeps its available engines' loads
        self._load: list[int] = []                         # by engine id
        self._seq: list[int] = []                          # last-assignment seq (joins count down from -1)
        self._assigned = 0
        self._queue: deque[int] = deque()                  # task ids waiting for an engine, FIFO
        self._n = 0
        self._cap = capacity
        # The records' columns, as lists allocated once (a store is a pointer; array.array's parses its
        # argument, ~3x the cost). By task id, but `_done` (task ids in completion order).
        self._submitted: list[float] = [0.0] * capacity
        self._dispatched: list[float] = [math.nan] * capacity   # NaN: at submission (a task that waited: set)
        self._engine: list[int | None] = [None] * capacity # set at dispatch (None: never dispatched)
        self._queue_len: list[int] = [0] * capacity        # 0 unless it waited (then no engine was available)
        self._engine_load: list[int] = [0] * capacity
        self._started: list[float] = [0.0] * capacity
        self._finished: list[float | None] = [None] * capacity   # None until it ends: with _engine, what
        # `finish` checks (a task is out on e when its engine is e and it has not finished: no mark to undo)
        self._done: list[int] = []
        self._errors: dict[int, str] = {}                  # task id -> error name (outcome ERROR)
        self._waited: list[int] = []                       # task ids dispatched after waiting, in dispatch order

    # ---------------------------------------------------------------------------------- events

    def join(self, engine_id: int, speed: float = 1.0, now: float = 0.0) -> list[tuple[int, int]] | None:
        """Engine `engine_id` (the next id: 0, 1, ...) joins at `now` with `speed`; returns the waiting tasks it
        let through, as (task id, engine), or None."""
        if engine_id != len(self._load):
            raise SchedulerMisuse(f"engine {engine_id!r} joined out of order (expected {len(self._load)})")
        self._directory.join(engine_id, speed)
        self._load.append(0)
        self._seq.append(-len(self._load))                 # newest joined = least recently used
        self._pool.add(engine_id, 0, self._seq[engine_id])
        return self._drain(engine_id, now) if self._queue else None

    def submit(self, now: float) -> int:
        """Task `n` (the n-th submitted, from 0) arrives at `now`: the engine it goes to, or -1 (it waits)."""
        tid = self._n
        try:
            self._submitted[tid] = now
        except IndexError:
            raise SchedulerMisuse(f"more than {self._cap} tasks submitted to a PlainLane of that capacity") from None
        self._n = tid + 1
        if not self._avail:
            self._queue.append(tid)
            return -1
        # TaskScheduler._dispatch, inlined (once per task). An engine was available, so no task waits
        # (a waiting task would have taken it): queue_len 0, dispatched_at = now (both the defaults).
        self._assigned = seq = self._assigned + 1
        e: int = self._pool.take(self._rng, seq, self.hwm)       # choose, then update or discard
        self._engine[tid] = e
        loads = self._load
        self._engine_load[tid] = load = loads[e]
        loads[e] = load + 1
        self._seq[e] = seq
        return e

    def _dispatch(self, tid: int, e: int, now: float) -> None:
        """Waiting task `tid` goes to engine e (TaskScheduler._dispatch): its record's dispatch fields, then
        `_assign` (the lanes of their own for leastload and weighted override only that)."""
        self._dispatched[tid] = now
        self._queue_len[tid] = len(self._queue)
        self._waited.append(tid)
        self._assign(e, tid)

    def _assign(self, e: int, tid: int) -> None:
        """Task `tid` goes to engine e: the record's engine and load, e's load and seq, and the pool."""
        self._engine[tid] = e
        load = self._load[e]
        self._engine_load[tid] = load
        self._load[e] = load = load + 1
        self._assigned = seq = self._assigned + 1
        self._seq[e] = seq
        if load == self.hwm:                               # (an engine below hwm gets one more: == is >=)
            self._pool.discard(e)
        else:
            self._pool.update(e, load, seq)

    def finish(self, tid: int, engine_id: int, now: float, started_at: float,
               error_name: str | None = None) -> list[tuple[int, int]] | None:
        """Task `tid` ended on `engine_id` (started at `started_at`): OK, or raised `error_name` (no retries).

        Returns the waiting tasks dispatched because capacity appeared, as (task id, engine), or None.
        """
        engines, finished = self._engine, self._finished
        if engines[tid] != engine_id or finished[tid] is not None or tid < 0:    # (IndexError past the capacity)
            raise SchedulerMisuse(f"task {tid!r} is not running on engine {engine_id!r}")
        loads = self._load
        loads[engine_id] = load = loads[engine_id] - 1
        self._pool.update(engine_id, load, self._seq[engine_id])    # (now below hwm: available)
        if error_name is not None:
            self._errors[tid] = error_name
        self._done.append(tid)
        self._started[tid] = started_at
        finished[tid] = now
        if self._queue:
            return self._drain(engine_id, now)
        return None

    def _drain(self, engine_id: int, now: float) -> list[tuple[int, int]]:
        """Capacity appeared on `engine_id`: place the oldest waiting tasks while it has room (TaskScheduler._drain)."""
        out = []
        queue, avail, pool, rng = self._queue, self._avail, self._pool, self._rng
        while queue and engine_id in avail:
            tid = queue.popleft()
            e: int = pool.choose(rng, None, None)
            self._dispatch(tid, e, now)
            out.append((tid, e))
        return out

    # --------------------------------------------------------------------------------- reading

    @property
    def submitted_count(self) -> int:
        return self._n

    @property
    def finished_count(self) -> int:
        return len(self._done)

    @property
    def waiting_count(self) -> int:
        return len(self._queue)

    def load(self, engine_id: int) -> int:
        return self._load[engine_id]

    def columns(self) -> dict[str, Any]:
        """The records' columns as lists: `task_id` in completion order (one record each); the rest by task
        id: `submitted_at`, `dispatched_at` (NaN: dispatched when submitted), `engine_id` (None until
        dispatched), `queue_len`, `engine_load`, `started_at`, `finished_at` (None until finished);
        `errors` = {task id: error name} (outcome ERROR; every other record is OK); `waited`: the task ids
        dispatched after waiting, in dispatch order (only they have a dispatched_at or a queue_len, so a
        reader can gather those two columns without a pass over every task). Not copies."""
        return {"task_id": self._done, "submitted_at": self._submitted, "dispatched_at": self._dispatched,
                "engine_id": self._engine, "queue_len": self._queue_len, "engine_load": self._engine_load,
                "started_at": self._started, "finished_at": self._finished, "errors": self._errors,
                "waited": self._waited, "n": self._n}

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """The records in completion order, as RecordSink.add's positional arguments (TaskRecord order)."""
        errors, scheme = self._errors, self.scheme_name
        for tid in self._done:
            error = errors.get(tid)
            dispatched = self._dispatched[tid]
            yield (tid, 0, self._engine[tid], self._submitted[tid],
                   self._submitted[tid] if math.isnan(dispatched) else dispatched, self._started[tid],
                   self._finished[tid], _OK if error is None else _ERROR, error, self._queue_len[tid],
                   self._engine_load[tid], scheme, None)


_BITS = 40
_UNIT = 1 << _BITS                                         # a busy key: load * 2**40 + seq (|seq| < 2**39)
_HALF = _UNIT >> 1


class _LeastLoadLane(PlainLane):
    """PlainLane for leastload (what `PlainLane("leastload", ...)` makes): the lowest (load, seq), kept with the
    lane's own load and seq lists instead of a LeastLoadPool beside them (half the Python work per task,
    benchmarks/bench_sim.py; the same decisions: leastload draws nothing, and tests/core/test_lane.py holds
    it to TaskScheduler).

    The idle engines' seqs sit in one heap: an idle engine leaves it only by being chosen, and the choice
    is then its top, so it holds no stale entry. The available busy engines (load >= 1, below hwm) sit in a
    second heap as `load * 2**40 + seq`, lazily invalidated (a key is live when it matches the engine's
    load and seq) and rebuilt when stale keys outnumber the engines. While an engine is idle no busy one
    can be chosen, so when the busy heap fills up with an engine idle it is dropped (None) instead of
    rebuilt, and built afresh from the loads only when a choice finds no idle engine: at hwm 0 and load < 1
    that is almost never, and a task then costs no busy key (the keys were what hwm 0 cost over hwm 1: 15%
    of a task's instructions at 10^4 engines, callgrind, benchmarks/bench_sim.py). A build costs one pass
    over the engines, and between two builds come more pushes than there are engines (a drop needs a full
    heap), so it stays O(1) a task. A seq names its engine: a join's seq is ~engine, an assignment's is
    looked up in `_who` (by seq, allocated once).
    """

    __slots__ = ("_idle", "_busy", "_who", "_limit")

    def __init__(self, scheme: str, hwm: int, rng: Random, capacity: int) -> None:
        super().__init__(scheme, hwm, rng, capacity)
        self._idle: list[int] = []                         # seqs of the idle engines, a heap
        # Keys of the available busy engines, a heap; None: dropped (at hwm 1 from the start: no busy engine is
        # ever available there, and a choice that finds no idle engine makes it [] once and for all).
        self._busy: list[int] | None = None if self.hwm == 1 else []
        self._who: list[int] = [0] * (capacity + 1)        # assignment seq -> engine
        self._limit = 64

    def join(self, engine_id: int, speed: float = 1.0, now: float = 0.0) -> list[tuple[int, int]] | None:
        if engine_id != len(self._load):
            raise SchedulerMisuse(f"engine {engine_id!r} joined out of order (expected {len(self._load)})")
        self._directory.join(engine_id, speed)
        self._load.append(0)
        self._seq.append(~engine_id)                       # newest joined = least recently used
        heappush(self._idle, ~engine_id)
        return self._drain(engine_id, now) if self._queue else None

    def _choose(self) -> int:
        """The engine with the lowest (load, seq) among the available ones (its key leaves its heap), or -1."""
        idle = self._idle
        if idle:
            s = heappop(idle)
            return self._who[s] if s > 0 else ~s
        busy, loads, seqs, who = self._busy, self._load, self._seq, self._who
        if busy is None:
            self._busy = busy = self._busy_keys()
        while busy:
            key = heappop(busy)
            load = (key + _HALF) >> _BITS
            s = key - (load << _BITS)
            e = who[s] if s > 0 else ~s
            if loads[e] == load and seqs[e] == s:
                return e
        return -1

    def _busy_keys(self) -> list[int]:
        """A heap of the live keys of the available busy engines (one pass over the engines)."""
        loads, seqs, hwm = self._load, self._seq, self.hwm
        busy = [(load << _BITS) + seqs[e] for e, load in enumerate(loads) if load and (not hwm or load < hwm)]
        heapify(busy)
        return busy

    def _assign(self, e: int, tid: int) -> None:
        """Task `tid` goes to engine e: the record's load, e's load and seq, and its key if still available."""
        self._engine[tid] = e
        loads = self._load
        self._engine_load[tid] = load = loads[e]
        loads[e] = load = load + 1
        self._assigned = seq = self._assigned + 1
        self._seq[e] = seq
        self._who[seq] = e
        busy = self._busy
        if busy is not None and load != self.hwm:          # (hwm 0: never equal) still available, busy
            heappush(busy, (load << _BITS) + seq)
            if len(busy) > self._limit:
                self._rebuild()

    def _rebuild(self) -> None:
        """The busy heap outgrew its limit: dropped while an engine is idle, else rebuilt if still too big."""
        self._limit = 2 * len(self._load) + 64
        if self._idle:
            self._busy = None
        elif self._busy is not None and len(self._busy) > self._limit:
            self._busy = self._busy_keys()

    def submit(self, now: float) -> int:
        tid = self._n
        try:
            self._submitted[tid] = now
        except IndexError:
            raise SchedulerMisuse(f"more than {self._cap} tasks submitted to a PlainLane of that capacity") from None
        self._n = tid + 1
        idle = self._idle
        if not idle:
            e = self._choose()
            if e < 0:
                self._queue.append(tid)
                return -1
            self._assign(e, tid)
            return e
        # An idle engine (_choose's common case and _assign, inlined): load 0 -> 1, so the record's engine_load
        # is 0, as allocated; at hwm 1 it is then full.
        s = heappop(idle)
        e = self._who[s] if s > 0 else ~s
        self._engine[tid] = e
        self._load[e] = 1
        self._assigned = seq = self._assigned + 1
        self._seq[e] = seq
        self._who[seq] = e
        busy = self._busy
        if busy is not None and self.hwm != 1:             # (hwm 0: mostly dropped; hwm 1: the engine is full)
            heappush(busy, _UNIT + seq)
            if len(busy) > self._limit:
                self._rebuild()
        return e

    def finish(self, tid: int, engine_id: int, now: float, started_at: float,
               error_name: str | None = None) -> list[tuple[int, int]] | None:
        engines, finished = self._engine, self._finished
        if engines[tid] != engine_id or finished[tid] is not None or tid < 0:
            raise SchedulerMisuse(f"task {tid!r} is not running on engine {engine_id!r}")
        loads = self._load
        loads[engine_id] = load = loads[engine_id] - 1
        if not load:
            heappush(self._idle, self._seq[engine_id])
        elif self._busy is not None:
            busy = self._busy
            heappush(busy, (load << _BITS) + self._seq[engine_id])
            if len(busy) > self._limit:
                self._rebuild()
        if error_name is not None:
            self._errors[tid] = error_name
        self._done.append(tid)
        self._started[tid] = started_at
        finished[tid] = now
        if self._queue:
            return self._drain(engine_id, now)
        return None

    def _drain(self, engine_id: int, now: float) -> list[tuple[int, int]]:
        out = []
        queue, loads, hwm = self._queue, self._load, self.hwm
        while queue and (not hwm or loads[engine_id] < hwm):
            tid = queue.popleft()
            e = self._choose()
            self._dispatch(tid, e, now)
            out.append((tid, e))
        return out


__all__ = ["PlainLane", "lane_supports"]
