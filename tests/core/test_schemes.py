"""Schemes: every fast pool makes the same decision law as its reference function (DESIGN §3).

- leastload and lru: identical choices, step by step, over long random sequences of joins, losses,
  assignments (some with exclusions, some large enough to take the pool's fallback path) and finishes,
  with hwm 0, 1 and 3;
- plainrandom, twobin, weighted and powerofd: the reference function and the fast pool each match the
  exact choice distribution (computed in closed form here) by a chi-square test at fixed seeds;
  helper tests show the chi-square rejects a wrong law (it has power);
- the reference laws themselves on hand-made loads lists, and the registry.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from scipy import stats

from sched_lab.core import SCHEMES, get_scheme
from sched_lab.core.schemes import leastload_ref, lru_ref, powerofd_ref, weighted_ref
from sched_lab.core.weighted_pool import WeightedPool

P_THRESHOLD = 1e-4
ALL = ("leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd")


# --------------------------------------------------------------------------------- the registry

def test_registry_holds_every_scheme() -> None:
    assert set(ALL) <= set(SCHEMES)
    for name in ALL:
        assert get_scheme(name).name == name
    with pytest.raises(ValueError):
        get_scheme("nope")


# ------------------------------------------------------------------------------ reference laws

def test_leastload_ref_first_minimum() -> None:
    assert leastload_ref([2, 0, 1, 0], random.Random(0)) == 1
    assert leastload_ref([3], random.Random(0)) == 0


def test_lru_ref_always_first() -> None:
    assert lru_ref([5, 0, 0], random.Random(0)) == 0


def test_weighted_ref_prefers_lower_load_first_draw_on_tie() -> None:
    # with one engine at load 0 its weight (1e6) dominates: almost always chosen
    rng = random.Random(1)
    picks = Counter(weighted_ref([3, 0, 3], rng) for _ in range(2000))
    assert picks[1] >= 1995


def test_powerofd_ref_takes_lower_load() -> None:
    rng = random.Random(2)
    picks = Counter(powerofd_ref([0, 5], rng) for _ in range(4000))
    # index 1 wins only if both draws are 1: p = 1/4
    assert 850 < picks[1] < 1150


# ------------------------------------------------------------------- a model driving the pools

class PoolModel:
    """Engines with load and seq (smaller = less recently assigned), kept in sync with a fast pool
    exactly as the scheduler does: the pool holds the live engines below hwm (all live when hwm=0)."""

    def __init__(self, scheme: str, hwm: int) -> None:
        self.scheme = get_scheme(scheme)
        self.pool = self.scheme.pool()
        self.hwm = hwm
        self.load: dict[Any, int] = {}
        self.seq: dict[Any, int] = {}
        self._joins = 0
        self._assigns = 0

    def _sync(self, e: Any) -> None:
        if e in self.load and (self.hwm == 0 or self.load[e] < self.hwm):
            if e in self.pool:
                self.pool.update(e, self.load[e], self.seq[e])
            else:
                self.pool.add(e, self.load[e], self.seq[e])
        else:
            self.pool.discard(e)

    def join(self, e: Any) -> None:
        self._joins += 1
        self.load[e] = 0
        self.seq[e] = -self._joins          # newest joined first among never-assigned engines
        self._sync(e)

    def lose(self, e: Any) -> None:
        del self.load[e], self.seq[e]
        self._sync(e)

    def assign(self, e: Any) -> None:
        self._assigns += 1
        self.load[e] += 1
        self.seq[e] = self._assigns
        self._sync(e)

    def finish(self, e: Any) -> None:
        self.load[e] -= 1
        self._sync(e)

    def candidates(self, exclude: frozenset = frozenset()) -> list[Any]:
        """Available, non-excluded engines in LRU order."""
        avail = [e for e in self.load if (self.hwm == 0 or self.load[e] < self.hwm) and e not in exclude]
        return sorted(avail, key=self.seq.__getitem__)

    def reference_choice(self, rng: random.Random, exclude: frozenset = frozenset()) -> Any:
        cands = self.candidates(exclude)
        if not cands:
            return None
        return cands[self.scheme.reference([self.load[e] for e in cands], rng)]


def drive(scheme: str, hwm: int, seed: int, steps: int,
          on_choice: Callable[[PoolModel, Any, frozenset, random.Random], None]) -> int:
    """A long random sequence of joins, losses, choices (+assignment) and finishes; returns #choices."""
    rnd = random.Random(seed)
    m = PoolModel(scheme, hwm)
    next_id = 0
    choices = 0
    for _ in range(30):
        m.join(next_id)
        next_id += 1
    for _ in range(steps):
        r = rnd.random()
        live = list(m.load)
        if r < 0.04 or not live:
            m.join(next_id)
            next_id += 1
        elif r < 0.07 and len(live) > 1:
            m.lose(rnd.choice(live))
        elif r < 0.55:
            k = rnd.random()
            if k < 0.6:
                exclude: frozenset = frozenset()
            elif k < 0.85:
                exclude = frozenset(rnd.sample(live, rnd.randint(1, min(5, len(live)))))
            else:   # most engines excluded: exercises the pools' fallback to the explicit list
                exclude = frozenset(rnd.sample(live, max(0, len(live) - rnd.randint(1, 4))))
            choices += 1
            on_choice(m, exclude, rnd)
        else:
            busy = [e for e in live if m.load[e] > 0]
            if busy:
                m.finish(rnd.choice(busy))
    return choices


@pytest.mark.parametrize("hwm", [0, 1, 3])
@pytest.mark.parametrize("scheme", ["leastload", "lru"])
@pytest.mark.parametrize("seed", [1, 2])
def test_deterministic_fast_matches_reference_step_by_step(scheme: str, hwm: int, seed: int) -> None:
    mismatches: list[tuple] = []

    def check(m: PoolModel, exclude: frozenset, rnd: random.Random) -> None:
        want = m.reference_choice(random.Random(0), exclude)
        got = m.pool.choose(random.Random(0), exclude or None)
        if got != want and len(mismatches) < 5:
            mismatches.append((got, want, sorted(exclude)[:8], [(e, m.load[e], m.seq[e]) for e in m.candidates(exclude)][:8]))
        if got is not None:
            m.assign(got)

    n = drive(scheme, hwm, seed, 4000, check)
    assert n > 1500
    assert not mismatches, mismatches


@pytest.mark.parametrize("hwm", [0, 1, 3])
@pytest.mark.parametrize("scheme", ["plainrandom", "twobin", "weighted", "powerofd"])
def test_random_pools_only_choose_candidates(scheme: str, hwm: int) -> None:
    bad: list[tuple] = []

    def check(m: PoolModel, exclude: frozenset, rnd: random.Random) -> None:
        cands = m.candidates(exclude)
        got = m.pool.choose(rnd, exclude or None)
        if (got is None) != (not cands) or (got is not None and got not in cands):
            bad.append((got, cands[:8]))
        if got is not None:
            m.assign(got)

    drive(scheme, hwm, 7, 3000, check)
    assert not bad, bad[:5]


# -------------------------------------------------------------------------- exact choice laws

def exact_law(scheme: str, loads: Sequence[int]) -> list[float]:
    """P(choice = i) for candidates in LRU order with these loads (DESIGN §3, docs/core-api.md)."""
    n = len(loads)
    if scheme == "plainrandom":
        return [1 / n] * n
    if scheme == "twobin":           # min of two uniform indices
        return [((n - i) ** 2 - (n - i - 1) ** 2) / n ** 2 for i in range(n)]
    if scheme in ("weighted", "powerofd"):
        # choice = first draw a unless load[b] < load[a]: P(i) = p_i (P(load_b >= l_i) + P(load_a > l_i))
        if scheme == "weighted":
            w = [1 / (1e-6 + x) for x in loads]
            p = [x / sum(w) for x in w]
        else:
            p = [1 / n] * n
        return [p[i] * (sum(p[j] for j in range(n) if loads[j] >= loads[i]) +
                        sum(p[j] for j in range(n) if loads[j] > loads[i])) for i in range(n)]
    raise ValueError(scheme)


def first_draw_only_law(loads: Sequence[int]) -> list[float]:
    """A deliberately wrong weighted law: one draw ∝ weight, no comparison (for the power tests)."""
    w = [1 / (1e-6 + x) for x in loads]
    return [x / sum(w) for x in w]


def chi2_pvalue(counts: Sequence[int], probs: Sequence[float]) -> float:
    """Goodness of fit; bins with an expected count below 5 are merged into one."""
    total = sum(counts)
    assert abs(sum(probs) - 1) < 1e-9
    obs, exp, rest_o, rest_e = [], [], 0, 0.0
    for c, p in zip(counts, probs):
        if p * total >= 5:
            obs.append(c)
            exp.append(p * total)
        else:
            rest_o += c
            rest_e += p * total
    if rest_e > 0:
        if rest_e < 5 and exp:       # too small to stand alone: fold into the smallest bin
            k = exp.index(min(exp))
            obs[k] += rest_o
            exp[k] += rest_e
        else:
            obs.append(rest_o)
            exp.append(rest_e)
    if len(obs) < 2:
        return 1.0
    return float(stats.chisquare(obs, exp).pvalue)


# states: (loads, hwm, #excluded); engines get a random LRU order
STATES = [
    ([1, 2, 3, 1, 4, 2, 5, 1, 3, 2, 1, 4], 0, 0),
    ([0, 1, 0, 2, 3, 0, 1, 2], 0, 0),
    ([1, 2, 3, 1, 4, 2, 5, 1, 3, 2, 1, 4], 0, 3),          # rejection path
    ([1, 2, 3, 1, 4, 2, 5, 1, 3, 2, 1, 4, 2, 3, 1, 2], 0, 13),  # fallback path: few allowed
    ([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], 3, 0),                # hwm 3: engines at 3 are not in the pool
]


def build_state(scheme: str, loads: Sequence[int], hwm: int, n_excl: int, seed: int) -> tuple[PoolModel, frozenset]:
    rnd = random.Random(seed)
    m = PoolModel(scheme, hwm)
    engines = [f"e{i}" for i in range(len(loads) + (2 if hwm else 0))]
    for e in engines:
        m.join(e)
    order = engines[:]
    rnd.shuffle(order)
    for e in order:                 # assign in a random order: sets seq (LRU order) ...
        m.assign(e)
    full = engines[len(loads):]
    for e, want in zip(engines, loads):   # ... then set the wanted loads
        while m.load[e] > want:
            m.finish(e)
        while m.load[e] < want:
            m.load[e] += 1
            m._sync(e)
    for e in full:                  # engines at hwm (hwm>0): never candidates
        while m.load[e] < hwm:
            m.load[e] += 1
            m._sync(e)
    excl = frozenset(rnd.sample(engines[:len(loads)], n_excl))
    return m, excl


def sample(m: PoolModel, exclude: frozenset, draws: int, seed: int, fast: bool) -> tuple[list[int], list[int]]:
    """Counts per candidate (LRU order) over `draws` decisions, and the candidates' loads."""
    cands = m.candidates(exclude)
    index = {e: i for i, e in enumerate(cands)}
    rng = random.Random(seed)
    counts = [0] * len(cands)
    for _ in range(draws):
        e = m.pool.choose(rng, exclude or None) if fast else m.reference_choice(rng, exclude)
        counts[index[e]] += 1
    return counts, [m.load[e] for e in cands]


DRAWS = 40_000


@pytest.mark.parametrize("state", range(len(STATES)))
@pytest.mark.parametrize("scheme", ["plainrandom", "twobin", "weighted", "powerofd"])
@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_random_scheme_matches_exact_law(scheme: str, state: int, fast: bool) -> None:
    loads, hwm, n_excl = STATES[state]
    m, excl = build_state(scheme, loads, hwm, n_excl, seed=100 + state)
    counts, cand_loads = sample(m, excl, DRAWS, seed=11 + state, fast=fast)
    p = chi2_pvalue(counts, exact_law(scheme, cand_loads))
    assert p > P_THRESHOLD, f"{scheme} {'fast' if fast else 'reference'} state {state}: p={p:.2e}, counts={counts}"


@pytest.mark.parametrize("scheme", ["plainrandom", "twobin", "weighted", "powerofd"])
def test_fast_and_reference_samples_agree(scheme: str) -> None:
    """Two-sample (contingency) chi-square: the fast pool's draws against the reference function's."""
    loads, hwm, n_excl = STATES[0]
    m, excl = build_state(scheme, loads, hwm, n_excl, seed=5)
    fast, _ = sample(m, excl, DRAWS, seed=21, fast=True)
    ref, _ = sample(m, excl, DRAWS, seed=22, fast=False)
    keep = [i for i in range(len(fast)) if fast[i] + ref[i] >= 10]
    p = stats.chi2_contingency([[fast[i] for i in keep], [ref[i] for i in keep]]).pvalue
    assert p > P_THRESHOLD, (fast, ref)


# ------------------------------------------------------------------------- the test has power

def test_chi_square_rejects_uniform_law_for_twobin_draws() -> None:
    loads, hwm, n_excl = STATES[0]
    m, excl = build_state("twobin", loads, hwm, n_excl, seed=1)
    counts, cand_loads = sample(m, excl, DRAWS, seed=3, fast=True)
    assert chi2_pvalue(counts, exact_law("plainrandom", cand_loads)) < P_THRESHOLD


def test_chi_square_rejects_first_draw_only_law_for_weighted_draws() -> None:
    loads, hwm, n_excl = STATES[0]
    m, excl = build_state("weighted", loads, hwm, n_excl, seed=1)
    counts, cand_loads = sample(m, excl, DRAWS, seed=3, fast=True)
    assert chi2_pvalue(counts, first_draw_only_law(cand_loads)) < P_THRESHOLD


def test_chi_square_rejects_uniform_law_for_powerofd_draws() -> None:
    loads, hwm, n_excl = STATES[0]
    m, excl = build_state("powerofd", loads, hwm, n_excl, seed=1)
    counts, cand_loads = sample(m, excl, DRAWS, seed=3, fast=True)
    assert chi2_pvalue(counts, exact_law("plainrandom", cand_loads)) < P_THRESHOLD


def test_chi_square_rejects_twobin_law_with_reversed_lru_order() -> None:
    """A twobin that took the *more* recently used of the two would be caught."""
    loads, hwm, n_excl = STATES[0]
    m, excl = build_state("twobin", loads, hwm, n_excl, seed=1)
    counts, cand_loads = sample(m, excl, DRAWS, seed=3, fast=True)
    assert chi2_pvalue(counts, exact_law("twobin", cand_loads)[::-1]) < P_THRESHOLD


def test_exact_laws_sum_to_one() -> None:
    for scheme in ("plainrandom", "twobin", "weighted", "powerofd"):
        for loads, _, _ in STATES:
            assert sum(exact_law(scheme, loads)) == pytest.approx(1.0)


class _CountingRandom(random.Random):
    """A Random that fails past `limit` calls of random(): a choice must not reject draws without end."""

    def __init__(self, seed: int, limit: int):
        super().__init__(seed)
        self.calls, self.limit = 0, limit

    def random(self) -> float:
        self.calls += 1
        if self.calls > self.limit:
            raise AssertionError(f"over {self.limit} draws for one choice")
        return super().random()


def test_weighted_choice_with_the_idle_engines_excluded_takes_a_few_draws_not_millions():
    # An @require that only busy engines meet: the idle ones (each weighs 10^6 busy ones) are excluded, so a
    # rejection draw almost never lands on an allowed engine (it took ~10^7 draws per choice).
    pool = WeightedPool()
    for e in range(4):
        pool.add(e, 0, e)                       # idle, excluded
    for e in range(4, 8):
        pool.add(e, e - 3, e)                   # busy (loads 1-4), allowed: half the pool by count
    for seed in range(20):
        rng = _CountingRandom(seed, limit=100)
        assert pool.choose(rng, frozenset(range(4))) in range(4, 8)
