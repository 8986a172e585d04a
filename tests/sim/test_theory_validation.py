"""The simulator against queueing theory (reference/queueing-anchors.md), over several seeds.

Each check averages the mean response over seeds (warm-up 10% cut) and compares it with a closed
form within a tolerance of ~3 standard errors: hwm=1 → Erlang-C M/M/c for every scheme;
plainrandom hwm=0 → M/M/1 and, with general lengths, Pollaczek–Khinchine; lru hwm=0 → round-robin
E_n/M/1; powerofd hwm=0 → the supermarket model T_2 at n=1000; and the ordering
leastload < weighted < twobin < plainrandom at load 0.9 (hwm=0).
"""

import numpy as np
import pytest

from sched_lab.core import SCHEMES
from sched_lab.sim import SimConfig, parse_dist, run
from sched_lab.theory import mm1_response, mmc_response, pk_response, rr_response, supermarket_response

SEEDS = (11, 12, 13, 14)


def mean_response(seeds=SEEDS, **kw) -> float:
    return float(np.mean([run(SimConfig(seed=s, warmup=0.1, **kw)).summary().mean_response for s in seeds]))


@pytest.mark.parametrize("scheme", sorted(SCHEMES))
def test_hwm1_is_mmc_for_every_scheme(scheme):
    got = mean_response(scheme=scheme, hwm=1, engines=10, tasks=20_000, load=0.8)
    assert got == pytest.approx(mmc_response(10, 0.8), rel=0.03)


def test_plainrandom_hwm0_is_mm1_per_engine():
    got = mean_response(scheme="plainrandom", hwm=0, engines=10, tasks=50_000, load=0.7)
    assert got == pytest.approx(mm1_response(0.7), rel=0.05)


def test_lru_hwm0_is_round_robin_en_m_1():
    got = mean_response(scheme="lru", hwm=0, engines=10, tasks=50_000, load=0.8)
    assert got == pytest.approx(rr_response(0.8, 10), rel=0.05)
    # and clearly not M/M/1: round robin removes most of the queueing of random dispatch
    assert got < 0.65 * mm1_response(0.8)


@pytest.mark.parametrize("workload,rel", [("const", 0.03), ("erlang4", 0.04), ("lognormal:sigma=1", 0.08)])
def test_plainrandom_general_lengths_match_pollaczek_khinchine(workload, rel):
    dist = parse_dist(workload)
    got = mean_response(scheme="plainrandom", hwm=0, engines=10, tasks=50_000, load=0.7, length=dist)
    assert got == pytest.approx(pk_response(0.7, dist.scv), rel=rel)


def test_scheme_ordering_at_load_09():
    seeds = (21, 22, 23)
    got = {s: mean_response(seeds, scheme=s, hwm=0, engines=10, tasks=30_000, load=0.9)
           for s in ("leastload", "weighted", "twobin", "plainrandom")}
    assert got["leastload"] < got["weighted"] < got["twobin"] < got["plainrandom"], got


def test_powerofd_matches_supermarket_model_at_large_n():
    got = mean_response((31, 32, 33), scheme="powerofd", hwm=0, engines=1000, tasks=200_000, load=0.9)
    assert got == pytest.approx(supermarket_response(0.9, 2), rel=0.03)
    assert got < 0.5 * rr_response(0.9, 1000)  # far better than state-blind round robin
