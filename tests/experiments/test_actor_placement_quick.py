"""experiments/actor_placement.py --quick runs in a subprocess and writes sane results: every scheme at the
one load, actor calls slower than stateless tasks (they queue behind them with one call out at a time),
the load-aware schemes never stack two actors on one engine at t=0, the failure table, and a figure."""

from __future__ import annotations

import pandas as pd

from test_experiments_quick import pngs, run_quick


def test_actor_placement(tmp_path):
    out = tmp_path / "ap"
    proc = run_quick("actor_placement", out, tmp_path)
    assert "actor calls and stateless tasks" in proc.stdout
    points = pd.read_csv(out / "points.csv")
    assert set(points["scheme"]) == {"leastload", "lru", "jiq", "powerofd", "twobin", "plainrandom"}
    assert (points["calls"] > 100).all() and (points["tasks"] > 1000).all()
    assert (points["call_mean"] > points["task_mean"]).all()
    aware = points[points["scheme"].isin(["leastload", "jiq"])]
    assert (aware["max_actors_per_engine"] == 1).all()
    failures = pd.read_csv(out / "failures.csv")
    assert set(failures["failure"]) == {"worker crashes"} and len(failures) == 6
    assert failures["calls_failed_share"].between(0, 1).all() and (failures["restarts"] >= 0).all()
    pngs(out)
