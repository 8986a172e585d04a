"""End-to-end invariants of simulated runs over random configurations (hypothesis): every task has
exactly one final outcome, no task succeeds twice, attempts <= 1 + retries, no engine ever holds more
than hwm outstanding tasks, no dependency id is ever unknown to the scheduler, and same seed → same records."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sched_lab.core import SCHEMES
from sched_lab.sim import SimConfig, parse_dist, run
from sched_lab.sim.workloads import DagSpec, RequireMix

FINAL = {"ok", "timeout", "impossible", "invalid", "aborted"}

configs = st.builds(
    SimConfig,
    scheme=st.sampled_from(sorted(SCHEMES)), hwm=st.sampled_from([0, 1, 2]), engines=st.integers(1, 5),
    tasks=st.integers(1, 200), load=st.sampled_from([0.3, 0.8, 1.2]), seed=st.integers(0, 10_000),
    dag=st.sampled_from([None, DagSpec.parse("chains:length=4,follow=0.5"),
                         DagSpec.parse("random:parents=2,window=8,p=0.6,follow=0.3"), DagSpec.parse("forkjoin:width=3")]),
    mixes=st.sampled_from([(), (RequireMix("m", 0.3, 0.5),)]), mtbf=st.sampled_from([None, 20.0]),
    mttr=st.just(2.0), retries=st.sampled_from([0, 3]), timeout_s=st.sampled_from([None, 5.0]),
    task_error_rate=st.sampled_from([0.0, 0.1]),
    latency=st.sampled_from([None, parse_dist("exp:mean=0.05")]),
    overhead=st.sampled_from([None, parse_dist("const:mean=0.002")]),
)


def max_concurrency(g) -> int:
    events = sorted([(t, 1) for t in g["dispatched_at"]] + [(t, -1) for t in g["finished_at"]], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, d in events:
        now += d
        peak = max(peak, now)
    return peak


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs)
def test_run_invariants(cfg):
    df = run(cfg).dataframe()
    df["outcome"] = df["outcome"].astype(str)
    assert df["task_id"].nunique() == cfg.tasks
    finals = df[df["outcome"].isin(FINAL)].groupby("task_id").size()
    assert (finals <= 1).all()
    last = df.drop_duplicates("task_id", keep="last")
    ended_by_failure = last["outcome"].isin(["error", "engine_lost"]) & (last["attempt"] == cfg.retries)
    assert (last["outcome"].isin(FINAL) | ended_by_failure).all()
    assert (df[df["outcome"] == "ok"].groupby("task_id").size() <= 1).all()
    assert (df.groupby("task_id")["attempt"].max() <= cfg.retries).all()
    assert not (df["outcome"] == "invalid").any()
    if cfg.hwm:
        ran = df[df["dispatched_at"].notna()]
        assert all(max_concurrency(g) <= cfg.hwm for _, g in ran.groupby("engine_id"))
    assert df.equals(_again(cfg))


def _again(cfg):
    df = run(cfg).dataframe()
    df["outcome"] = df["outcome"].astype(str)
    return df
