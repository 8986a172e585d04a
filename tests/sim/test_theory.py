"""sched_lab.theory closed forms against the published anchor tables (reference/queueing-anchors.md §1)."""

import math

import pytest

from sched_lab.theory import (
    allen_cunneen_response, erlang_c, mm1_response, mmc, pk_response, rr_response, supermarket_response,
    supermarket_tails,
)


@pytest.mark.parametrize("lam,t", [(0.5, 2.0), (0.9, 10.0), (0.99, 100.0)])
def test_mm1(lam, t):
    assert mm1_response(lam) == pytest.approx(t)


@pytest.mark.parametrize("c,rho,p,wq,t", [
    (2, 0.5, 0.3333, 0.3333, 1.3333), (4, 0.8, 0.5964, 0.7455, 1.7455), (10, 0.9, 0.6687, 0.6687, 1.6687),
    (100, 0.9, 0.2169, 0.0217, 1.0217), (1000, 0.99, 0.6591, 0.0659, 1.0659), (1, 0.7, 0.7, 2.3333, 3.3333),
])
def test_erlang_c_table(c, rho, p, wq, t):
    r = mmc(c, rho)
    assert (r.p_wait, r.mean_wait, r.mean_response) == pytest.approx((p, wq, t), abs=6e-5)


def test_mm2_closed_form():
    assert mmc(2, 0.5).mean_response == pytest.approx(1 / (1 - 0.25))
    assert erlang_c(1, 0.3) == pytest.approx(0.3)


@pytest.mark.parametrize("n,lam,t", [(2, 0.5, 1.6180), (10, 0.9, 5.6603), (100, 0.9, 5.2268),
                                     (math.inf, 0.9, 5.1787), (100, 0.99, 50.6661)])
def test_round_robin_table(n, lam, t):
    assert rr_response(lam, n) == pytest.approx(t, abs=1e-4)


@pytest.mark.parametrize("lam,t2,t3", [(0.5, 1.2657, 1.1252), (0.9, 2.6141, 2.0279), (0.99, 5.4320, 3.8578)])
def test_supermarket_table(lam, t2, t3):
    assert supermarket_response(lam, 2) == pytest.approx(t2, abs=1e-4)
    assert supermarket_response(lam, 3) == pytest.approx(t3, abs=1e-4)
    assert supermarket_response(lam, 1) == pytest.approx(mm1_response(lam))


def test_supermarket_tails():
    assert supermarket_tails(0.9, 2, 5) == pytest.approx([0.9, 0.729, 0.478, 0.206, 0.0382], abs=1e-3)


@pytest.mark.parametrize("scv,lam,t", [(1.0, 0.9, 10.0), (0.0, 0.5, 1.5), (0.25, 0.8, 3.5), (10.0, 0.95, 105.5)])
def test_pollaczek_khinchine(scv, lam, t):
    assert pk_response(lam, scv) == pytest.approx(t)


def test_allen_cunneen_reduces_to_erlang_c_for_exponential():
    assert allen_cunneen_response(100, 0.95, 1.0) == pytest.approx(mmc(100, 0.95).mean_response)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5])
def test_unstable_load_is_rejected(bad):
    with pytest.raises(ValueError, match="load"):
        mm1_response(bad)
    with pytest.raises(ValueError):
        mmc(4, bad)
