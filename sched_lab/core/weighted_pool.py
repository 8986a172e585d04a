"""The weighted scheme's fast pool (the law and the other pools are in pools.py).

How this works: see WeightedPool's docstring. Held to `weighted_ref` by tests/core/test_schemes.py.
"""

from __future__ import annotations

from collections.abc import Collection
from math import fsum
from operator import sub, truediv
from random import Random
from typing import Any

from .pools import WEIGHT_EPSILON, EngineId, _BasePool, weighted_ref
from .scheme_api import EngineDirectory


class WeightedPool(_BasePool):
    """weighted: engines bucketed by load level; a draw picks a level ∝ count/(1e-6+load), then uniformly.

    The available engines sit in one list sorted by load (a bucket per level: level l is
    `_arr[_start[l]:_start[l + 1]]`, the top level never empty), so a load change by one is one swap
    with the bucket's edge and a moved boundary. A draw walks the levels from load 0 up (the heaviest
    first in practice: an idle engine weighs 10^6 times a busy one) against `fsum` of the masses
    (exact, so the same in every Python version). Two updates and one choice per task
    (benchmarks/bench_sim.py).
    """

    reference = staticmethod(weighted_ref)

    def __init__(self, engines: EngineDirectory | None = None) -> None:
        super().__init__()
        self._arr: list[EngineId] = []               # available engines, by load level
        self._pos: dict[EngineId, int] = {}          # each one's index in _arr
        self._start: list[int] = [0]                 # level l starts at _start[l]; the last entry is len(_arr)
        self._denom: list[float] = [WEIGHT_EPSILON]  # by level: 1e-6 + level

    def _swap(self, engine: EngineId, j: int) -> None:
        """Put `engine` at index j of _arr, and the engine there where `engine` was."""
        arr, pos = self._arr, self._pos
        i = pos[engine]
        if i != j:
            other = arr[j]
            arr[i] = other
            pos[other] = i
            arr[j] = engine
            pos[engine] = j

    def _up(self, engine: EngineId, level: int) -> None:
        """Move `engine` from `level` to the one above (a new top level if it was the top)."""
        start = self._start
        k = level + 1
        if k == len(start) - 1:                      # a new, empty top level
            start.append(start[-1])
            if len(self._denom) <= k:
                self._denom.append(WEIGHT_EPSILON + k)
        j = start[k] - 1                             # the last of `level`: becomes the first of k
        self._swap(engine, j)
        start[k] = j

    def _down(self, engine: EngineId, level: int) -> None:
        """Move `engine` from `level` (>= 1) to the one below; drop the top level if that emptied it."""
        start = self._start
        j = start[level]                             # the first of `level`: becomes the last of level - 1
        self._swap(engine, j)
        start[level] = j + 1
        while len(start) > 1 and start[-2] == start[-1]:
            start.pop()

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        self.seq[engine] = seq
        loads = self.load
        old = loads.get(engine)
        if old is None:                              # a new engine: into the top level, then to its own
            loads[engine] = load
            start = self._start
            arr = self._arr
            self._pos[engine] = len(arr)
            arr.append(engine)
            if len(start) == 1:
                start.append(1)
                old = 0
            else:
                start[-1] += 1
                old = len(start) - 2
            if old == load:
                return
        elif old == load:
            return
        else:
            loads[engine] = load
        if old == load - 1:                          # a dispatch at hwm 0 or > 1 (_up, inlined)
            start = self._start
            k = load
            if k == len(start) - 1:
                start.append(start[-1])
                if len(self._denom) <= k:
                    self._denom.append(WEIGHT_EPSILON + k)
            j = start[k] - 1
            arr, pos = self._arr, self._pos
            i = pos[engine]
            if i != j:
                other = arr[j]
                arr[i] = other
                pos[other] = i
                arr[j] = engine
                pos[engine] = j
            start[k] = j
            return
        if old == load + 1:                          # a completion (_down, inlined)
            start = self._start
            j = start[old]
            arr, pos = self._arr, self._pos
            i = pos[engine]
            if i != j:
                other = arr[j]
                arr[i] = other
                pos[other] = i
                arr[j] = engine
                pos[engine] = j
            start[old] = j + 1
            if start[-2] == start[-1]:
                while len(start) > 1 and start[-2] == start[-1]:
                    start.pop()
            return
        while old < load:
            self._up(engine, old)
            old += 1
        while old > load:
            self._down(engine, old)
            old -= 1

    update = add

    def discard(self, engine: EngineId) -> None:
        load = self.load.pop(engine, None)
        if load is None:
            return
        del self.seq[engine]
        start = self._start
        while load < len(start) - 2:                 # up to the top level, then off the end
            self._up(engine, load)
            load += 1
        arr, pos = self._arr, self._pos
        i = pos.pop(engine)
        last = arr.pop()
        if i < len(arr):
            arr[i] = last
            pos[last] = i
        start[-1] -= 1
        if start[-2] == start[-1]:
            while len(start) > 1 and start[-2] == start[-1]:
                start.pop()

    def take(self, rng: Random, seq: int, hwm: int) -> EngineId | None:
        """choose (no exclusions), then update or discard (see _BasePool.take), in one pass: the same draws
        and the same moves in `_arr`, so the same state as the two calls."""
        start = self._start
        n_levels = len(start) - 1
        if n_levels <= 1:
            if n_levels == 0:
                return None
            arr = self._arr                              # one load level, 0: one uniform draw (see choose)
            engine = arr[int(rng.random() * start[1])]
            if hwm == 1:                                 # it leaves (discard; level 0 is the top level)
                del self.load[engine]
                del self.seq[engine]
                pos = self._pos
                i = pos.pop(engine)
                last = arr.pop()
                if i < len(arr):
                    arr[i] = last
                    pos[last] = i
                start[1] -= 1
                if start[1] == 0:
                    start.pop()
                return engine
        else:
            engine = self.choose(rng, None, None)
        load = self.load[engine] + 1
        if load == hwm:
            self.discard(engine)
            return engine
        self.seq[engine] = seq
        self.load[engine] = load
        k = load                                         # one level up (add's dispatch branch)
        if k == len(start) - 1:
            start.append(start[-1])
            if len(self._denom) <= k:
                self._denom.append(WEIGHT_EPSILON + k)
        j = start[k] - 1
        arr, pos = self._arr, self._pos
        i = pos[engine]
        if i != j:
            other = arr[j]
            arr[i] = other
            pos[other] = i
            arr[j] = engine
            pos[engine] = j
        start[k] = j
        return engine

    def _level_at(self, r: float, level: int) -> int:
        """The level a draw lands on: the walk from `level` up with `r` left (r -= each mass until r < 0)."""
        start, denom = self._start, self._denom
        top = len(start) - 2
        while level < top:
            r -= (start[level + 1] - start[level]) / denom[level]
            if r < 0:
                break
            level += 1
        return level

    def _draw(self, rng: Random, total: float) -> EngineId:
        """One weighted draw: a level by mass (walking up from load 0), then an engine uniformly in it."""
        start = self._start
        level = self._level_at(rng.random() * total, 0)
        return self._arr[start[level] + int(rng.random() * (start[level + 1] - start[level]))]

    def _excluded_mass(self, exclude: Collection[EngineId]) -> float:
        """The draw mass of the excluded engines in the pool (exact, as `_total`)."""
        load, denom = self.load, self._denom
        return fsum(1.0 / denom[load[e]] for e in exclude if e in load)

    def _total(self) -> float:
        start = self._start
        return fsum(map(truediv, map(sub, start[1:], start), self._denom))

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None) -> EngineId | None:
        """Two weighted draws, the lower load (the first on a tie); the second is not drawn when the first is
        idle (nothing can beat it), which leaves the choice's law as it is."""
        start = self._start
        if exclude:
            if not self.load or self._mostly_excluded(exclude):
                return self._choose_by_reference(rng, exclude) if self.load else None
            total = self._total()
            # By mass too: with idle engines excluded and only busy ones allowed (an @require few engines meet),
            # ~10^6 draws in 10^6 land on the excluded, so rejection took minutes per simulated run.
            if self._excluded_mass(exclude) * 4 > total * 3:
                return self._choose_by_reference(rng, exclude)
            a = self._draw(rng, total)
            while a in exclude:
                a = self._draw(rng, total)
            b = self._draw(rng, total)
            while b in exclude:
                b = self._draw(rng, total)
            load = self.load
            return b if load[b] < load[a] else a
        if len(start) <= 2:
            if len(start) == 1:
                return None
            # One load level, 0 (always so at hwm=1): equal weights and equal loads, so the law
            # reduces to the first of two uniform draws, i.e. one uniform draw.
            return self._arr[int(rng.random() * start[1])]
        total = fsum(map(truediv, map(sub, start[1:], start), self._denom))     # _total and _draw, inlined
        rnd = rng.random
        arr = self._arr
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:                                    # an idle engine (almost always, if there is one): no
            return arr[int(rnd() * start[1])]        # second draw can have a lower load, so none is made
        level = self._level_at(r, 1)
        a = arr[start[level] + int(rnd() * (start[level + 1] - start[level]))]
        r = rnd() * total - start[1] / WEIGHT_EPSILON
        if r < 0:
            return arr[int(rnd() * start[1])]        # b is idle: lower than a
        level = self._level_at(r, 1)
        b = arr[start[level] + int(rnd() * (start[level + 1] - start[level]))]
        load = self.load
        return b if load[b] < load[a] else a


__all__ = ["WeightedPool"]
