"""`check_scheme`: the checks every built-in scheme passes, for users to run on their own (DESIGN §3.1).

Importable as `from sched_lab.testing import check_scheme` (sched_lab/__init__.py passes a clock, so its
report includes the time per call). Standard library only: the chi-square tail is computed here.

How this works. Random engine states are drawn (loads, least-recently-assigned order, speeds,
labels, an exclusion set, a task with a label and a size hint). On each state:
- eligibility: the law, under several seeds, and the pool return a candidate (never an excluded
  or unknown engine, never None while candidates exist);
- pool vs law: when the law ignores its random generator on every state (deterministic), the
  pool must make the identical choice; otherwise both are sampled many times and a two-sample
  chi-square test must not reject that they draw from one distribution;
- determinism: the same seed gives the same sequence of choices, for the law and for the pool;
- in a scheduler: a TaskScheduler running the scheme (hwm 0, 1 and 2) through random joins,
  losses, submissions (some with targets and labels) and completions only ever dispatches to a
  live engine below hwm and among the task's targets, and never fails a task with SchemeError.
The first violation raises AssertionError describing it; all passing returns a short report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from random import Random
from typing import Any

from .model import TaskSpec
from .scheme_api import BoundScheme, EngineDirectory, EnginePool, SchemeFailure, decide, parse_scheme

SPEEDS = (0.5, 1.0, 1.0, 2.0, 4.0)
LABELS: tuple[frozenset[str], ...] = (frozenset(), frozenset({"gpu"}), frozenset({"bigmem"}), frozenset({"gpu", "bigmem"}))


# ------------------------------------------------------------------------------ chi-square tail

def _gamma_q(a: float, x: float) -> float:
    """Regularized upper incomplete gamma Q(a, x) (series below a+1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        n = a
        for _ in range(10_000):
            n += 1
            term *= x / n
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300                        # Lentz's method for the continued fraction
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for X chi-square with `df` degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return _gamma_q(df / 2, x / 2)


def two_sample_chi2(a: Mapping[Hashable, int], b: Mapping[Hashable, int]) -> tuple[float, int, float]:
    """Chi-square test that two equal-size samples of choices share one distribution: (stat, df, p).

    Cells with fewer than 10 draws in both samples together are pooled into one cell.
    """
    if sum(a.values()) != sum(b.values()):
        raise ValueError("the two samples must have the same size")
    cells: list[tuple[int, int]] = []
    rest = [0, 0]
    for key in set(a) | set(b):
        x, y = a.get(key, 0), b.get(key, 0)
        if x + y >= 10:
            cells.append((x, y))
        else:
            rest[0] += x
            rest[1] += y
    if sum(rest):
        cells.append((rest[0], rest[1]))
    if len(cells) < 2:
        return 0.0, 0, 1.0
    stat = sum((x - y) ** 2 / (x + y) for x, y in cells if x + y)
    df = len(cells) - 1
    return stat, df, chi2_sf(stat, df)


# ------------------------------------------------------------------------------------ states

class _State:
    """One random situation: engines (LRU order by seq), their loads, speeds, labels; an exclusion; a task."""

    def __init__(self, rnd: Random, max_engines: int) -> None:
        n = rnd.randint(1, max_engines)
        self.engines = [f"e{i}" for i in range(n)]
        seqs = list(range(1, n + 1))
        rnd.shuffle(seqs)
        self.seq = dict(zip(self.engines, seqs))
        self.load = {e: rnd.choice((0, 0, 1, 1, 2, 3, 5)) for e in self.engines}
        self.directory = EngineDirectory()
        for e in self.engines:
            self.directory.join(e, rnd.choice(SPEEDS), rnd.choice(LABELS))
        k = rnd.randint(1, n - 1) if n > 1 and rnd.random() < 0.3 else 0
        self.exclude = frozenset(rnd.sample(self.engines, k))
        self.task = TaskSpec(f"task-{rnd.randrange(10**6)}", label=rnd.choice((None, "small", "big")),
                             size_hint=rnd.choice((None, 0.5, 2.0)))
        self.candidates = [e for e in sorted(self.engines, key=self.seq.__getitem__) if e not in self.exclude]

    def law_choice(self, bound: BoundScheme, rng: Random) -> Hashable:
        return decide(bound.label, bound.scheme.law, bound.params, self.candidates,
                      [self.load[e] for e in self.candidates], self.directory, self.task, rng)

    def new_pool(self, bound: BoundScheme) -> EnginePool:
        pool = bound.new_pool(self.directory)
        for e in self.engines:               # joined in some order, then set to this state
            pool.add(e, 0, -self.engines.index(e) - 1)
        for e in self.engines:
            pool.update(e, self.load[e], self.seq[e])
        return pool

    def pool_choice(self, pool: EnginePool, rng: Random) -> Hashable:
        got = pool.choose(rng, self.exclude or None, self.task)
        if got not in self.candidates:
            raise SchemeFailure(f"the pool returned {got!r}, which is not a candidate")
        return got

    def describe(self) -> str:
        rows = ", ".join(f"{e}(load={self.load[e]}, speed={self.directory.speed[e]})" for e in self.candidates)
        return f"candidates in LRU order: {rows}; excluded: {sorted(self.exclude)}"


def _violation(what: str, state: _State, detail: str) -> AssertionError:
    return AssertionError(f"{what}: {detail}\n  state: {state.describe()}")


def check_scheme(name: str, *, params: Mapping[str, Any] | None = None, states: int = 60, engines: int = 8,
                 draws: int = 4000, seed: int = 0, p_threshold: float = 1e-4,
                 clock: Callable[[], float] | None = None) -> str:
    """Hold a registered scheme to the rules; AssertionError on the first violation, else a short report.

    `name`: a registered name or a spec `NAME:key=value,...`; `params` are added to the spec's.
    `states` random situations of up to `engines` engines; `draws` choices per state for the
    chi-square comparison of a random scheme's pool with its law (`p_threshold` per state).
    `clock` (seconds, e.g. time.perf_counter; the core reads none itself): the report then gives the
    law's (and pool's) mean time per call — `sched_lab.testing.check_scheme` passes one. A law runs on
    the driver's own thread: one that takes long, or never returns, stalls the controller's loop.
    """
    bound = parse_scheme(name)
    if params:
        bound = bound.scheme.bind(**{**dict(bound.given), **params})
    rnd = Random(seed)
    situations = [_State(rnd, engines) for _ in range(states)]
    has_pool = bound.scheme.pool_factory is not None
    deterministic = True
    for st in situations:
        try:
            picks = {st.law_choice(bound, Random(s)) for s in range(5)}
        except SchemeFailure as exc:
            raise _violation("the law broke a rule", st, str(exc)) from None
        if len(picks) > 1:
            deterministic = False
        if has_pool:
            try:
                st.pool_choice(st.new_pool(bound), Random(0))
            except SchemeFailure as exc:
                raise _violation("the pool broke a rule", st, str(exc)) from None
    report = [f"check_scheme({bound.label!r}): {states} states of 1-{engines} engines",
              "law and pool choose only candidates" if has_pool else "the law chooses only candidates (no pool)"]
    if has_pool and deterministic:
        for st in situations:
            want, got = st.law_choice(bound, Random(1)), st.pool_choice(st.new_pool(bound), Random(1))
            if want != got:
                raise _violation("the pool differs from the (deterministic) law", st, f"law {want!r}, pool {got!r}")
        report.append("pool == law on every state (deterministic)")
    elif has_pool:
        worst, tested = 1.0, 0
        for i, st in enumerate(s for s in situations if len(s.candidates) > 1):
            if tested >= 8:
                break
            tested += 1
            law_rng, pool_rng = Random(seed * 7919 + 2 * i), Random(seed * 7919 + 2 * i + 1)
            pool = st.new_pool(bound)
            law_counts = Counter(st.law_choice(bound, law_rng) for _ in range(draws))
            pool_counts = Counter(st.pool_choice(pool, pool_rng) for _ in range(draws))
            stat, df, p = two_sample_chi2(law_counts, pool_counts)
            worst = min(worst, p)
            if p < p_threshold:
                raise _violation("the pool's choices are not distributed like the law's", st,
                                 f"chi-square {stat:.1f} on {df} df, p={p:.2e} < {p_threshold:g}; "
                                 f"law {dict(law_counts)}, pool {dict(pool_counts)}")
        report.append(f"pool ~ law by chi-square on {tested} states ({draws} draws each, min p={worst:.3g})")
    timings = []
    for who in (("law", "pool") if has_pool else ("law",)):
        runs = []
        for _ in range(2):
            rng = Random(seed)
            if who == "law":
                started = clock() if clock is not None else 0.0
                runs.append([st.law_choice(bound, rng) for st in situations])
                if clock is not None:
                    timings.append(f"law {1e6 * (clock() - started) / len(situations):.1f} µs per call")
            else:
                pools = [st.new_pool(bound) for st in situations]
                started = clock() if clock is not None else 0.0
                runs.append([st.pool_choice(pool, rng) for st, pool in zip(situations, pools)])
                if clock is not None:
                    timings.append(f"pool {1e6 * (clock() - started) / len(situations):.1f} µs per call")
        if runs[0] != runs[1]:
            k = next(i for i, (a, b) in enumerate(zip(*runs)) if a != b)
            raise _violation(f"the {who} is not deterministic under a seed", situations[k],
                             f"{runs[0][k]!r} then {runs[1][k]!r} with seed {seed}")
    report.append(f"same seed, same choices ({'law and pool' if has_pool else 'law'})")
    if timings:                             # the second run of each (the first warms caches), 1-`engines` engines
        report.append(f"time on 1-{engines} engines: " + ", ".join(timings[1::2]))
    steps = _drive_scheduler(bound, seed)
    report.append(f"{steps} scheduler events at hwm 0/1/2 without a rule broken")
    return "; ".join(report)


def _drive_scheduler(bound: BoundScheme, seed: int, steps: int = 300) -> int:
    """Run the scheme inside TaskSchedulers; AssertionError on an ineligible dispatch or a SchemeError."""
    from .model import Dispatch, EngineJoined, EngineLost, Fail, Outcome, TaskFinished, TaskSubmitted
    from .scheduler import TaskScheduler

    events = 0
    for hwm in (0, 1, 2):
        rnd = Random(seed * 31 + hwm)
        sched = TaskScheduler(bound.label, hwm, Random(seed))
        live: dict[Any, int] = {}                      # engine -> outstanding tasks
        running: dict[Any, tuple[Any, int]] = {}       # task -> (engine, attempt)
        targets_of: dict[Any, Any] = {}
        next_engine = next_task = 0
        now = 0.0

        def handle(event: Any) -> None:
            for action in sched.handle(event):
                if isinstance(action, Fail) and action.error_name == "SchemeError":
                    raise AssertionError(f"in a scheduler at hwm={hwm}: task {action.task_id!r} failed: {action.message}")
                if isinstance(action, Dispatch):
                    e, allowed = action.engine_id, targets_of.get(action.task_id)
                    if e not in live or (hwm and live[e] >= hwm) or (allowed is not None and e not in allowed):
                        raise AssertionError(f"in a scheduler at hwm={hwm}: task {action.task_id!r} was dispatched "
                                             f"to {e!r} (live loads {live}, targets {allowed})")
                    live[e] += 1
                    running[action.task_id] = (e, action.attempt)

        for _ in range(steps):
            now += 1.0
            events += 1
            r = rnd.random()
            if r < 0.12 or not live:
                e = f"e{next_engine}"
                next_engine += 1
                live[e] = 0
                handle(EngineJoined(now, e, rnd.choice(SPEEDS), rnd.choice(LABELS)))
            elif r < 0.16 and len(live) > 1:
                e = rnd.choice(sorted(live))
                del live[e]
                for t in [t for t, (where, _) in running.items() if where == e]:
                    del running[t]
                handle(EngineLost(now, e))
            elif r < 0.6 or not running:
                t = f"t{next_task}"
                next_task += 1
                restrict = rnd.random() < 0.25
                allowed = frozenset(rnd.sample(sorted(live), rnd.randint(1, len(live)))) if restrict else None
                targets_of[t] = allowed
                handle(TaskSubmitted(now, TaskSpec(t, targets=allowed, label=rnd.choice((None, "gpu", "x")),
                                                   size_hint=rnd.choice((None, 1.0)))))
            else:
                t = rnd.choice(sorted(running))
                e, attempt = running.pop(t)
                live[e] -= 1
                handle(TaskFinished(now, t, e, attempt, Outcome.OK))
    return events


def check_all(names: Sequence[str], **kw: Any) -> list[str]:
    """`check_scheme` for several schemes; the reports in order."""
    return [check_scheme(n, **kw) for n in names]


__all__ = ["check_scheme", "check_all", "chi2_sf", "two_sample_chi2"]
