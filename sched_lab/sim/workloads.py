"""Workloads: when each task is submitted, how much work it carries, and what it depends on.

A `Workload` is columnar: `submit_at` and `work` are float64 arrays indexed by task id (0..n-1,
in submission order); the few tasks with dependencies, targets or module requirements have a
`TaskExtras` entry. Builders draw from the named numpy streams they are given (see `streams`), so
the same seed gives every scheme the identical workload.

Sources: Poisson arrivals at a per-engine load, a batch (every task at t=0), or a CSV trace with
columns `submit_time,duration` and optionally `after`, `follow` (';'-separated row numbers of earlier
rows), `targets` (';'-separated engine indices), `requires` (';'-separated module names),
`creates_actor` (this row creates the actor of that name) and `actor` (this row calls that actor,
created by an earlier row; sim/actors.py).
DAG shapes (`chains`, `forkjoin`, `random`) and requirement mixes are overlaid on any source.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from .distributions import Dist

# Append only: a stream is the SeedSequence child at its index, so a new name leaves the others' draws alone.
STREAM_NAMES = ("arrivals", "lengths", "scheduler", "failures", "dag", "requires", "errors", "network", "overhead",
                "actors", "worker_failures", "hints", "pickup")   # (appended last: earlier children, hence streams, stay the same)


def streams(seed: int) -> dict[str, np.random.Generator]:
    """One independent numpy Generator per source, spawned from `seed` (fixed order, fixed names)."""
    children = np.random.SeedSequence(seed).spawn(len(STREAM_NAMES))
    return {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(STREAM_NAMES, children)}


@dataclass(frozen=True, slots=True)
class TaskExtras:
    """Per-task flags beyond submission time and work: dependencies (task ids), targets, modules, and
    actors: `creates` names the actor this task creates, `actor` the actor it calls (sim/actors.py)."""

    after: tuple[int, ...] = ()
    follow: tuple[int, ...] = ()
    targets: tuple[int, ...] | None = None
    requires: frozenset[str] = frozenset()
    creates: str | None = None
    actor: str | None = None

    def merged(self, other: TaskExtras) -> TaskExtras:
        targets = self.targets if other.targets is None else other.targets
        return TaskExtras(tuple(sorted({*self.after, *other.after})), tuple(sorted({*self.follow, *other.follow})),
                          targets, self.requires | other.requires, other.creates or self.creates,
                          other.actor or self.actor)


@dataclass(frozen=True, slots=True, eq=False)
class Workload:
    """n tasks: submission times (nondecreasing), work in time units at speed 1, and extras by task id."""

    submit_at: np.ndarray
    work: np.ndarray
    extras: Mapping[int, TaskExtras] = field(default_factory=lambda: MappingProxyType({}))
    name: str = "custom"

    def __post_init__(self) -> None:
        sub = np.ascontiguousarray(self.submit_at, dtype=np.float64)
        work = np.ascontiguousarray(self.work, dtype=np.float64)
        if sub.ndim != 1 or sub.shape != work.shape:
            raise ValueError("submit_at and work must be 1-d arrays of the same length")
        if len(sub) == 0:
            raise ValueError("a workload needs at least one task")
        if not (np.all(np.isfinite(sub)) and np.all(np.isfinite(work))):
            raise ValueError("submission times and durations must be finite numbers")
        if np.any(sub < 0) or np.any(np.diff(sub) < 0):
            raise ValueError("submission times must be >= 0 and nondecreasing")
        if np.any(work < 0):
            raise ValueError("task durations must be >= 0")
        n = len(sub)
        created: dict[str, int] = {}
        for tid in sorted(tid for tid, ex in self.extras.items() if ex.creates or ex.actor):
            ex = self.extras[tid]
            if ex.creates and ex.actor:
                raise ValueError(f"task {tid} both creates actor {ex.creates!r} and calls {ex.actor!r}")
            if ex.creates and created.setdefault(ex.creates, tid) != tid:
                raise ValueError(f"actor {ex.creates!r} is created twice (tasks {created[ex.creates]} and {tid})")
            if ex.actor and ex.actor not in created:
                raise ValueError(f"task {tid} calls actor {ex.actor!r}, which no earlier task creates")
        for tid, ex in self.extras.items():
            if not 0 <= tid < n:
                raise ValueError(f"extras for unknown task {tid}")
            for dep in (*ex.after, *ex.follow):
                if not 0 <= dep < tid:
                    raise ValueError(f"task {tid} depends on task {dep}: dependencies must be earlier tasks")
        object.__setattr__(self, "submit_at", sub)
        object.__setattr__(self, "work", work)
        object.__setattr__(self, "extras", MappingProxyType(dict(self.extras)))

    def __len__(self) -> int:
        return len(self.submit_at)

    @property
    def has_dependencies(self) -> bool:
        return any(ex.after or ex.follow for ex in self.extras.values())


def parse_size_hints(spec: str) -> tuple[str, float]:
    """`exact` or `noisy:SIGMA` (SIGMA >= 0) -> (kind, sigma); ValueError naming the choices otherwise."""
    kind, _, arg = spec.partition(":")
    if kind == "exact" and not arg:
        return "exact", 0.0
    if kind == "noisy":
        try:
            sigma = float(arg)
        except ValueError:
            sigma = math.nan
        if sigma >= 0 and math.isfinite(sigma):
            return "noisy", sigma
    raise ValueError(f"size hints must be exact or noisy:SIGMA (SIGMA >= 0), got {spec!r}")


def size_hints(spec: str, work: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each task's size hint (what the submitter tells the scheme, `choice.task.size_hint`) from its true work.

    `exact`: the work itself. `noisy:SIGMA`: the work times an independent log-normal factor with
    log-sd SIGMA and mean 1 (exp(N(-SIGMA²/2, SIGMA²))): unbiased, off by a factor e^SIGMA at one sd.
    Drawn from its own stream (`hints`), so adding hints changes no other draw.
    """
    kind, sigma = parse_size_hints(spec)
    if kind == "exact" or sigma == 0:
        return np.array(work, dtype=np.float64)
    return work * rng.lognormal(-sigma * sigma / 2, sigma, len(work))


# ---------------------------------------------------------------------------------- sources

def poisson_times(rng: np.random.Generator, n: int, rate: float) -> np.ndarray:
    """n Poisson arrival times at total rate `rate` (first arrival after one gap)."""
    if not rate > 0:
        raise ValueError(f"arrival rate must be > 0, got {rate!r}")
    return np.cumsum(rng.exponential(1.0 / rate, n))


def poisson_workload(gens: Mapping[str, np.random.Generator], n: int, load: float, capacity: float,
                     length: Dist) -> Workload:
    """Poisson arrivals at per-engine `load` (total rate load·capacity/mean length), lengths from `length`."""
    if not 0 < load:
        raise ValueError(f"load must be > 0, got {load!r}")
    rate = load * capacity / (length.mean or 1.0)
    return Workload(poisson_times(gens["arrivals"], n, rate), length.sample(gens["lengths"], n),
                    name=f"poisson(load={load:g},{length})")


def batch_workload(gens: Mapping[str, np.random.Generator], n: int, length: Dist) -> Workload:
    """A `map` of n tasks all submitted at t=0."""
    return Workload(np.zeros(n), length.sample(gens["lengths"], n), name=f"batch({length})")


def _ids(text: str, row: int, column: str) -> tuple[int, ...]:
    text = text.strip()
    if not text:
        return ()
    try:
        return tuple(int(x) for x in text.split(";"))
    except ValueError:
        raise ValueError(f"trace row {row}: column {column!r} must be ';'-separated integers, got {text!r}") from None


def trace_workload(path: str, n_engines: int) -> Workload:
    """Replay a CSV trace (see the module docstring); raises ValueError naming the bad row or column."""
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise ValueError(f"cannot read trace file {path!r}: {exc.strerror}") from None
    with fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        if not {"submit_time", "duration"} <= cols:
            raise ValueError(f"trace {path!r} needs a header with columns submit_time,duration "
                             f"(optional: after, follow, targets, requires, creates_actor, actor); got {sorted(cols)}")
        sub: list[float] = []
        work: list[float] = []
        extras: dict[int, TaskExtras] = {}
        for row, rec in enumerate(reader):
            try:
                sub.append(float(rec["submit_time"]))
                work.append(float(rec["duration"]))
            except (TypeError, ValueError):
                raise ValueError(f"trace row {row}: submit_time and duration must be numbers, "
                                 f"got {rec['submit_time']!r}, {rec['duration']!r}") from None
            after, follow = _ids(rec.get("after") or "", row, "after"), _ids(rec.get("follow") or "", row, "follow")
            tg = _ids(rec.get("targets") or "", row, "targets")
            if any(not 0 <= e < n_engines for e in tg):
                raise ValueError(f"trace row {row}: targets {tg} outside engines 0..{n_engines - 1}")
            req = frozenset(m.strip() for m in (rec.get("requires") or "").split(";") if m.strip())
            creates, actor = (rec.get("creates_actor") or "").strip() or None, (rec.get("actor") or "").strip() or None
            if after or follow or tg or req or creates or actor:
                extras[row] = TaskExtras(after, follow, tg or None, req, creates, actor)
    if not sub:
        raise ValueError(f"trace {path!r} has no rows")
    try:
        return Workload(np.array(sub), np.array(work), extras, name=f"trace({path})")
    except ValueError as exc:
        raise ValueError(f"trace {path!r}: {exc}") from None


# ------------------------------------------------------------------------------- overlays

DAG_KINDS = {"chains": {"length": 5.0, "follow": 0.0},
             "forkjoin": {"width": 8.0, "follow": 0.0},
             "random": {"parents": 2.0, "window": 20.0, "p": 0.5, "follow": 0.0}}


@dataclass(frozen=True, slots=True)
class DagSpec:
    """A DAG shape: `chains` (length), `forkjoin` (width), `random` (parents, window, p); `follow` =
    fraction of edges that are also location dependencies."""

    kind: str
    params: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in DAG_KINDS:
            raise ValueError(f"unknown DAG kind {self.kind!r}; allowed: {', '.join(DAG_KINDS)}")
        bad = [k for k, _ in self.params if k not in DAG_KINDS[self.kind]]
        if bad:
            raise ValueError(f"DAG {self.kind} takes no parameter {bad[0]!r}; allowed: {', '.join(DAG_KINDS[self.kind])}")
        p = {**DAG_KINDS[self.kind], **dict(self.params)}
        if not 0 <= p["follow"] <= 1 or p.get("p", 0.5) < 0 or p.get("p", 0.5) > 1:
            raise ValueError("DAG fractions (follow, p) must be in [0, 1]")
        if min(p.get("length", 1), p.get("width", 1), p.get("parents", 1), p.get("window", 1)) < 1:
            raise ValueError("DAG sizes (length, width, parents, window) must be >= 1")
        object.__setattr__(self, "params", tuple(sorted(p.items())))

    @classmethod
    def parse(cls, text: str) -> DagSpec:
        kind, _, rest = text.partition(":")
        params = []
        for item in filter(None, (s.strip() for s in rest.split(","))):
            key, eq, value = item.partition("=")
            try:
                params.append((key.strip(), float(value)))
            except ValueError:
                raise ValueError(f"malformed DAG parameter {item!r} in {text!r}: expected key=number") from None
        return cls(kind.strip(), tuple(params))


def dag_edges(spec: DagSpec, n: int, rng: np.random.Generator) -> dict[int, TaskExtras]:
    """Dependency extras for n tasks arranged as `spec` (every edge points to an earlier task)."""
    p = dict(spec.params)
    out: dict[int, TaskExtras] = {}
    follow_frac = p["follow"]

    def edge(child: int, parents: list[int]) -> None:
        if not parents:
            return
        fol = tuple(parents[:1]) if follow_frac and rng.random() < follow_frac else ()
        out[child] = TaskExtras(after=tuple(parents), follow=fol)

    if spec.kind == "chains":
        length = int(p["length"])
        for i in range(n):
            if i % length:
                edge(i, [i - 1])
    elif spec.kind == "forkjoin":
        width = int(p["width"])
        group = width + 2
        for i in range(n):
            pos, base = i % group, i - i % group
            if 1 <= pos <= width:
                edge(i, [base])
            elif pos == width + 1:
                edge(i, list(range(base + 1, base + 1 + width)))
    else:
        parents, window, prob = int(p["parents"]), int(p["window"]), p["p"]
        for i in range(1, n):
            if rng.random() >= prob:
                continue
            lo = max(0, i - window)
            k = min(parents, i - lo)
            edge(i, sorted(int(x) for x in rng.choice(np.arange(lo, i), size=k, replace=False)))
    return out


@dataclass(frozen=True, slots=True)
class RequireMix:
    """A fraction `task_fraction` of tasks require `module`, which a fraction `engine_fraction` of engines have."""

    module: str
    task_fraction: float
    engine_fraction: float

    def __post_init__(self) -> None:
        if not self.module or not 0 <= self.task_fraction <= 1 or not 0 <= self.engine_fraction <= 1:
            raise ValueError("a requirement mix is MODULE:TASK_FRACTION:ENGINE_FRACTION with fractions in [0, 1]")

    @classmethod
    def parse(cls, text: str) -> RequireMix:
        parts = text.split(":")
        try:
            module, tf, ef = parts
            return cls(module.strip(), float(tf), float(ef))
        except ValueError:
            raise ValueError(f"malformed requirement mix {text!r}: expected MODULE:TASK_FRACTION:ENGINE_FRACTION, "
                             "e.g. cuda:0.2:0.1") from None


def requirement_extras(mixes: tuple[RequireMix, ...], n: int, rng: np.random.Generator) -> dict[int, TaskExtras]:
    """Which tasks require which modules (drawn per mix, in order)."""
    out: dict[int, TaskExtras] = {}
    for mix in mixes:
        for tid in np.flatnonzero(rng.random(n) < mix.task_fraction).tolist():
            ex = out.get(tid, TaskExtras())
            out[tid] = TaskExtras(ex.after, ex.follow, ex.targets, ex.requires | {mix.module})
    return out


def engine_modules(mixes: tuple[RequireMix, ...], n_engines: int, rng: np.random.Generator) -> list[frozenset[str]]:
    """Modules per engine: each mix's module on round(fraction·n) engines chosen at random (at least one
    engine when the fraction is > 0)."""
    mods: list[set[str]] = [set() for _ in range(n_engines)]
    for mix in mixes:
        k = min(n_engines, max(1 if mix.engine_fraction > 0 else 0, round(mix.engine_fraction * n_engines)))
        for e in rng.choice(n_engines, size=k, replace=False).tolist():
            mods[e].add(mix.module)
    return [frozenset(m) for m in mods]


def with_extras(workload: Workload, *layers: Mapping[int, TaskExtras]) -> Workload:
    """The workload with extra layers merged in (dependencies, requirements)."""
    merged = dict(workload.extras)
    for layer in layers:
        for tid, ex in layer.items():
            merged[tid] = merged[tid].merged(ex) if tid in merged else ex
    return Workload(workload.submit_at, workload.work, merged, workload.name)


def parse_speeds(text: str) -> tuple[float, ...]:
    """`SPEEDxCOUNT[,SPEEDxCOUNT...]` (e.g. `1x50,4x10`: 50 engines at speed 1, 10 at speed 4) -> speeds."""
    speeds: list[float] = []
    for item in filter(None, (s.strip() for s in text.split(","))):
        speed, x, count = item.partition("x")
        try:
            s, c = float(speed), int(count) if x else 1
        except ValueError:
            raise ValueError(f"malformed speed {item!r} in {text!r}: expected SPEEDxCOUNT, e.g. 1x50,4x10") from None
        if not (s > 0 and math.isfinite(s)) or c < 1:
            raise ValueError(f"speed must be > 0 and count >= 1 in {item!r}")
        speeds.extend([s] * c)
    if not speeds:
        raise ValueError(f"no engines in speed list {text!r}")
    return tuple(speeds)
