"""Actors in the simulator (sim/actors.py): workloads with actors (generated and from a trace), checked
against queueing theory (queueing-anchors.md §1.1): one actor alone on its engine is an M/M/1 queue;
an actor sharing a plainrandom hwm=0 engine with stateless tasks is one FIFO M/M/1 at the summed rate;
restarts under worker crashes and engine failures lose no call; bad options and traces are refused."""

from __future__ import annotations

import numpy as np
import pytest

from sched_lab.sim import SimConfig, run
from sched_lab.sim.actors import (
    ACTOR_CALL_LABEL, TASK_LABEL, actor_engines, actor_restarts, response_by_kind, task_kinds,
)
from sched_lab.sim.workloads import trace_workload


def mean_over_seeds(kind: str, seeds: range, **kw: object) -> float:
    return float(np.mean([response_by_kind(run(SimConfig(seed=s, **kw)))[kind]["mean"] for s in seeds]))


@pytest.mark.parametrize("lam", [0.5, 0.7])
def test_one_actor_alone_on_its_engine_is_an_mm1_queue(lam):
    # hwm=1: the actor pins its engine's slot, so stateless tasks (a trickle) all go to the other engine
    got = mean_over_seeds(ACTOR_CALL_LABEL, range(4), engines=2, hwm=1, tasks=3000, load=0.05, actors=1,
                          actor_call_rate=lam)
    assert got == pytest.approx(1 / (1 - lam), rel=0.06)


def test_an_actor_sharing_a_random_engine_adds_its_rate_to_that_engines_queue():
    # plainrandom, hwm=0: every engine is an M/M/1 at the stateless load 0.4; the actor's engine also
    # gets the calls (0.3), and with calls dispatched on arrival (max_concurrency large) it is one FIFO
    # M/M/1 at 0.7: calls see 1/(1-0.7); stateless tasks see 3/4 * 1/(1-0.4) + 1/4 * 1/(1-0.7).
    kw = dict(engines=4, hwm=0, scheme="plainrandom", tasks=30000, load=0.4, actors=1, actor_call_rate=0.3,
              actor_max_concurrency=10**6)
    results = [response_by_kind(run(SimConfig(seed=s, **kw))) for s in range(3)]
    calls = np.mean([r[ACTOR_CALL_LABEL]["mean"] for r in results])
    tasks = np.mean([r[TASK_LABEL]["mean"] for r in results])
    assert calls == pytest.approx(1 / 0.3, rel=0.10)
    assert tasks == pytest.approx(0.75 / 0.6 + 0.25 / 0.3, rel=0.05)


def test_one_call_at_a_time_loses_its_place_behind_stateless_tasks():
    # max_concurrency=1: the next call reaches the engine only when the previous one finished, so it
    # queues behind the stateless tasks that arrived meanwhile: slower than the FIFO M/M/1 above
    kw = dict(engines=4, hwm=0, scheme="plainrandom", tasks=20000, load=0.4, actors=1, actor_call_rate=0.3)
    assert mean_over_seeds(ACTOR_CALL_LABEL, range(2), **kw) > 1.15 / 0.3


def test_leastload_places_actors_one_per_engine_and_their_slots_are_held():
    r = run(SimConfig(engines=4, hwm=1, tasks=500, load=0.1, actors=3, actor_call_rate=0.2, seed=3))
    assert sorted(actor_engines(r).values()) == [1, 1, 1]
    df = r.dataframe()
    kinds = task_kinds(r.workload)
    stateless = df[df["task_id"].isin(np.nonzero(kinds == TASK_LABEL)[0])]
    actor_engine_ids = set(actor_engines(r))
    assert set(stateless["engine_id"]) == set(range(4)) - actor_engine_ids   # hwm=1: the pinned slots are full


@pytest.mark.parametrize("failures", [dict(worker_mtbf=150.0), dict(mtbf=300.0, mttr=5.0)])
def test_restarts_lose_no_call_and_every_call_ends_once(failures):
    cfg = SimConfig(engines=4, hwm=2, tasks=3000, load=0.3, actors=3, actor_call_rate=0.3, seed=5,
                    worker_restart_s=0.5, actor_max_restarts=10**6, actor_max_task_retries=10**6, retries=10**6,
                    **failures)
    r = run(cfg)
    df = r.dataframe()
    kinds = task_kinds(r.workload)
    calls = np.nonzero(kinds == ACTOR_CALL_LABEL)[0]
    final = df.sort_values("attempt").groupby("task_id").tail(1).set_index("task_id")
    assert (final.loc[calls, "outcome"] == "ok").all()
    assert np.isfinite(r.received_at[calls]).all()
    lost = df[df["task_id"].isin(calls) & df["outcome"].isin(["worker_lost", "engine_lost"])]
    assert len(lost) > 0                                   # the failures did hit calls in flight
    assert actor_restarts(r) > 0
    # one record per attempt: a call's attempts are 0..k with every attempt but the last lost
    per_call = df[df["task_id"].isin(calls)].groupby("task_id")["attempt"].agg(["count", "max"])
    assert (per_call["count"] == per_call["max"] + 1).all()


def test_without_restarts_calls_fail_actor_died_after_a_crash():
    r = run(SimConfig(engines=2, hwm=1, tasks=2000, load=0.1, actors=1, actor_call_rate=0.3, seed=2,
                      worker_mtbf=200.0))
    df = r.dataframe()
    assert (df["outcome"] == "actor_died").any()
    assert response_by_kind(r)[ACTOR_CALL_LABEL]["failed"] > 0


def test_a_trace_with_actors(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("submit_time,duration,creates_actor,actor\n0,0,a,\n0.5,1,,\n1,1,,a\n1.2,1,,a\n")
    wl = trace_workload(str(path), 2)
    assert list(task_kinds(wl)) == ["actor-create", "task", "actor-call", "actor-call"]
    r = run(SimConfig(engines=2, hwm=1, trace=str(path), warmup=0.0))
    df = r.dataframe()
    assert set(df.loc[df["task_id"].isin([2, 3]), "engine_id"]) == {int(df.loc[df["task_id"] == 0, "engine_id"].iloc[0])}
    assert r.received_at[3] == pytest.approx(3.0)          # FIFO behind call 2 (1 -> 2, then 2 -> 3)
    bad = tmp_path / "bad.csv"
    bad.write_text("submit_time,duration,creates_actor,actor\n0,1,,ghost\n")
    with pytest.raises(ValueError, match="ghost"):
        trace_workload(str(bad), 2)


@pytest.mark.parametrize("bad", [dict(actors=-1), dict(actor_call_rate=-0.5), dict(actor_max_concurrency=0),
                                 dict(worker_mtbf=0.0), dict(actor_max_restarts=1.5)])
def test_bad_actor_options_are_refused(bad):
    with pytest.raises(ValueError):
        SimConfig(**bad)
