"""Workload builders: seeded streams, Poisson rate at a per-engine load, batch, CSV traces (and their
errors), DAG shapes, requirement mixes, heterogeneous speed lists."""

import numpy as np
import pytest

from sched_lab.sim import SimConfig, build_workload, parse_dist, streams
from sched_lab.sim.workloads import (
    DagSpec, RequireMix, Workload, dag_edges, engine_modules, parse_speeds, requirement_extras, trace_workload,
)


def test_streams_are_independent_and_reproducible():
    a, b = streams(7), streams(7)
    assert a["arrivals"].random() == b["arrivals"].random()
    assert streams(7)["arrivals"].random() != streams(7)["lengths"].random()
    assert streams(7)["arrivals"].random() != streams(8)["arrivals"].random()


def test_poisson_rate_gives_the_requested_load_on_heterogeneous_speeds():
    cfg = SimConfig(speeds=parse_speeds("1x6,4x1"), tasks=100_000, load=0.8)
    wl = build_workload(cfg, streams(1))
    rate = len(wl) / wl.submit_at[-1]
    assert rate == pytest.approx(0.8 * 10.0, rel=0.02)       # capacity = 6*1 + 1*4
    assert wl.work.mean() == pytest.approx(1.0, rel=0.02)


def test_workload_is_identical_for_every_scheme_and_hwm():
    w1 = build_workload(SimConfig(scheme="leastload", hwm=1, seed=3, tasks=500), streams(3))
    w2 = build_workload(SimConfig(scheme="plainrandom", hwm=0, seed=3, tasks=500), streams(3))
    assert np.array_equal(w1.submit_at, w2.submit_at) and np.array_equal(w1.work, w2.work)


def test_batch_submits_everything_at_zero():
    wl = build_workload(SimConfig(batch=True, tasks=100, length=parse_dist("const")), streams(0))
    assert (wl.submit_at == 0).all() and (wl.work == 1).all()


def test_speeds_parsing():
    assert parse_speeds("1x2,4x1") == (1.0, 1.0, 4.0)
    assert parse_speeds("2.5") == (2.5,)
    for bad in ("1x", "ax3", "0x5", "", "1x0"):
        with pytest.raises(ValueError):
            parse_speeds(bad)


def test_trace_replay(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("submit_time,duration,after,follow,targets,requires\n0,1,,,,\n0.5,2,0,,1,\n1,1,0;1,1,,numpy\n")
    wl = trace_workload(str(p), n_engines=2)
    assert wl.submit_at.tolist() == [0, 0.5, 1] and wl.work.tolist() == [1, 2, 1]
    assert wl.extras[1].after == (0,) and wl.extras[1].targets == (1,)
    assert wl.extras[2].after == (0, 1) and wl.extras[2].follow == (1,) and wl.extras[2].requires == {"numpy"}


@pytest.mark.parametrize("text,match", [
    ("time,duration\n0,1\n", "needs a header with columns submit_time,duration"),
    ("submit_time,duration\n0,x\n", "row 0: submit_time and duration must be numbers"),
    ("submit_time,duration\n1,1\n0,1\n", "nondecreasing"),
    ("submit_time,duration,after\n0,1,1\n1,1,\n", "dependencies must be earlier tasks"),
    ("submit_time,duration,after\n0,1,a\n", "row 0: column 'after'"),
    ("submit_time,duration,targets\n0,1,9\n", "targets .* outside engines"),
    ("submit_time,duration\n", "no rows"),
])
def test_bad_traces_are_explained(tmp_path, text, match):
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        trace_workload(str(p), n_engines=2)


def test_missing_trace_file():
    with pytest.raises(ValueError, match="cannot read trace file"):
        trace_workload("/nonexistent/trace.csv", 1)


def test_dag_shapes():
    rng = np.random.default_rng(0)
    chains = dag_edges(DagSpec.parse("chains:length=3"), 7, rng)
    assert {k: v.after for k, v in chains.items()} == {1: (0,), 2: (1,), 4: (3,), 5: (4,)}
    fj = dag_edges(DagSpec.parse("forkjoin:width=2"), 8, rng)
    assert {k: v.after for k, v in fj.items()} == {1: (0,), 2: (0,), 3: (1, 2), 5: (4,), 6: (4,), 7: (5, 6)}
    rnd = dag_edges(DagSpec.parse("random:parents=3,window=5,p=1,follow=1"), 200, rng)
    assert all(0 < i - d <= 5 for i, ex in rnd.items() for d in ex.after)
    assert all(ex.follow and ex.follow[0] in ex.after for ex in rnd.values())
    for bad in ("tree", "chains:width=2", "chains:length=0", "random:p=2", "chains:length=x"):
        with pytest.raises(ValueError):
            DagSpec.parse(bad)


def test_requirement_mix():
    mix = RequireMix.parse("cuda:0.25:0.5")
    mods = engine_modules((mix,), 10, np.random.default_rng(1))
    assert sum("cuda" in m for m in mods) == 5
    ex = requirement_extras((mix,), 10_000, np.random.default_rng(1))
    assert len(ex) / 10_000 == pytest.approx(0.25, abs=0.02)
    for bad in ("cuda", "cuda:2:0.5", "cuda:x:0.5"):
        with pytest.raises(ValueError, match="MODULE:TASK_FRACTION:ENGINE_FRACTION"):
            RequireMix.parse(bad)


def test_workload_validation():
    with pytest.raises(ValueError, match="nondecreasing"):
        Workload(np.array([1.0, 0.0]), np.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="durations must be >= 0"):
        Workload(np.array([0.0]), np.array([-1.0]))
    with pytest.raises(ValueError, match="at least one task"):
        Workload(np.array([]), np.array([]))
