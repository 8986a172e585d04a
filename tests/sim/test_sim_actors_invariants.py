"""End-to-end invariants of simulated runs with actors over random configurations (hypothesis): every task
(creations and calls included) gets exactly one final answer, a call's attempts never exceed
1 + max_task_retries, re-creations never exceed max_restarts per actor, an actor's calls run one at a
time on one engine between its deaths (max_concurrency 1), and the same seed gives the same records."""

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sched_lab.core import SCHEMES
from sched_lab.sim import SimConfig, run
from sched_lab.sim.actors import ACTOR_CALL_LABEL, ACTOR_CREATE_LABEL, task_kinds

def _config(**kw):
    """A SimConfig, or None when its actors would pin every slot (refused by SimConfig)."""
    hwm, engines, actors = kw["hwm"], kw["engines"], kw["actors"]
    return None if hwm and actors >= engines * hwm else SimConfig(**kw)


configs = st.builds(
    _config,
    scheme=st.sampled_from(sorted(SCHEMES)), hwm=st.sampled_from([0, 1, 2]), engines=st.integers(1, 5),
    tasks=st.integers(1, 150), load=st.sampled_from([0.3, 0.8]), seed=st.integers(0, 10_000),
    actors=st.integers(1, 3), actor_call_rate=st.sampled_from([0.2, 1.0]),
    actor_max_restarts=st.sampled_from([0, 2, 100]), actor_max_task_retries=st.sampled_from([0, 1, 100]),
    worker_mtbf=st.sampled_from([None, 15.0]), worker_restart_s=st.sampled_from([0.0, 0.5]),
    mtbf=st.sampled_from([None, 25.0]), mttr=st.just(2.0), retries=st.sampled_from([0, 3]),
    timeout_s=st.sampled_from([None, 8.0]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_run_invariants_with_actors(data):
    cfg = data.draw(configs)
    assume(cfg is not None)
    result = run(cfg)
    df = result.dataframe()
    wl = result.workload
    assert np.isfinite(result.received_at).all()                 # every task answered (Deliver or Fail)
    kinds = task_kinds(wl)
    calls = df[df["label"] == ACTOR_CALL_LABEL]
    assert set(calls["task_id"]) <= set(np.nonzero(kinds == ACTOR_CALL_LABEL)[0])
    assert (calls["attempt"] <= cfg.actor_max_task_retries).all()
    creations = df[(df["label"] == ACTOR_CREATE_LABEL) & (df["outcome"] == "ok")]
    assert (creations.groupby("task_id").size() <= 1 + cfg.actor_max_restarts).all()
    # one call of an actor at a time: the attempts that ran (started) on its engine never overlap
    ran = calls[calls["started_at"].notna()]
    owner = {tid: ex.actor for tid, ex in wl.extras.items() if ex.actor}
    for _, g in ran.assign(owner=ran["task_id"].map(owner)).groupby("owner"):
        spans = sorted(zip(g["started_at"], g["finished_at"]))
        assert all(b[0] >= a[1] - 1e-9 for a, b in zip(spans, spans[1:])), spans
    again = run(cfg).dataframe()
    assert df.equals(again)


def test_actors_that_would_pin_every_slot_are_refused():
    import pytest

    with pytest.raises(ValueError, match="pin every slot"):
        SimConfig(engines=2, hwm=1, actors=2)
    SimConfig(engines=2, hwm=0, actors=5)                         # hwm 0: no slot limit
