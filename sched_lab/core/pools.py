"""The built-in schemes' index-based reference functions and their fast pools (registered in schemes.py).

How this works. A *reference* function takes the candidates' loads in least-recently-assigned
order (index 0 = least recently assigned) and a random generator, and returns an index. It is the
obviously-correct statement of the scheme (DESIGN §3) and is used whenever the scheduler has an
explicit, small candidate list (targets, follow, or a large exclusion).

A *pool* is the fast form: it holds the engines that are currently available (below hwm), each
with its load and `seq` (its last-assignment sequence number; smaller = less recently assigned),
and answers `choose(rng, exclude)` in O(1) or O(log n) with the same decision law:

- leastload / lru: binary heaps keyed by (load, seq) / (seq,), packed into one int (the idle engines
  in a heap of their own), with lazy invalidation;
- plainrandom / twobin / powerofd: an indexable set (list + position map) for O(1) uniform draws;
- jiq: the same, plus an indexable set of the idle engines;
- fastest: a heap keyed by ((load + 1) / speed, seq), speeds from the scheduler's EngineDirectory;
- weighted (weighted_pool.py): engines in one list sorted by load level; a draw picks a level with
  probability proportional to count × 1/(1e-6 + load), then an engine uniformly within it.

`exclude` (engines the task must not use) is honoured by rejection for the random schemes and by
popping past excluded entries for the heaps; when most of the pool is excluded the pool falls back
to the reference law over the explicit candidate list. Tests hold every pool to its reference law
(tests/core/test_schemes.py, and sched_lab.testing.check_scheme); benchmarks/bench_core.py
measures both.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Collection, Hashable, Sequence
from random import Random
from typing import Any

from .scheme_api import EngineDirectory

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


def jiq_ref(loads: Sequence[int], rng: Random) -> int:
    """Join-idle-queue: uniform over the idle candidates (load 0) if any, else uniform over all."""
    idle = [i for i, load in enumerate(loads) if load == 0]
    if idle:
        return idle[rng.randrange(len(idle))]
    return rng.randrange(len(loads))


def fastest_ref(loads: Sequence[int], rng: Random, speeds: Sequence[float] | None = None) -> int:
    """The lowest expected delay (load + 1) / speed; ties to the least recently assigned (the first)."""
    if speeds is None:
        return loads.index(min(loads))
    keys = [(load + 1) / speed for load, speed in zip(loads, speeds)]
    return keys.index(min(keys))


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

class _BasePool:
    """State every pool keeps: each available engine's load and seq."""

    reference: ReferenceFn

    def __init__(self, engines: EngineDirectory | None = None) -> None:
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

    def take(self, rng: Random, seq: int, hwm: int) -> EngineId | None:
        """The choice for a task with no exclusions and the assignment that follows it, in one call: the
        chosen engine's load goes up by one and its seq becomes `seq`; it leaves the pool when its load
        reaches `hwm` (0: never). Returns the engine, or None when the pool is empty. The same calls
        and draws as `choose` and then `update` or `discard` (what the scheduler does per dispatch);
        pools override it with one pass (sched_lab/core/lane.py, the simulator's fast path)."""
        pool: Any = self                                 # (every pool class has choose, update, discard)
        engine: EngineId | None = pool.choose(rng, None, None)
        if engine is None:
            return None
        load = self.load[engine] + 1
        if load == hwm:
            pool.discard(engine)
        else:
            pool.update(engine, load, seq)
        return engine

    def _choose_by_reference(self, rng: Random, exclude: Collection[EngineId] | None) -> EngineId | None:
        """The reference law over the explicit candidate list (used when most engines are excluded)."""
        cands = sorted((s, e) for e, s in self.seq.items() if not (exclude and e in exclude))
        if not cands:
            return None
        idx = self._reference_index([e for _, e in cands], rng)
        return cands[idx][1]

    def _reference_index(self, engines: list[EngineId], rng: Random) -> int:
        return self.reference([self.load[e] for e in engines], rng)


class _HeapPool(_BasePool):
    """A min-heap of (key..., engine) entries with lazy invalidation; the top valid entry is the choice.

    Each engine's current entry object is kept in `_entry`; a heap entry is valid only if it *is*
    that object (an identity test: cheap enough for the hot path, benchmarks/bench_core.py).
    """

    _by_load = True                      # key (load, seq) for leastload, (seq,) for lru

    def __init__(self, engines: EngineDirectory | None = None) -> None:
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

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None) -> EngineId | None:
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


_SEQ_BITS = 40
_LOAD_UNIT = 1 << _SEQ_BITS
_IDLE_BELOW = _LOAD_UNIT >> 1            # keys below it have load 0 (|seq| < 2**39)


class _IntKeyHeapPool(_BasePool):
    """_HeapPool's law with each entry packed into one int: `load * 2**40 + seq` (or the seq alone).

    A seq names one engine (the scheduler's join and assignment counters never repeat, |seq| < 2**39,
    so keys of different loads never overlap), so a key does too: `_owner` maps the current keys to
    their engines and a heap key not in it is stale. Ints compare in one step where (load, seq,
    engine) tuples take three, which roughly halves the cost of the heap pushes and pops done twice
    per task; `seq` is derived from the keys when asked (the choice never needs it).

    The keys sit in two heaps: `_idle` holds those of load 0 (the bare seq: small ints) and `_busy`
    the others. The choice is the top of `_idle` when it holds a live key (any load-0 key is below
    every other), else the top of `_busy`. At hwm 0 every dispatch pushes a load-1 key and every
    completion a load-0 one; with one heap the stale load-1 keys doubled its size and every pop
    walked it (~2x10^4 two-digit ints at 10^4 engines), while the choice only ever pops `_idle`
    (~10^3: the idle engines) as long as one is idle (benchmarks/bench_sim.py, leastload hwm 0). A heap
    is rebuilt from the live keys when stale ones outnumber them.
    """

    _by_load = True                      # key (load, seq) for leastload, (seq,) for lru

    def __init__(self, engines: EngineDirectory | None = None) -> None:
        self.load: dict[EngineId, int] = {}
        self._idle: list[int] = []                   # keys of load 0 (= seq), a heap
        self._busy: list[int] = []                   # keys of load >= 1, a heap
        self._factor = _LOAD_UNIT if self._by_load else 0
        self._key: dict[EngineId, int] = {}          # each available engine's current key
        self._owner: dict[int, EngineId] = {}        # current key -> its engine
        self._limit = 64                             # at most 2 * live keys + 64 per heap (checked past it)

    @property
    def seq(self) -> dict[EngineId, int]:            # type: ignore[override]
        """Each available engine's seq (from its key)."""
        load, factor = self.load, self._factor
        return {e: key - load[e] * factor for e, key in self._key.items()}

    def add(self, engine: EngineId, load: int, seq: int, _push: Callable[[list[int], int], None] = heapq.heappush) -> None:
        self.load[engine] = load
        key = load * self._factor + seq
        keys = self._key
        old = keys.get(engine)
        if old == key:
            return                               # same (load, seq), or lru and only the load changed
        owner = self._owner
        if old is not None:
            del owner[old]
        keys[engine] = key
        owner[key] = engine
        heap = self._idle if key < _IDLE_BELOW else self._busy
        _push(heap, key)
        if len(heap) > self._limit:
            self._rebuild()

    update = add

    def _rebuild(self) -> None:
        """A heap passed the limit: rebuild each heap that holds more stale keys than 2x live + 64."""
        keys = self._key
        self._limit = limit = 2 * len(keys) + 64
        if len(self._idle) > limit:
            self._idle = [k for k in keys.values() if k < _IDLE_BELOW]
            heapq.heapify(self._idle)
        if len(self._busy) > limit:
            self._busy = [k for k in keys.values() if k >= _IDLE_BELOW]
            heapq.heapify(self._busy)

    def discard(self, engine: EngineId) -> None:
        key = self._key.pop(engine, None)
        if key is not None:
            del self._owner[key]
            del self.load[engine]

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None, _pop: Callable[[list[int]], int] = heapq.heappop) -> EngineId | None:
        owner = self._owner
        if not exclude:                          # the common case
            heap = self._idle
            while heap:
                engine = owner.get(heap[0])
                if engine is not None:
                    return engine
                _pop(heap)
            heap = self._busy
            while heap:
                engine = owner.get(heap[0])
                if engine is not None:
                    return engine
                _pop(heap)
            return None
        skipped: list[int] = []
        found = None
        for heap in (self._idle, self._busy):
            while heap:
                engine = owner.get(heap[0])
                if engine is None:
                    heapq.heappop(heap)
                    continue
                if engine in exclude:
                    skipped.append(heapq.heappop(heap))
                    if len(skipped) > 32:      # mostly excluded: the explicit list is cheaper
                        self._restore(skipped)
                        return self._choose_by_reference(rng, exclude)
                    continue
                found = engine
                break
            if found is not None:
                break
        self._restore(skipped)
        return found

    def take(self, rng: Random, seq: int, hwm: int, _pop: Callable[[list[int]], int] = heapq.heappop,
             _push: Callable[[list[int], int], None] = heapq.heappush) -> EngineId | None:
        """choose, then update or discard (see _BasePool.take), in one pass; the chosen key leaves its
        heap at once (it is stale from here on)."""
        owner = self._owner
        heap = self._idle
        while True:
            if heap:
                engine = owner.pop(heap[0], None)
                _pop(heap)
                if engine is not None:
                    break
            elif heap is self._idle:
                heap = self._busy
            else:
                return None
        load = self.load[engine] + 1
        if load == hwm:
            del self._key[engine]
            del self.load[engine]
            return engine
        self.load[engine] = load
        key = load * self._factor + seq
        self._key[engine] = key
        owner[key] = engine
        heap = self._idle if key < _IDLE_BELOW else self._busy
        _push(heap, key)
        if len(heap) > self._limit:
            self._rebuild()
        return engine

    def _restore(self, skipped: list[int]) -> None:
        """Push back the live keys popped past (excluded engines) into their heaps."""
        for key in skipped:
            heapq.heappush(self._idle if key < _IDLE_BELOW else self._busy, key)


class LeastLoadPool(_IntKeyHeapPool):
    """leastload: the lowest (load, seq)."""

    reference = staticmethod(leastload_ref)


class LRUPool(_IntKeyHeapPool):
    """lru: the lowest seq."""

    reference = staticmethod(lru_ref)
    _by_load = False


class _IndexedPool(_BasePool):
    """Available engines in a list with a position map: O(1) add, remove and uniform draw."""

    def __init__(self, engines: EngineDirectory | None = None) -> None:
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

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None) -> EngineId | None:
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

    def __init__(self, engines: EngineDirectory | None = None, d: int = 2) -> None:
        super().__init__()
        if isinstance(d, bool) or not isinstance(d, int) or d < 1:
            raise ValueError(f"powerofd needs an integer d >= 1, got {d!r}")
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


class JIQPool(_IndexedPool):
    """jiq: a uniform draw among the idle engines (a second indexable set) if any, else among all."""

    reference = staticmethod(jiq_ref)

    def __init__(self, engines: EngineDirectory | None = None) -> None:
        super().__init__(engines)
        self._idle: list[EngineId] = []
        self._idle_pos: dict[EngineId, int] = {}

    def _idle_remove(self, engine: EngineId) -> None:
        i = self._idle_pos.pop(engine, None)
        if i is None:
            return
        last = self._idle.pop()
        if i < len(self._idle):
            self._idle[i] = last
            self._idle_pos[last] = i

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        super().add(engine, load, seq)
        if load == 0:
            if engine not in self._idle_pos:
                self._idle_pos[engine] = len(self._idle)
                self._idle.append(engine)
        else:
            self._idle_remove(engine)

    update = add

    def discard(self, engine: EngineId) -> None:
        super().discard(engine)
        self._idle_remove(engine)

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None) -> EngineId | None:
        if not self._items:
            return None
        if exclude:                  # rare (retries, blacklists): the law over the explicit list
            return self._choose_by_reference(rng, exclude)
        idle = self._idle
        if idle:
            return idle[int(rng.random() * len(idle))]
        items = self._items
        return items[int(rng.random() * len(items))]


class FastestPool(_HeapPool):
    """fastest: the lowest ((load + 1) / speed, seq); speeds as the engines advertised them."""

    reference = staticmethod(fastest_ref)

    def __init__(self, engines: EngineDirectory | None = None) -> None:
        super().__init__(engines)
        self._speed = engines.speed if engines is not None else {}

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        self.load[engine] = load
        self.seq[engine] = seq
        entry = self._entry[engine] = ((load + 1) / self._speed.get(engine, 1.0), seq, engine)
        heapq.heappush(self._heap, entry)
        if len(self._heap) > 2 * len(self._entry) + 64:
            self._heap = list(self._entry.values())
            heapq.heapify(self._heap)

    update = add

    def _reference_index(self, engines: list[EngineId], rng: Random) -> int:
        return fastest_ref([self.load[e] for e in engines], rng, [self._speed.get(e, 1.0) for e in engines])
