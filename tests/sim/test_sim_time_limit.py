"""The simulator models issue 10's engines: a task longer than its time limit is stopped at the limit
(Outcome.TIME_LIMIT, retried like an error) and every stopped task costs its engine a worker restart;
abort of a running task is modelled the same way (tested through the core in tests/core)."""

import numpy as np
import pytest

from sched_lab.sim import SimConfig, Workload, run


def frame(result):
    df = result.dataframe()
    df["outcome"] = df["outcome"].astype(str)
    return df


def test_tasks_over_the_time_limit_are_stopped_at_it_and_retried():
    wl = Workload(np.zeros(4), np.array([0.5, 3.0, 0.5, 3.0]))
    df = frame(run(SimConfig(engines=1, hwm=1, time_limit_s=1.0, retries=1), wl))
    per_task = df.groupby("task_id")["outcome"].apply(list).to_dict()
    assert per_task == {0: ["ok"], 1: ["time_limit", "time_limit"], 2: ["ok"], 3: ["time_limit", "time_limit"]}
    cut = df[df["outcome"] == "time_limit"]
    assert (cut["finished_at"] - cut["started_at"]).to_numpy() == pytest.approx(np.ones(4))
    assert (cut["error_name"].astype(str) == "TimeLimitExceeded").all()


def test_worker_restart_delay_follows_every_stopped_task():
    n, limit, restart = 5, 1.0, 0.25
    wl = Workload(np.zeros(n), np.full(n, 2.0))
    df = frame(run(SimConfig(engines=1, hwm=1, time_limit_s=limit, worker_restart_s=restart), wl))
    starts = np.sort(df["started_at"].to_numpy())
    assert np.diff(starts) == pytest.approx(np.full(n - 1, limit + restart))
    no_restart = frame(run(SimConfig(engines=1, hwm=1, time_limit_s=limit), wl))
    assert df["finished_at"].max() - no_restart["finished_at"].max() == pytest.approx((n - 1) * restart)


def test_no_time_limit_means_no_cut_and_bad_values_are_refused():
    wl = Workload(np.zeros(3), np.full(3, 5.0))
    assert (frame(run(SimConfig(engines=1, worker_restart_s=3.0), wl))["outcome"] == "ok").all()
    with pytest.raises(ValueError):
        SimConfig(time_limit_s=0)
    with pytest.raises(ValueError):
        SimConfig(worker_restart_s=-1)
