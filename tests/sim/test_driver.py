"""The SimPy driver carrying out the real core's actions: failures with retries lose no task, DAG
dependencies (after/follow) are respected, engines lacking a module never run a task that needs it,
timeouts, task errors, network latency, scheduler overhead, engine speeds, determinism."""

import numpy as np
import pytest

from sched_lab.sim import SimConfig, Workload, parse_dist, run
from sched_lab.sim.workloads import DagSpec, RequireMix, TaskExtras


def frame(result):
    df = result.dataframe()
    df["outcome"] = df["outcome"].astype(str)
    return df


def finals(df):
    return df.drop_duplicates("task_id", keep="last").set_index("task_id").sort_index()


def test_every_task_ends_exactly_once_and_same_seed_same_records():
    cfg = SimConfig(scheme="weighted", hwm=0, engines=7, tasks=3000, load=0.85, seed=4)
    a, b = frame(run(cfg)), frame(run(cfg))
    assert a.equals(b)
    assert (a["outcome"] == "ok").sum() == 3000 and a["task_id"].nunique() == 3000
    assert (a["started_at"] >= a["dispatched_at"]).all() and (a["finished_at"] >= a["started_at"]).all()


def test_failures_with_retries_lose_no_task():
    res = run(SimConfig(scheme="leastload", hwm=2, engines=8, tasks=4000, load=0.6, seed=2, mtbf=40.0,
                        mttr=3.0, retries=50))
    df = frame(res)
    assert (df["outcome"] == "engine_lost").sum() > 20            # failures really happened
    fin = finals(df)
    assert len(fin) == 4000 and (fin["outcome"] == "ok").all() and res.n_ok == 4000
    assert df.groupby("task_id")["attempt"].max().max() >= 1
    assert (df.groupby("task_id")["attempt"].max() <= 50).all()


def test_failures_without_retries_fail_with_engine_error():
    df = frame(run(SimConfig(engines=4, tasks=2000, load=0.7, seed=3, mtbf=20.0, mttr=1.0, hwm=0)))
    fin = finals(df)
    lost = fin[fin["outcome"] == "engine_lost"]
    assert len(lost) > 0 and (lost["error_name"] == "EngineError").all()
    assert (fin["outcome"].isin(["ok", "engine_lost"])).all() and len(fin) == 2000


@pytest.mark.parametrize("dag", ["chains:length=6", "forkjoin:width=5", "random:parents=3,window=30,p=0.7",
                                 "chains:length=4,follow=1", "random:parents=2,window=10,p=0.5,follow=0.5"])
@pytest.mark.parametrize("hwm", [0, 1])
def test_dag_dependencies_are_respected(dag, hwm):
    res = run(SimConfig(scheme="plainrandom", hwm=hwm, engines=6, tasks=1500, load=0.5, seed=5,
                        dag=DagSpec.parse(dag)))
    fin = finals(frame(res))
    assert len(fin) == 1500
    ok = fin[fin["outcome"] == "ok"]
    n_edges = n_follow = 0
    for tid, ex in res.workload.extras.items():
        if tid not in ok.index:
            continue
        for dep in ex.after:
            n_edges += 1
            assert ok.at[tid, "started_at"] >= fin.at[dep, "finished_at"]
        for dep in ex.follow:
            n_follow += 1
            assert ok.at[tid, "engine_id"] == fin.at[dep, "engine_id"]
    assert n_edges > 100
    if "follow" in dag:
        assert n_follow > 50


def test_engines_lacking_a_module_never_run_tasks_requiring_it():
    res = run(SimConfig(scheme="lru", hwm=1, engines=10, tasks=3000, load=0.5, seed=6,
                        mixes=(RequireMix("cuda", 0.3, 0.3),)))
    df = frame(res)
    needs = [t for t, ex in res.workload.extras.items() if "cuda" in ex.requires]
    assert len(needs) > 500
    ran = df[df["task_id"].isin(needs) & (df["outcome"] == "ok")]
    assert len(ran) == len(needs)
    assert ran["engine_id"].nunique() == 3                          # 30% of 10 engines have cuda
    unmet = df[df["outcome"] == "unmet"]
    assert len(unmet) > 0 and unmet["task_id"].isin(needs).all()    # refusals came from the engines


def test_a_module_no_engine_has_fails_impossible():
    wl = Workload(np.arange(3.0), np.ones(3), {1: TaskExtras(requires=frozenset({"nowhere"}))})
    df = frame(run(SimConfig(engines=2), wl))
    fin = finals(df)
    assert fin.at[1, "outcome"] == "impossible" and fin.at[0, "outcome"] == "ok"


def test_platform_requirement():
    wl = Workload(np.zeros(2), np.ones(2), {0: TaskExtras(requires=frozenset({"platform=linux"})),
                                            1: TaskExtras(requires=frozenset({"platform=win"}))})
    fin = finals(frame(run(SimConfig(engines=2), wl)))
    assert fin.at[0, "outcome"] == "ok" and fin.at[1, "outcome"] == "impossible"


def test_timeouts_fail_waiting_tasks():
    wl = Workload(np.zeros(5), np.full(5, 10.0))
    fin = finals(frame(run(SimConfig(engines=1, hwm=1, timeout_s=15.0), wl)))
    assert fin["outcome"].tolist() == ["ok", "ok", "timeout", "timeout", "timeout"]
    assert fin.loc[2:, "finished_at"].tolist() == [15.0, 15.0, 15.0]


def test_task_errors_are_retried_elsewhere():
    res = run(SimConfig(engines=5, tasks=2000, load=0.5, seed=7, task_error_rate=0.2, retries=10))
    df = frame(res)
    assert (df["outcome"] == "error").sum() == pytest.approx(0.2 * 2500, rel=0.2)
    assert (finals(df)["outcome"] == "ok").all()
    errs = df[df["outcome"] == "error"].set_index(["task_id", "attempt"])["engine_id"]
    nxt = df.set_index(["task_id", "attempt"])["engine_id"]
    moved = [nxt.get((t, a + 1)) != e for (t, a), e in errs.items() if (t, a + 1) in nxt.index]
    assert np.mean(moved) > 0.95                                    # retried on another engine


def test_latency_and_overhead_delay_tasks():
    wl = Workload(np.arange(0.0, 50.0, 5.0), np.ones(10))
    base = finals(frame(run(SimConfig(engines=2), wl)))
    lat = finals(frame(run(SimConfig(engines=2, latency=parse_dist("const:mean=0.1")), wl)))
    ovh = finals(frame(run(SimConfig(engines=2, overhead=parse_dist("const:mean=0.01")), wl)))
    resp = lambda f: (f["finished_at"] - f["submitted_at"]).to_numpy()  # noqa: E731
    assert resp(base) == pytest.approx(np.ones(10))
    # submission reaches the scheduler 0.1 late (recorded then), the dispatch 0.1, the report 0.1
    assert resp(lat) == pytest.approx(np.full(10, 1.2))
    assert lat["submitted_at"].to_numpy() == pytest.approx(np.arange(0.0, 50.0, 5.0) + 0.1)
    assert resp(ovh) == pytest.approx(np.full(10, 1.01))            # the finish report waits 0.01


def test_engine_speed_divides_duration():
    wl = Workload(np.zeros(2), np.full(2, 4.0))
    fin = finals(frame(run(SimConfig(speeds=(1.0, 4.0), hwm=1, scheme="leastload"), wl)))
    durations = dict(zip(fin["engine_id"], fin["finished_at"] - fin["started_at"]))
    assert durations == {0: pytest.approx(4.0), 1: pytest.approx(1.0)}


def test_heterogeneous_speeds_change_which_idle_engine_matters():
    spd = (1.0,) * 8 + (4.0,) * 2
    fast = np.mean([run(SimConfig(scheme="leastload", speeds=spd, tasks=5000, load=0.5, seed=s)).summary().mean_response
                    for s in (1, 2)])
    assert fast < 1.0            # many tasks land on the 4x engines: mean response below one work unit


def test_batch_makespan_and_utilisation():
    res = run(SimConfig(engines=10, tasks=1000, batch=True, length=parse_dist("const"), hwm=1))
    s = res.summary()
    assert s.makespan == pytest.approx(100.0) and s.utilization == pytest.approx(1.0)
    assert s.imbalance == pytest.approx(1.0)


def test_random_latency_keeps_each_connection_in_order():
    # exp latency reorders nothing on one connection: a DAG's submissions reach the scheduler in
    # order (else dependents would fail InvalidDependency), and all engine reports stay causal.
    res = run(SimConfig(engines=6, tasks=2000, load=0.6, seed=8, dag=DagSpec.parse("forkjoin:width=4"),
                        latency=parse_dist("exp:mean=0.05"), overhead=parse_dist("exp:mean=0.001")))
    fin = finals(frame(res))
    assert (fin["outcome"] == "ok").all() and len(fin) == 2000
    assert np.all(np.diff(frame(res).sort_values("task_id").drop_duplicates("task_id")["submitted_at"]) >= 0)


def test_failures_with_latency_lose_no_task():
    # dispatches in flight to an engine that dies are lost with its connection; retries cover them
    res = run(SimConfig(engines=6, hwm=0, tasks=3000, load=0.6, seed=9, mtbf=30.0, mttr=2.0, retries=100,
                        latency=parse_dist("exp:mean=0.2")))
    df = frame(res)
    fin = finals(df)
    assert (df["outcome"] == "engine_lost").sum() > 20
    assert len(fin) == 3000 and (fin["outcome"] == "ok").all()
    assert (df[df["outcome"] == "ok"].groupby("task_id").size() == 1).all()     # each task succeeds once
