"""experiments/actor_live_vs_sim.py --quick runs a real 4-engine cluster with actors, stops it, and writes a
sane comparison with the simulator: both kinds of task for the scheme, every live task answered, means and
KS in range, and the CDF figure."""

from __future__ import annotations

import pandas as pd

from test_experiments_quick import pngs, run_quick


def test_actor_live_vs_sim(tmp_path):
    out = tmp_path / "alvs"
    proc = run_quick("actor_live_vs_sim", out, tmp_path, timeout=240)
    assert "live vs simulated response by kind" in proc.stdout
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["kind"]) == ["actor-call", "task"] and set(summary["scheme"]) == {"leastload"}
    assert (summary["n"] > 20).all()
    assert (summary["live_mean_ms"] > 5).all() and (summary["sim_mean_ms"] > 5).all()   # >= the 20 ms mean length
    assert summary["ks"].between(0, 1).all() and (summary["ks_crit_5pct"] > 0).all()
    responses = pd.read_csv(out / "responses.csv")
    assert set(responses["source"]) == {"live", "sim"}
    assert (responses["response_s"] > 0).all()
    assert [p.name for p in pngs(out)] == ["actor_live_vs_sim_cdf.png"]
    assert not list((tmp_path / "sched-lab").glob("profile_exp-alvs-*"))     # the cluster stopped, its profile removed
