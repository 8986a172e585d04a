"""The plain lane for `weighted` (what `PlainLane("weighted", ...)` makes; see sched_lab/core/lane.py).

How this works. WeightedPool's structure (weighted_pool.py: the available engines in one list sorted by
load level, a draw picking a level by mass and then an engine uniformly in it) kept with the lane's own
load list and a position list by engine id, instead of a WeightedPool beside the lane with its load,
seq and position dicts (half the Python work per task at 10^4 engines, benchmarks/bench_sim.py). Every
move in `_arr` and every draw is WeightedPool's, in the same order, so the choices and the random
stream are the same: tests/core/test_lane.py holds the lane to TaskScheduler (which uses the pool) and
tests/sim/test_fast_path.py the simulator's two paths to the same records.
"""

from __future__ import annotations

from math import fsum
from operator import sub, truediv
from random import Random

from .errors import SchedulerMisuse
from .lane import PlainLane
from .pools import WEIGHT_EPSILON


# The first draw's test `u * total - idle < 0` (total = the levels' masses, fsum'd) is decided without the sum
# when u * (idle + busy) is below idle with room: every busy level's mass count / (1e-6 + level) is at most its
# count, so idle + busy bounds total from above, and this margin covers every rounding on both sides (a few
# ulps, ~1e-16 each). The same branch, the same draws: only the sum is skipped (~1/5 of a task at hwm 0).
_MARGIN = 1.0 + 1e-12


class WeightedLane(PlainLane):
    """PlainLane for weighted: two draws ∝ 1/(1e-6 + load), the lower load (see the module doc)."""

    __slots__ = ("_arr", "_pos", "_start", "_denom")

    def __init__(self, scheme: str, hwm: int, rng: Random, capacity: int) -> None:
        super().__init__(scheme, hwm, rng, capacity)
        self._arr: list[int] = []                          # available engines, by load level
        self._pos: list[int] = []                          # by engine id: its index in _arr, -1 if unavailable
        self._start: list[int] = [0]                       # level l is _arr[_start[l]:_start[l + 1]]
        self._denom: list[float] = [WEIGHT_EPSILON]        # by level: 1e-6 + level

    # ------------------------------------------------------------- WeightedPool's moves, by position list

    def _swap(self, engine: int, j: int) -> None:
        arr, pos = self._arr, self._pos
        i = pos[engine]
        if i != j:
            other = arr[j]
            arr[i] = other
            pos[other] = i
            arr[j] = engine
            pos[engine] = j

    def _up(self, engine: int, level: int) -> None:
        start = self._start
        k = level + 1
        if k == len(start) - 1:
            start.append(start[-1])
            if len(self._denom) <= k:
                self._denom.append(WEIGHT_EPSILON + k)
        j = start[k] - 1
        self._swap(engine, j)
        start[k] = j

    def _down(self, engine: int, level: int) -> None:
        start = self._start
        j = start[level]
        self._swap(engine, j)
        start[level] = j + 1
        while len(start) > 1 and start[-2] == start[-1]:
            start.pop()

    def _enter(self, engine: int, load: int) -> None:
        """WeightedPool.add of an engine not in it: onto the top level, then to its own."""
        start, arr = self._start, self._arr
        self._pos[engine] = len(arr)
        arr.append(engine)
        if len(start) == 1:
            start.append(1)
            old = 0
        else:
            start[-1] += 1
            old = len(start) - 2
        while old < load:
            self._up(engine, old)
            old += 1
        while old > load:
            self._down(engine, old)
            old -= 1

    def _leave(self, engine: int, load: int) -> None:
        """WeightedPool.discard: up to the top level, then off the end."""
        start = self._start
        while load < len(start) - 2:
            self._up(engine, load)
            load += 1
        arr, pos = self._arr, self._pos
        i = pos[engine]
        pos[engine] = -1
        last = arr.pop()
        if i < len(arr):
            arr[i] = last
            pos[last] = i
        start[-1] -= 1
        if start[-2] == start[-1]:
            while len(start) > 1 and start[-2] == start[-1]:
                start.pop()

    def _level_at(self, r: float, level: int) -> int:
        start, denom = self._start, self._denom
        top = len(start) - 2
        while level < top:
            r -= (start[level + 1] - start[level]) / denom[level]
            if r < 0:
                break
            level += 1
        return level

    def _choose(self) -> int:
        """WeightedPool.choose without exclusions (the same draws), or -1 when no engine is available."""
        start = self._start
        rnd = self._rng.random
        arr = self._arr
        if len(start) <= 2:
            if len(start) == 1:
                return -1
            return arr[int(rnd() * start[1])]
        total = fsum(map(truediv, map(sub, start[1:], start), self._denom))
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:
            return arr[int(rnd() * start[1])]
        return self._choose_past_idle(r, total)

    def _choose_past_idle(self, r: float, total: float) -> int:
        """_choose after a first draw that passed the idle level with `r` (>= 0) left."""
        start, arr, rnd = self._start, self._arr, self._rng.random
        level = self._level_at(r, 1)
        a = arr[start[level] + int(rnd() * (start[level + 1] - start[level]))]
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:
            return arr[int(rnd() * start[1])]
        level = self._level_at(r, 1)
        b = arr[start[level] + int(rnd() * (start[level + 1] - start[level]))]
        load = self._load
        return b if load[b] < load[a] else a

    # ---------------------------------------------------------------------------------- events

    def join(self, engine_id: int, speed: float = 1.0, now: float = 0.0) -> list[tuple[int, int]] | None:
        if engine_id != len(self._load):
            raise SchedulerMisuse(f"engine {engine_id!r} joined out of order (expected {len(self._load)})")
        self._directory.join(engine_id, speed)
        self._load.append(0)
        self._seq.append(~engine_id)                       # newest joined = least recently used
        self._pos.append(-1)
        self._enter(engine_id, 0)
        return self._drain(engine_id, now) if self._queue else None

    def _assign(self, e: int, tid: int) -> None:
        """Task `tid` goes to engine e: the record's load, e's load and seq, and its place in the levels."""
        self._engine[tid] = ~e
        loads = self._load
        self._engine_load[tid] = load = loads[e]
        loads[e] = load + 1
        self._assigned = seq = self._assigned + 1
        self._seq[e] = seq
        if load + 1 == self.hwm:
            self._leave(e, load)
        else:
            self._up(e, load)

    def submit(self, now: float) -> int:
        tid = self._n
        try:
            self._submitted[tid] = now
        except IndexError:
            raise SchedulerMisuse(f"more than {self._cap} tasks submitted to a PlainLane of that capacity") from None
        self._n = tid + 1
        start = self._start
        if len(start) == 2:                                # one level, 0: one uniform draw (as _choose)
            e = self._arr[int(self._rng.random() * start[1])]
        elif len(start) > 2:                               # (_choose's first draw, inlined)
            rnd = self._rng.random
            u = rnd()
            idle = start[1] / WEIGHT_EPSILON
            if u * (idle + (start[-1] - start[1])) * _MARGIN < idle:
                e = self._arr[int(rnd() * start[1])]       # u * total < idle for certain: no sum needed
            else:
                total = fsum(map(truediv, map(sub, start[1:], start), self._denom))
                r = u * total - idle
                e = self._arr[int(rnd() * start[1])] if r < 0 else self._choose_past_idle(r, total)
        else:
            self._queue.append(tid)                        # (no engine available)
            return -1
        self._engine[tid] = ~e                             # (_assign, inlined)
        loads = self._load
        self._engine_load[tid] = load = loads[e]
        loads[e] = load + 1
        self._assigned = seq = self._assigned + 1
        self._seq[e] = seq
        if load + 1 != self.hwm:                           # one level up (_up, inlined)
            k = load + 1
            if k == len(start) - 1:
                start.append(start[-1])
                if len(self._denom) <= k:
                    self._denom.append(WEIGHT_EPSILON + k)
            j = start[k] - 1
            pos = self._pos
            i = pos[e]
            if i != j:
                arr = self._arr
                other = arr[j]
                arr[i] = other
                pos[other] = i
                arr[j] = e
                pos[e] = j
            start[k] = j
        elif load == len(start) - 2:                       # it leaves from the top level: off the end
            arr, pos = self._arr, self._pos
            i = pos[e]
            pos[e] = -1
            last = arr.pop()
            if i < len(arr):
                arr[i] = last
                pos[last] = i
            start[-1] -= 1
            if start[-2] == start[-1]:
                while len(start) > 1 and start[-2] == start[-1]:
                    start.pop()
        else:
            self._leave(e, load)
        return e

    def finish(self, tid: int, engine_id: int, now: float, started_at: float,
               error_name: str | None = None) -> list[tuple[int, int]] | None:
        engines = self._engine
        if engines[tid] != ~engine_id or tid < 0:
            raise SchedulerMisuse(f"task {tid!r} is not running on engine {engine_id!r}")
        engines[tid] = engine_id
        loads = self._load
        loads[engine_id] = load = loads[engine_id] - 1
        pos = self._pos
        start = self._start
        if pos[engine_id] < 0:                             # back below hwm (_enter, inlined while no move)
            arr = self._arr
            if len(start) == 1 or load != len(start) - 2:
                self._enter(engine_id, load)
            else:                                          # onto the top level, its own
                pos[engine_id] = len(arr)
                arr.append(engine_id)
                start[-1] += 1
        else:                                              # one level down (_down, inlined)
            level = load + 1
            j = start[level]
            i = pos[engine_id]
            if i != j:
                arr = self._arr
                other = arr[j]
                arr[i] = other
                pos[other] = i
                arr[j] = engine_id
                pos[engine_id] = j
            start[level] = j + 1
            if start[-2] == start[-1]:
                while len(start) > 1 and start[-2] == start[-1]:
                    start.pop()
        if error_name is not None:
            self._errors[tid] = error_name
        self._done.append(tid)
        self._started[tid] = started_at
        self._finished[tid] = now
        if self._queue:
            return self._drain(engine_id, now)
        return None

    def _drain(self, engine_id: int, now: float) -> list[tuple[int, int]]:
        out = []
        queue, pos = self._queue, self._pos
        while queue and pos[engine_id] >= 0:
            tid = queue.popleft()
            e = self._choose()
            self._dispatch(tid, e, now)
            out.append((tid, e))
        return out


__all__ = ["WeightedLane"]
