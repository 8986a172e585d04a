"""The built-in load-balancing schemes, registered through the plugin API exactly as a user's scheme is.

Each built-in is a *law* over a `Choice` (written with the index-based reference functions of
pools.py) plus its fast pool from pools.py, held to the law by tests/core/test_schemes.py and
`sched_lab.testing.check_scheme`. The registry, `register_scheme` and the `Choice` type live in
scheme_api.py; this module re-exports them so `from sched_lab.core.schemes import SCHEMES` works.
"""

from __future__ import annotations

from typing import Any

from .pools import (
    WEIGHT_EPSILON, FastestPool, JIQPool, LeastLoadPool, LRUPool, PlainRandomPool, PowerOfDPool, TwoBinPool,
    fastest_ref, jiq_ref, leastload_ref, lru_ref, plainrandom_ref, powerofd_ref, twobin_ref,
    weighted_ref,
)
from .weighted_pool import WeightedPool
from .scheme_api import (
    SCHEMES, BoundScheme, Choice, EngineDirectory, EngineId, EnginePool, Scheme, _register_builtin, get_scheme,
    parse_scheme,
)


# ------------------------------------------------------------------- laws, and the registrations

def leastload(choice: Choice) -> EngineId:
    """The lowest load; ties to the least recently assigned (default)."""
    return choice.candidates[leastload_ref(choice.loads, choice.rng)]


def lru(choice: Choice) -> EngineId:
    """The least recently assigned, whatever the loads."""
    return choice.candidates[0]


def plainrandom(choice: Choice) -> EngineId:
    """Uniform over the candidates."""
    return choice.candidates[plainrandom_ref(choice.loads, choice.rng)]


def twobin(choice: Choice) -> EngineId:
    """Two uniform draws (with replacement); the less recently assigned of the two."""
    return choice.candidates[twobin_ref(choice.loads, choice.rng)]


def weighted(choice: Choice) -> EngineId:
    """Two draws weighted by 1/(1e-6 + load); the lower load of the two (first draw on a tie)."""
    return choice.candidates[weighted_ref(choice.loads, choice.rng)]


def powerofd(choice: Choice, d: int = 2) -> EngineId:
    """Power of d choices, JSQ(d): d uniform draws with replacement, the lowest load (earliest on a tie)."""
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ValueError(f"powerofd needs an integer d >= 1, got {d!r}")
    return choice.candidates[powerofd_ref(choice.loads, choice.rng, d)]


def jiq(choice: Choice) -> EngineId:
    """Join-idle-queue: an idle engine (uniformly) if there is one, otherwise uniform at random."""
    return choice.candidates[jiq_ref(choice.loads, choice.rng)]


def fastest(choice: Choice) -> EngineId:
    """Speed-aware least load: the lowest (load + 1) / speed, ties to the least recently assigned.

    (load + 1) / speed is the expected delay of the new task behind the engine's outstanding ones;
    plain load / speed would tie every idle engine at 0 and, at hwm=1, never prefer a fast one.
    """
    return choice.candidates[fastest_ref(choice.loads, choice.rng, choice.speeds)]


def _pool(cls: type) -> Any:
    return lambda engines, **params: cls(engines, **params)


_register_builtin("leastload", leastload, pool=_pool(LeastLoadPool), index_reference=leastload_ref)
_register_builtin("lru", lru, pool=_pool(LRUPool), index_reference=lru_ref)
_register_builtin("plainrandom", plainrandom, pool=_pool(PlainRandomPool), index_reference=plainrandom_ref)
_register_builtin("twobin", twobin, pool=_pool(TwoBinPool), index_reference=twobin_ref)
_register_builtin("weighted", weighted, pool=_pool(WeightedPool), index_reference=weighted_ref)
_register_builtin("powerofd", powerofd, pool=_pool(PowerOfDPool), params={"d": 2}, index_reference=powerofd_ref,
                  summary="power of d choices (JSQ(d), d=2 by default): d uniform draws, the lowest load")
_register_builtin("jiq", jiq, pool=_pool(JIQPool), index_reference=jiq_ref)
_register_builtin("fastest", fastest, pool=_pool(FastestPool), index_reference=fastest_ref)

ORIGINAL_SCHEMES = ("leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd")

__all__ = [
    "SCHEMES", "Scheme", "BoundScheme", "Choice", "EngineDirectory", "EnginePool", "get_scheme", "parse_scheme",
    "ORIGINAL_SCHEMES", "WEIGHT_EPSILON", "FastestPool", "JIQPool", "LeastLoadPool", "LRUPool", "PlainRandomPool",
    "PowerOfDPool", "TwoBinPool", "WeightedPool", "fastest_ref", "jiq_ref", "leastload_ref", "lru_ref",
    "plainrandom_ref", "powerofd_ref", "twobin_ref", "weighted_ref",
]
