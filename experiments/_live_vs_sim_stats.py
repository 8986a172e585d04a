"""live_vs_sim's statistics: is a KS distance between one live run and S simulated realisations small enough,
when response times are autocorrelated? (see experiments/live_vs_sim.py's docstring)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _ks_between_seeds(pooled: Any) -> float:
    """95th percentile over seeds of the KS distance between one simulated realisation and the
    others pooled: how far one run of the same model strays by chance. One live run is one
    realisation too (the random schemes' placements differ from seed to seed), so a live KS below
    this is as close as the simulation gets to itself."""
    from sched_lab.records import ks_distance

    by_seed = {k: g["response_s"].to_numpy() for k, g in pooled.groupby("sim_seed")}
    return float(np.percentile([ks_distance(v, np.concatenate([w for j, w in by_seed.items() if j != k]))
                                for k, v in by_seed.items()], 95))


def effective_n(x: np.ndarray, batches: int = 20, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)) -> float:
    """Effective sample size of a series (in time order) for its empirical CDF: n / τ, τ >= 1 the largest
    integrated autocorrelation time of the indicators 1{x <= q} at `quantiles`, by batch means."""
    x = np.asarray(x, float)
    n = len(x)
    b = n // batches
    if b < 2:
        return float(n)
    taus = [1.0]
    for q in np.quantile(x, quantiles):
        ind = (x[: b * batches] <= q).astype(float)
        var = ind.mean() * (1 - ind.mean())
        if var > 0:
            taus.append(b * float(ind.reshape(batches, b).mean(axis=1).var(ddof=1)) / var)
    return n / max(taus)


def ks_tests(live_r: np.ndarray, sim_rs: list[np.ndarray]) -> dict[str, float]:
    """The KS distance of the live run to the pooled realisations, judged three ways (module doc):
    the iid critical value's own false-rejection rate on the simulated realisations (`null_reject_iid`),
    the Monte Carlo rank p-value (`ks_mc_p`, NaN when every realisation is the same) and the critical
    value at effective sample sizes (`ks_crit_eff`, with its own null check `null_reject_eff`).
    `live_r` and each of `sim_rs`: response times in submission order."""
    from sched_lab.records import ks_distance

    k = len(sim_rs)
    t_live = ks_distance(live_r, np.concatenate(sim_rs))
    n_eff = [effective_n(r) for r in sim_rs]
    t_sim, t_null, crit_null = [], [], []
    for i, r in enumerate(sim_rs):
        others = [o for j, o in enumerate(sim_rs) if j != i]
        t_sim.append(ks_distance(r, np.concatenate([live_r, *others])))
        t_null.append(ks_distance(r, np.concatenate(others)))        # the null is true: same model
        n_o = sum(n_eff) - n_eff[i]
        crit_null.append(1.358 * math.sqrt(1 / n_eff[i] + 1 / n_o))
    n = len(live_r)
    degenerate = all(len(r) == len(sim_rs[0]) and np.array_equal(r, sim_rs[0]) for r in sim_rs[1:])
    n_eff_live = effective_n(live_r)
    crit_eff = 1.358 * math.sqrt(1 / n_eff_live + 1 / sum(n_eff))
    p = (1 + sum(t >= t_live for t in t_sim)) / (k + 1)
    return {"ks_mc_p": math.nan if degenerate else p, "n_eff_live": n_eff_live, "ks_crit_eff": crit_eff,
            "null_reject_iid": float(np.mean([t > 1.358 * math.sqrt(2 / n) for t in t_null])),
            "null_reject_eff": float(np.mean([t > c for t, c in zip(t_null, crit_null)])),
            "agrees_5pct": bool(t_live <= crit_eff if degenerate else p > 0.05)}


def _in_order(r: Any) -> np.ndarray:
    """Response times of a `responses()` frame in submission order."""
    return r.sort_values(["submitted_at", "task"])["response_s"].to_numpy()


def _lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of the overheads in time order (bursts: > 0; independent: ~0)."""
    return float(np.corrcoef(x[:-1], x[1:])[0, 1]) if len(x) > 2 and x.std() > 0 else math.nan
