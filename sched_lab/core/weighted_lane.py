"""The plain lane for `weighted` (what `PlainLane("weighted", ...)` makes; see sched_lab/core/lane.py).

How this works. WeightedPool's structure (weighted_pool.py: the available engines in one list sorted by
load level, a draw picking a level by mass and then an engine uniformly in it) kept with the lane's own
load list and a position list by engine id, instead of a WeightedPool beside the lane with its load,
seq and position dicts (half the Python work per task at 10^4 engines, benchmarks/bench_sim.py). Every
move in `_arr` and every draw is WeightedPool's, in the same order, so the choices and the random
stream are the same: tests/core/test_lane.py holds the lane to TaskScheduler (which uses the pool) and
tests/sim/test_fast_path.py the simulator's two paths to the same records. An index drawn as the pool's
`int(u * count)` is `floor(u * count)` here: the same for a product >= 0, at a third of the cost (int()
goes through the type call).
"""

from __future__ import annotations

from math import floor, fsum
from operator import sub, truediv
from random import Random

from .errors import SchedulerMisuse
from .lane import PlainLane
from .pools import WEIGHT_EPSILON


# The first draw's test `u * total - idle < 0` (total = the levels' masses, fsum'd) is decided without the sum
# when u * (idle + busy) is below idle with room: every busy level's mass count / (1e-6 + level) is at most its
# count, so idle + busy bounds total from above, and this margin covers every rounding on both sides (a few
# ulps, ~1e-16 each). The same branch, the same draws: only the sum is skipped (~1/5 of a task at hwm 0).
# `submit` first tries a cheaper bound still (`_sure_bound`: no look at the levels at all); this test is the
# second try, in `_choose_after`.
_MARGIN = 1.0 + 1e-12


def _sure_bound(engines: int) -> float:
    """A first draw u below this settles `u * total - idle < 0` with no look at the levels, while an engine is idle.

    With c0 >= 1 idle engines, idle = c0 / 1e-6 >= 1e6 (a few ulps under), and the busy levels weigh at most one
    per engine, fewer than `engines` (the joined ones): so u * total < idle once u < 1 / (1 + engines / idle),
    less the rounding of the product and of fsum (a few ulps) that the factors below cover many times over.
    At 10^4 engines the bound is 0.990: one draw in a hundred takes the exact test (`_choose_after`).
    """
    return 1.0 / ((1.0 + engines * 1.0000001e-6) * (1.0 + 1e-12))


class WeightedLane(PlainLane):
    """PlainLane for weighted: two draws ∝ 1/(1e-6 + load), the lower load (see the module doc)."""

    __slots__ = ("_arr", "_pos", "_start", "_denom", "_rnd", "_sure")

    def __init__(self, scheme: str, hwm: int, rng: Random, capacity: int) -> None:
        super().__init__(scheme, hwm, rng, capacity)
        self._arr: list[int] = []                          # available engines, by load level
        self._pos: list[int] = []                          # by engine id: its index in _arr, -1 if unavailable
        self._start: list[int] = [0]                       # level l is _arr[_start[l]:_start[l + 1]]
        self._denom: list[float] = [WEIGHT_EPSILON]        # by level: 1e-6 + level
        self._rnd = rng.random
        self._sure = 0.0                                   # see _sure_bound (set as engines join)

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
        rnd = self._rnd
        arr = self._arr
        if len(start) <= 2:
            if len(start) == 1:
                return -1
            return arr[floor(rnd() * start[1])]
        total = fsum(map(truediv, map(sub, start[1:], start), self._denom))
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:
            return arr[floor(rnd() * start[1])]
        return self._choose_past_idle(r, total)

    def _choose_after(self, u: float) -> int:
        """_choose (two levels or more) after its first draw `u`, which `submit` could not settle cheaply."""
        start, rnd = self._start, self._rnd
        idle = start[1] / WEIGHT_EPSILON
        if u * (idle + (start[-1] - start[1])) * _MARGIN < idle:
            return self._arr[floor(rnd() * start[1])]        # u * total < idle for certain: no sum needed
        total = fsum(map(truediv, map(sub, start[1:], start), self._denom))
        r = u * total - idle
        return self._arr[floor(rnd() * start[1])] if r < 0 else self._choose_past_idle(r, total)

    def _choose_past_idle(self, r: float, total: float) -> int:
        """_choose after a first draw that passed the idle level with `r` (>= 0) left."""
        start, arr, rnd = self._start, self._arr, self._rnd
        level = self._level_at(r, 1)
        a = arr[start[level] + floor(rnd() * (start[level + 1] - start[level]))]
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:
            return arr[floor(rnd() * start[1])]
        level = self._level_at(r, 1)
        b = arr[start[level] + floor(rnd() * (start[level + 1] - start[level]))]
        load = self._load
        return b if load[b] < load[a] else a

    # ---------------------------------------------------------------------------------- events

    def join(self, engine_id: int, speed: float = 1.0, now: float = 0.0) -> list[tuple[int, int]] | None:
        if engine_id != len(self._load):
            raise SchedulerMisuse(f"engine {engine_id!r} joined out of order (expected {len(self._load)})")
        self._directory.join(engine_id, speed)
        self._load.append(0)
        self._pos.append(-1)
        self._enter(engine_id, 0)
        self._sure = _sure_bound(len(self._load))
        return self._drain(engine_id, now) if self._queue else None

    def _assign(self, e: int, tid: int) -> None:
        """Task `tid` goes to engine e: the record's load, e's load, and its place in the levels. (No seq: the
        weighted choice never reads one, so this lane keeps none.)"""
        self._engine[tid] = e
        loads = self._load
        self._engine_load[tid] = load = loads[e]
        loads[e] = load + 1
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
        if len(start) > 2:                                 # two load levels or more (_choose's first draw, inlined)
            u = self._rnd()
            c0 = start[1]
            if u < self._sure and c0:                      # an idle engine for certain (see _sure_bound)
                i = floor(self._rnd() * c0)
            else:
                e = self._choose_after(u)
                self._assign(e, tid)
                return e
        elif len(start) == 2:                              # one level, 0: one uniform draw (as _choose)
            c0 = start[1]
            i = floor(self._rnd() * c0)
            if self.hwm == 1:                              # it leaves from the top level: off the end
                arr, pos = self._arr, self._pos
                e = arr[i]
                pos[e] = -1
                last = arr.pop()
                if i < c0 - 1:
                    arr[i] = last
                    pos[last] = i
                if c0 == 1:
                    start.pop()
                else:
                    start[1] = c0 - 1
                self._load[e] = 1
                self._engine[tid] = e
                return e
            start.append(c0)                               # a new, empty level 1
            if len(self._denom) == 1:
                self._denom.append(WEIGHT_EPSILON + 1)
        else:                                              # no engine is available
            self._queue.append(tid)
            return -1
        # An idle engine, at index i of level 0, gets the task: one level up (_up and _swap inlined, with the index
        # and level known: this is every task's path). The record's engine_load is 0, as allocated; at hwm 1 the
        # top level is 0, so not here.
        arr, pos = self._arr, self._pos
        e = arr[i]
        j = c0 - 1
        if i != j:
            other = arr[j]
            arr[i] = other
            pos[other] = i
            arr[j] = e
            pos[e] = j
        start[1] = j
        self._load[e] = 1
        self._engine[tid] = e
        return e

    def finish(self, tid: int, engine_id: int, now: float, started_at: float,
               error_name: str | None = None) -> list[tuple[int, int]] | None:
        engines, finished = self._engine, self._finished
        if engines[tid] != engine_id or finished[tid] is not None or tid < 0:
            raise SchedulerMisuse(f"task {tid!r} is not running on engine {engine_id!r}")
        loads = self._load
        loads[engine_id] = load = loads[engine_id] - 1
        pos = self._pos
        start = self._start
        i = pos[engine_id]
        if i >= 0:                                         # one level down (_down, inlined)
            level = load + 1
            j = start[level]
            if i != j:
                arr = self._arr
                other = arr[j]
                arr[i] = other
                pos[other] = i
                arr[j] = engine_id
                pos[engine_id] = j
            j += 1
            start[level] = j
            if j == start[-1]:                             # (the level emptied and is the top: drop it)
                while len(start) > 1 and start[-2] == start[-1]:
                    start.pop()
        else:                                              # back below hwm (_enter, inlined while no move)
            arr = self._arr
            if len(start) == 1 or load != len(start) - 2:
                self._enter(engine_id, load)
            else:                                          # onto the top level, its own
                pos[engine_id] = len(arr)
                arr.append(engine_id)
                start[-1] += 1
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
        queue, pos = self._queue, self._pos
        while queue and pos[engine_id] >= 0:
            tid = queue.popleft()
            e = self._choose()
            self._dispatch(tid, e, now)
            out.append((tid, e))
        return out


__all__ = ["WeightedLane"]
