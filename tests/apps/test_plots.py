"""The figures added for the experiments: response CDFs, per-engine utilisation, the Gantt chart,
the live-vs-sim CDF overlay, sim-vs-theory error bars and the response-vs-load grid.

Each returns a matplotlib Figure (never shown) whose axes hold what the records say: bar heights
equal busy time over makespan, one Gantt bar per attempt that ran, CDFs that end at 1, a KS value
in the title equal to `ks_distance`. They work on simulated records and on live-shaped ones
(string task ids, TaskRecord objects) alike.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sched_lab.apps.plots import (
    engine_utilisation, gantt, live_vs_sim_cdf, response_cdf, response_vs_load_grid, sim_vs_theory,
)
from sched_lab.core.model import Outcome, TaskRecord
from sched_lab.records import ks_distance, response_times, summarize, to_dataframe
from sched_lab.sim import SimConfig, run


@pytest.fixture(scope="module")
def failing_run():
    return run(SimConfig(engines=4, tasks=400, load=0.7, mtbf=30, mttr=1, retries=2, hwm=1, seed=3, warmup=0.0))


def live_shaped(n: int = 30) -> list[TaskRecord]:
    """Records as the live controller stores them: string ids, epoch seconds."""
    t0 = 1.7e9
    out = []
    for i in range(n):
        sub = t0 + 0.01 * i
        start = sub + 0.001
        out.append(TaskRecord(f"task-{i:03d}", 0, i % 3, sub, sub, start, start + 0.02 + 0.001 * (i % 5),
                              Outcome.OK, None, 0, 0, "leastload", None))
    out.append(TaskRecord("task-bad", 0, 1, t0, t0, t0 + 0.001, t0 + 0.005, Outcome.ERROR, "ValueError", 0, 0,
                          "leastload", None))
    return out


def test_ks_distance_known_values():
    assert ks_distance([1, 2, 3], [1, 2, 3]) == 0
    assert ks_distance([1, 2], [5, 6]) == 1
    assert ks_distance([1, 2, 3], [2, 3, 4]) == pytest.approx(1 / 3)
    assert np.isnan(ks_distance([], [1.0]))


def test_response_times_match_summary(failing_run):
    resp = response_times(failing_run.records)
    s = summarize(failing_run.records, engines=4, warmup=0.0)
    assert len(resp) == s.ok and np.all(np.diff(resp) >= 0)
    assert resp.mean() == pytest.approx(s.mean_response)


def test_response_cdf_one_curve_per_run_ending_at_one(failing_run):
    fig = response_cdf({"sim": failing_run.dataframe(), "live": live_shaped()}, unit="s")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.lines) == 2 and [t.get_text() for t in ax.get_legend().get_texts()] == ["sim", "live"]
    assert all(line.get_ydata()[-1] == pytest.approx(1.0) for line in ax.lines)
    assert "(s)" in ax.get_xlabel() and ax.get_title()


def test_engine_utilisation_bars_are_busy_over_makespan(failing_run):
    df = failing_run.dataframe()
    fig = engine_utilisation(df, engines=range(4))
    ax = fig.axes[0]
    ok_bars = ax.containers[0]
    assert len(ok_bars) == 4
    ok = df[(df["outcome"].astype(str) == "ok")]
    span = df["finished_at"].max() - df["submitted_at"].min()
    expect = (ok["finished_at"] - ok["started_at"]).groupby(ok["engine_id"].astype(int)).sum() / span
    assert [b.get_height() for b in ok_bars] == pytest.approx(expect.reindex(range(4), fill_value=0).tolist())
    assert ax.get_ylabel() and ax.get_xlabel() == "engine"


def test_engine_utilisation_shows_wasted_work_when_attempts_fail():
    fig = engine_utilisation(live_shaped())
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("failed" in lab for lab in labels) and len(fig.axes[0].containers) == 2


def test_gantt_one_bar_per_attempt_that_ran(failing_run):
    df = failing_run.dataframe()
    fig = gantt(df, unit="task lengths")
    ax = fig.axes[0]
    bars = sum(len(c) for c in ax.containers)
    assert bars == int(df["started_at"].notna().sum())
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0", "1", "2", "3"]
    assert "task lengths" in ax.get_xlabel()


def test_gantt_on_live_records_scaled_to_ms():
    recs = live_shaped()
    fig = gantt(recs, unit="ms", scale=1000.0, t_window=(0, 100))
    ax = fig.axes[0]
    assert sum(len(c) for c in ax.containers) == len(recs)
    assert ax.get_xlim() == (0, 100)
    first = min(p.get_x() for c in ax.containers for p in c)
    assert first == pytest.approx(1.0, abs=1e-3)           # started 1 ms after the first submission


def test_live_vs_sim_cdf_panels_and_ks_in_title(failing_run):
    sim = failing_run.dataframe()
    live = to_dataframe(live_shaped())
    fig = live_vs_sim_cdf({"leastload": (live, sim), "other": (live, live)}, unit="ms")
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2 and all(len(ax.lines) == 2 for ax in visible)
    ks = ks_distance(response_times(live) * 1000, response_times(sim) * 1000)
    assert f"KS={ks:.3f}" in visible[0].get_title()
    assert "KS=0.000" in visible[1].get_title() and "+0.0%" in visible[1].get_title()
    with pytest.raises(ValueError):
        live_vs_sim_cdf({})


def test_sim_vs_theory_panels_and_errorbars():
    table = pd.DataFrame({"model": ["A", "A", "B", "B"], "label": ["x", "x", "y", "y"], "load": [0.5, 0.8, 0.5, 0.8],
                          "sim_mean": [2.0, 5.1, 1.3, 2.0], "sim_ci": [0.1, 0.3, 0.02, 0.05],
                          "theory": [2.0, 5.0, 1.27, 1.95]})
    fig = sim_vs_theory(table, curves={"A": [(0.5, 2.0), (0.65, 2.9), (0.8, 5.0)]})
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["A", "B"]
    assert len(visible[0].lines[-1].get_xdata()) == 3       # the dense theory curve, not the two table points
    assert len(visible[0].containers) == 1                  # one errorbar series
    with pytest.raises(ValueError):
        sim_vs_theory(table.drop(columns="sim_ci"))


def test_response_vs_load_grid_rows_by_hwm():
    rows = [{"scheme": s, "hwm": h, "load": l, "seed": seed, "mean_response": 1 + l + h + seed * 0.01,
             "p99_response": 5 + l} for s in ("a", "b") for h in (0, 1) for l in (0.5, 0.9) for seed in (1, 2)]
    fig = response_vs_load_grid(pd.DataFrame(rows))
    assert len(fig.axes) == 4
    assert all(len(ax.lines) == 2 for ax in fig.axes)
    assert fig.axes[0].get_title().startswith("hwm=0")
    with pytest.raises(ValueError):
        response_vs_load_grid(pd.DataFrame(rows).drop(columns="hwm"))
