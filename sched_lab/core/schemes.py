"""Load-balancing schemes: a plain reference law and a fast implementation of each.

How this works. A *reference* function takes the candidates' loads in least-recently-assigned
order (index 0 = least recently assigned) and a random generator, and returns an index. It is the
obviously-correct statement of the scheme (DESIGN §3) and is used whenever the scheduler has an
explicit, small candidate list (targets, follow, or a large exclusion).

A *pool* is the fast form: it holds the engines that are currently available (below hwm), each
with its load and `seq` (its last-assignment sequence number; smaller = less recently assigned),
and answers `choose(rng, exclude)` in O(1) or O(log n) with the same decision law:

- leastload / lru: a binary heap keyed by (load, seq) / (seq,) with lazy invalidation;
- plainrandom / twobin / powerofd: an indexable set (list + position map) for O(1) uniform draws;
- weighted: one indexable set per load level; a draw picks a level with probability proportional
  to count × 1/(1e-6 + load), then an engine uniformly within it.

`exclude` (engines the task must not use) is honoured by rejection for the random schemes and by
popping past excluded entries for the heaps; when most of the pool is excluded the pool falls back
to the reference law over the explicit candidate list. Tests hold every pool to its reference law
(tests/core/test_schemes.py); benchmarks/bench_core.py measures both.
"""

from __future__ import annotations

import heapq
from operator import itemgetter
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from random import Random
from typing import Any, Protocol

EngineId = Hashable
ReferenceFn = Callable[[Sequence[int], Random], int]

WEIGHT_EPSILON = 1e-6


def _weight(load: int) -> float:
    return 1.0 / (WEIGHT_EPSILON + load)


# ------------------------------------------------------------------------------ reference laws

def leastload_ref(loads: Sequence[int], rng: Random) -> int:
    """The lowest load; ties go to the least recently assigned (the first minimum)."""
    return loads.index(min(loads))


def lru_ref(loads: Sequence[int], rng: Random) -> int:
    """The least recently assigned engine, whatever the loads."""
    return 0


def plainrandom_ref(loads: Sequence[int], rng: Random) -> int:
    """Uniform over the candidates."""
    return rng.randrange(len(loads))


def twobin_ref(loads: Sequence[int], rng: Random) -> int:
    """Two uniform draws with replacement; the less recently assigned of the two (loads ignored)."""
    n = len(loads)
    return min(rng.randrange(n), rng.randrange(n))


def _weighted_draw(loads: Sequence[int], rng: Random) -> int:
    weights = [_weight(load) for load in loads]
    r = rng.random() * sum(weights)
    acc = 0.0
    for i, w in enumerate(weights):
        acc += w
        if r < acc:
            return i
    return len(loads) - 1


def weighted_ref(loads: Sequence[int], rng: Random) -> int:
    """Two draws with probability ∝ 1/(1e-6 + load); the one with the lower load (first draw on a tie)."""
    a = _weighted_draw(loads, rng)
    b = _weighted_draw(loads, rng)
    return b if loads[b] < loads[a] else a


def powerofd_ref(loads: Sequence[int], rng: Random, d: int = 2) -> int:
    """d uniform draws with replacement; the lowest load (earliest draw on a tie) — JSQ(d)."""
    n = len(loads)
    best = rng.randrange(n)
    for _ in range(d - 1):
        i = rng.randrange(n)
        if loads[i] < loads[best]:
            best = i
    return best


# ------------------------------------------------------------------------------------- pools

class EnginePool(Protocol):
    """The available engines of one scheduler, with the scheme's fast decision rule.

    `load` maps each available engine to its load (the scheduler reads it to test availability).
    """

    load: dict[EngineId, int]

    def add(self, engine: EngineId, load: int, seq: int) -> None: ...
    def update(self, engine: EngineId, load: int, seq: int) -> None: ...
    def discard(self, engine: EngineId) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, engine: object) -> bool: ...
    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None) -> EngineId | None: ...


class _BasePool:
    """State every pool keeps: each available engine's load and seq."""

    reference: ReferenceFn

    def __init__(self) -> None:
        self.load: dict[EngineId, int] = {}
        self.seq: dict[EngineId, int] = {}

    def __len__(self) -> int:
        return len(self.load)

    def __contains__(self, engine: object) -> bool:
        return engine in self.load

    def _mostly_excluded(self, exclude: Collection[EngineId]) -> bool:
        """Whether fewer than a quarter of the pool remain: rejection sampling would then be slow
        (and with none left it would never end), so the explicit list is used instead."""
        load = self.load
        allowed = len(load) - sum(1 for e in exclude if e in load)
        return allowed * 4 < len(load)

    def _choose_by_reference(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId | None:
        """The reference law over the explicit candidate list (used when most engines are excluded)."""
        cands = sorted((s, e) for e, s in self.seq.items() if not (exclude and e in exclude))
        if not cands:
            return None
        idx = self.reference([self.load[e] for _, e in cands], rng)
        return cands[idx][1]


class _HeapPool(_BasePool):
    """A min-heap of (key..., engine) entries with lazy invalidation; the top valid entry is the choice.

    Each engine's current entry object is kept in `_entry`; a heap entry is valid only if it *is*
    that object (an identity test: cheap enough for the hot path, benchmarks/bench_core.py).
    """

    _by_load = True                      # key (load, seq) for leastload, (seq,) for lru

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[Any, ...]] = []
        self._entry: dict[EngineId, tuple[Any, ...]] = {}

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        self.load[engine] = load
        if not self._by_load and self.seq.get(engine) == seq and engine in self._entry:
            return                               # lru: a load change alone leaves the key as it is
        self.seq[engine] = seq
        entry = self._entry[engine] = (load, seq, engine) if self._by_load else (seq, engine)
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._entry) + 64:
            self._heap = list(self._entry.values())
            heapq.heapify(self._heap)

    update = add

    def discard(self, engine: EngineId) -> None:
        if self._entry.pop(engine, None) is not None:
            del self.load[engine]
            del self.seq[engine]

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None) -> EngineId | None:
        heap = self._heap
        current = self._entry
        skipped: list[tuple[Any, ...]] = []
        found = None
        while heap:
            top = heap[0]
            engine = top[-1]
            if current.get(engine) is not top:
                heapq.heappop(heap)
                continue
            if exclude and engine in exclude:
                skipped.append(heapq.heappop(heap))
                if len(skipped) > 32:      # mostly excluded: the explicit list is cheaper
                    for entry in skipped:
                        heapq.heappush(heap, entry)
                    return self._choose_by_reference(rng, exclude)
                continue
            found = engine
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found


class LeastLoadPool(_HeapPool):
    """leastload: the lowest (load, seq)."""

    reference = staticmethod(leastload_ref)


class LRUPool(_HeapPool):
    """lru: the lowest seq."""

    reference = staticmethod(lru_ref)
    _by_load = False


class _IndexedPool(_BasePool):
    """Available engines in a list with a position map: O(1) add, remove and uniform draw."""

    def __init__(self) -> None:
        super().__init__()
        self._items: list[EngineId] = []
        self._pos: dict[EngineId, int] = {}

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        if engine not in self._pos:
            self._pos[engine] = len(self._items)
            self._items.append(engine)
        self.load[engine] = load
        self.seq[engine] = seq

    update = add

    def discard(self, engine: EngineId) -> None:
        i = self._pos.pop(engine, None)
        if i is None:
            return
        last = self._items.pop()
        if i < len(self._items):
            self._items[i] = last
            self._pos[last] = i
        del self.load[engine]
        del self.seq[engine]

    def _draw(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId:
        items = self._items
        n = len(items)
        while True:
            e = items[int(rng.random() * n)]
            if not exclude or e not in exclude:
                return e

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None) -> EngineId | None:
        if not self._items or (exclude and self._mostly_excluded(exclude)):
            return self._choose_by_reference(rng, exclude) if self._items else None
        return self._pick(rng, exclude)

    def _pick(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId:
        raise NotImplementedError


class PlainRandomPool(_IndexedPool):
    """plainrandom: one uniform draw."""

    reference = staticmethod(plainrandom_ref)

    def _pick(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId:
        return self._draw(rng, exclude)


class TwoBinPool(_IndexedPool):
    """twobin: two uniform draws, the smaller seq."""

    reference = staticmethod(twobin_ref)

    def _pick(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId:
        a = self._draw(rng, exclude)
        b = self._draw(rng, exclude)
        return a if self.seq[a] <= self.seq[b] else b


class PowerOfDPool(_IndexedPool):
    """powerofd: d uniform draws, the lowest load (earliest draw on a tie)."""

    def __init__(self, d: int = 2) -> None:
        super().__init__()
        if d < 1:
            raise ValueError("powerofd needs d >= 1")
        self.d = d

    def reference(self, loads: Sequence[int], rng: Random) -> int:
        return powerofd_ref(loads, rng, self.d)

    def _pick(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId:
        load = self.load
        best = self._draw(rng, exclude)
        for _ in range(self.d - 1):
            e = self._draw(rng, exclude)
            if load[e] < load[best]:
                best = e
        return best


class WeightedPool(_BasePool):
    """weighted: engines bucketed by load level; a draw picks a level ∝ count/(1e-6+load), then uniformly."""

    reference = staticmethod(weighted_ref)

    def __init__(self) -> None:
        super().__init__()
        self._levels: dict[int, tuple[list[EngineId], dict[EngineId, int]]] = {}

    def _level_remove(self, engine: EngineId, load: int) -> None:
        items, pos = self._levels[load]
        i = pos.pop(engine)
        last = items.pop()
        if i < len(items):
            items[i] = last
            pos[last] = i
        if not items:
            del self._levels[load]

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        old = self.load.get(engine)
        if old is not None and old != load:
            self._level_remove(engine, old)
        if old is None or old != load:
            items, pos = self._levels.setdefault(load, ([], {}))
            pos[engine] = len(items)
            items.append(engine)
        self.load[engine] = load
        self.seq[engine] = seq

    update = add

    def discard(self, engine: EngineId) -> None:
        load = self.load.pop(engine, None)
        if load is None:
            return
        del self.seq[engine]
        self._level_remove(engine, load)

    def _masses(self) -> tuple[list[tuple[float, list[EngineId]]], float]:
        """Each load level's total weight (heaviest first, so a draw usually stops at once) and the sum."""
        masses = []
        total = 0.0
        for load, (items, _) in self._levels.items():
            mass = len(items) / (WEIGHT_EPSILON + load)
            total += mass
            masses.append((mass, items))
        if len(masses) > 1:
            masses.sort(key=itemgetter(0), reverse=True)
        return masses, total

    @staticmethod
    def _draw(rng: Random, masses: list[tuple[float, list[EngineId]]], total: float,
              exclude: Collection[EngineId] | None) -> EngineId:
        while True:
            r = rng.random() * total
            chosen = masses[-1][1]
            for mass, items in masses:
                r -= mass
                if r < 0:
                    chosen = items
                    break
            e = chosen[int(rng.random() * len(chosen))]
            if not exclude or e not in exclude:
                return e

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None) -> EngineId | None:
        if not self.load or (exclude and self._mostly_excluded(exclude)):
            return self._choose_by_reference(rng, exclude) if self.load else None
        if len(self._levels) == 1 and not exclude:
            # One load level (always so at hwm=1): equal weights and equal loads, so the law reduces
            # to the first of two uniform draws, i.e. one uniform draw.
            items = next(iter(self._levels.values()))[0]
            return items[int(rng.random() * len(items))]
        masses, total = self._masses()
        a = self._draw(rng, masses, total, exclude)
        b = self._draw(rng, masses, total, exclude)
        return b if self.load[b] < self.load[a] else a


@dataclass(frozen=True, slots=True)
class Scheme:
    """A registered scheme: its name, its reference law and a factory for its fast pool."""

    name: str
    reference: ReferenceFn
    pool: Callable[[], EnginePool]
    summary: str


SCHEMES: dict[str, Scheme] = {
    s.name: s for s in (
        Scheme("leastload", leastload_ref, LeastLoadPool,
               "the lowest load; ties to the least recently assigned (default)"),
        Scheme("lru", lru_ref, LRUPool, "the least recently assigned, whatever the loads"),
        Scheme("plainrandom", plainrandom_ref, PlainRandomPool, "uniform over candidates"),
        Scheme("twobin", twobin_ref, TwoBinPool,
               "two uniform draws, the less recently assigned of the two"),
        Scheme("weighted", weighted_ref, WeightedPool,
               "two draws weighted by 1/(1e-6+load), the lower load of the two"),
        Scheme("powerofd", powerofd_ref, PowerOfDPool,
               "power of two choices (JSQ(2)): two uniform draws, the lower load"),
    )
}


def get_scheme(name: str) -> Scheme:
    """The registered scheme called `name`; ValueError naming the choices otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; choose one of {', '.join(SCHEMES)}") from None
