"""The engine's pickup delay in experiments/live_vs_sim.py (issue 13 item 9): what `pickups` measures from
per-attempt records (only tasks already queued at their engine, by engine, stamped by the engine), and a
round trip — a "live" run made by the simulator with a known pickup delay, calibrated by `calibrate` and
re-simulated by `run_sim`: with the fitted pickup trace the mean response comes back within a stated
tolerance over several seeds; without it the simulation is optimistic, as the live cluster was."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
import live_vs_sim as lvs  # noqa: E402


def test_pickups_are_the_gaps_before_tasks_already_queued():
    rec = pd.DataFrame({
        "engine_id":     [0,    0,    0,    0,    1,    1],
        "dispatched_at": [0.0,  0.5,  3.0,  3.1,  0.0,  0.2],
        "started_at":    [0.0,  1.3,  3.0,  4.6,  0.0,  2.0],
        "completed_at":  [1.0,  2.0,  4.5,  5.0,  1.9,  2.5],
    })
    at, gap = lvs.pickups(rec)
    # engine 0: task 2 queued behind task 1 (0.3 after 1.0); task 3 found the engine idle (dispatched at
    # 3.0 > 2.0): not a pickup; task 4 queued (0.1 after 4.5). Engine 1: 0.1 after 1.9.
    order = np.argsort(at)
    assert at[order] == pytest.approx([1.0, 1.9, 4.5])
    assert gap[order] == pytest.approx([0.3, 0.1, 0.1])


def test_decompose_splits_the_response_into_its_parts():
    rec = pd.DataFrame({"task": [0, 1, 2, 2], "outcome": ["ok", "ok", "error", "ok"], "engine_load": [0, 1, 0, 2],
                        "submitted_at": [0.0, 0.0, 0.0, 0.0], "dispatched_at": [0.0, 0.0, 0.0, 0.004],
                        "started_at": [0.001, 0.011, 0.0, 0.010], "finished_at": [0.011, 0.031, 0.0, 0.020]})
    parts = lvs.decompose(rec)                          # task 2's first attempt failed: its retry counts
    assert parts["queued"] == pytest.approx(2 / 3)
    assert parts["wait_queued_ms"] == pytest.approx((11 + 6) / 2)
    assert parts["hop_idle_ms"] == pytest.approx(1.0)
    assert parts["started_to_finished_ms"] == pytest.approx((10 + 20 + 10) / 3)
    assert parts["response_ms"] == pytest.approx((11 + 31 + 20) / 3)


def _fake_live(seed: int, pickup_mean_s: float) -> pd.DataFrame:
    """A 'live' run made by the simulator: 1,500 lognormal tasks (mean 20 ms) at load 0.7 on 4 engines, hwm 0,
    0.2 ms hops, and an exponential pickup delay of known mean; the engine's completion = start + length."""
    from sched_lab.sim import Dist, SimConfig, run
    from sched_lab.sim.overheads import OverheadTrace
    from sched_lab.sim.workloads import poisson_workload, streams

    wl = poisson_workload(streams(seed), 1500, 0.7, 4.0, Dist("lognormal", (("sigma", 1.0),), 0.02))
    rng = np.random.default_rng(seed)
    horizon = float(wl.submit_at[-1]) + 5.0
    pick = OverheadTrace(np.sort(rng.uniform(0, horizon, 20000)), rng.exponential(pickup_mean_s, 20000))
    df = run(SimConfig(scheme="leastload", engines=4, hwm=0, warmup=0.0, seed=seed, client_latency=False,
                       latency=Dist("const", (), 0.0002), pickup_trace=pick, latency_model="iid"), wl).dataframe()
    df["task"] = df["task_id"]
    df["work"] = wl.work[df["task"].to_numpy()]
    df["completed_at"] = df["started_at"] + df["work"]
    return df.sort_values(["task", "attempt"]).reset_index(drop=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_known_pickup_delay_is_recovered_and_closes_the_gap(seed):
    live = _fake_live(seed, pickup_mean_s=0.002)
    cal = lvs.calibrate(live)
    assert cal["pickups"] > 300                                         # most tasks queue at load 0.7, hwm 0
    assert cal["pickup_mean_s"] == pytest.approx(0.002, rel=0.15)
    assert cal["latency_s"] == pytest.approx(0.0002, rel=0.01)
    args = argparse.Namespace(seed=0, hwm=0, engines=4, overhead_window_ms=200.0)
    live_mean = (live["finished_at"] - live["submitted_at"]).mean()

    def sim_mean(pickup: bool) -> float:
        means = []
        for k in range(3):
            d = lvs.run_sim("leastload", live, cal, args, k, "modulated", pickup=pickup)
            means.append((d["finished_at"] - d["submitted_at"]).mean())
        return float(np.mean(means))

    with_pickup, without = sim_mean(True), sim_mean(False)
    assert with_pickup / live_mean - 1 == pytest.approx(0.0, abs=0.04)
    assert without / live_mean - 1 < -0.05                                # the bias the live runs showed


def test_held_out_calibration_from_another_run_of_the_same_system():
    """Overheads fitted on one run, drawn whatever the time ("shuffled"), predict another run with other arrivals."""
    args = argparse.Namespace(seed=0, hwm=0, engines=4, overhead_window_ms=200.0)
    fit_on = lvs.calibrate(_fake_live(11, pickup_mean_s=0.002))
    for seed in (12, 13):
        live = _fake_live(seed, pickup_mean_s=0.002)
        live_mean = (live["finished_at"] - live["submitted_at"]).mean()
        means = [(d["finished_at"] - d["submitted_at"]).mean()
                 for d in (lvs.run_sim("leastload", live, fit_on, args, k, "shuffled") for k in range(3))]
        assert np.mean(means) / live_mean - 1 == pytest.approx(0.0, abs=0.04)
