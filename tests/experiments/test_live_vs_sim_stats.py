"""The statistics experiments/live_vs_sim.py judges KS distances with (issue 13 item 9): the effective sample
size of an autocorrelated series, and the three verdicts of `ks_tests` on series with a known truth —
realisations of one AR(1) model (the null holds: the iid critical value rejects far more than 5%, the
Monte Carlo test and the effective-sample criterion at about 5% or less) and a shifted "live" series (the null
is false: both sound tests reject). Over many seeds, with stated tolerances."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import live_vs_sim as lvs  # noqa: E402


def _ar1(rng: np.random.Generator, n: int, rho: float, shift: float = 0.0) -> np.ndarray:
    e = rng.standard_normal(n) * np.sqrt(1 - rho * rho)
    x = np.empty(n)
    x[0] = rng.standard_normal()
    for i in range(1, n):
        x[i] = rho * x[i - 1] + e[i]
    return np.exp(0.5 * x) + shift            # positive and skewed, like response times


def test_effective_n_of_independent_and_autocorrelated_series():
    rng = np.random.default_rng(1)
    iid = [lvs.effective_n(_ar1(rng, 2000, 0.0)) for _ in range(20)]
    assert np.median(iid) > 1000                                   # about n (the largest of 4 noisy taus)
    sticky = [lvs.effective_n(_ar1(rng, 2000, 0.9)) for _ in range(20)]
    assert 40 < np.median(sticky) < 250                            # theory for the mean: n(1-ρ)/(1+ρ) ≈ 105


def test_ks_verdicts_when_the_null_holds_and_when_it_does_not():
    rng = np.random.default_rng(2)
    n, k, rho = 1000, 19, 0.9
    same, shifted, iid_false_alarms = [], [], []
    for _ in range(20):
        sims = [_ar1(rng, n, rho) for _ in range(k)]
        out = lvs.ks_tests(_ar1(rng, n, rho), sims)
        same.append(out)
        iid_false_alarms.append(out["null_reject_iid"])
        shifted.append(lvs.ks_tests(_ar1(rng, n, rho, shift=0.6), sims))
    assert np.mean(iid_false_alarms) > 0.3                         # the iid critical value: far above 5%
    assert np.mean([o["null_reject_eff"] for o in same]) <= 0.05
    assert np.mean([o["ks_mc_p"] <= 0.05 for o in same]) <= 0.2   # ~5% (1/(k+1) per run), 20 runs
    assert np.mean([o["agrees_5pct"] for o in same]) >= 0.8
    assert all(o["ks_mc_p"] == pytest.approx(1 / (k + 1)) for o in shifted)      # live the farthest of all
    assert not any(o["agrees_5pct"] for o in shifted)


def test_a_model_without_spread_falls_back_to_the_effective_sample_criterion():
    rng = np.random.default_rng(3)
    from sched_lab.records import ks_distance

    one = _ar1(rng, 800, 0.5)
    live = _ar1(rng, 800, 0.5)
    out = lvs.ks_tests(live, [one] * 10)                           # every realisation the same (replay model)
    assert np.isnan(out["ks_mc_p"])
    assert out["agrees_5pct"] == (ks_distance(live, one) <= out["ks_crit_eff"]) and out["agrees_5pct"]
    far = lvs.ks_tests(one + 5.0, [one] * 10)
    assert np.isnan(far["ks_mc_p"]) and not far["agrees_5pct"]
