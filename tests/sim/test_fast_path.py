"""The simulator's fast path (sim/fastpath.py) against the general driver: the same records, receipts, n_ok and
end time, hashed, for every built-in scheme, hwm 0/1/2/3, Poisson/batch/overload workloads, several length
distributions (const: many tied completion times), heterogeneous speeds, task errors, over several seeds;
which runs take it, and that forcing it on a run that needs the general driver is refused."""

import hashlib

import numpy as np
import pytest

from sched_lab.sim import SimConfig, Workload, parse_dist, run
from sched_lab.sim.fastpath import is_plain
from sched_lab.sim.workloads import DagSpec, TaskExtras, streams
from sched_lab.sim.runner import build_workload

SCHEMES = ["leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd:d=3", "jiq", "fastest"]
WORKLOADS = {
    "poisson": dict(load=0.9),
    "batch-const": dict(batch=True, length=parse_dist("const")),
    "overload-h2": dict(load=1.3, length=parse_dist("h2")),
    "speeds-errors": dict(load=0.7, task_error_rate=0.1, speeds=(1.0, 2.0, 0.5, 1.0, 3.0)),
    "lognormal": dict(load=0.95, length=parse_dist("lognormal:sigma=1.5")),
}


def digest(res) -> str:
    """A hash of everything a run hands back: every record column and category, receipts, n_ok, end time."""
    h = hashlib.sha256()
    cols = res.records.columns()
    for name in sorted(cols):
        h.update(name.encode())
        h.update(np.ascontiguousarray(cols[name]).tobytes())
    for name in ("outcome", "error_name", "scheme", "label"):
        h.update(repr(res.records.categories(name)).encode())
    h.update(np.asarray(res.received_at).tobytes())
    h.update(repr((res.n_ok, res.sim_time, len(res.records))).encode())
    return h.hexdigest()


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("hwm", [0, 1, 2, 3])
@pytest.mark.parametrize("workload", sorted(WORKLOADS))
def test_fast_and_general_paths_give_the_same_records(scheme, hwm, workload):
    for seed in (1, 2, 3):
        cfg = SimConfig(scheme=scheme, hwm=hwm, engines=7, tasks=800, seed=seed, **WORKLOADS[workload])
        fast, general = run(cfg, fast=True), run(cfg, fast=False)
        assert digest(fast) == digest(general), (scheme, hwm, workload, seed)
        assert len(fast.records) == 800


def test_same_records_at_scale_with_queueing():
    """Many engines, a long run, tasks waiting in the scheduler (hwm 1, load > 1) and at engines (hwm 0)."""
    for hwm, load in ((1, 1.05), (0, 0.97), (2, 1.1)):
        cfg = SimConfig(scheme="weighted", hwm=hwm, engines=300, tasks=20_000, load=load, seed=9)
        fast, general = run(cfg, fast=True), run(cfg, fast=False)
        assert digest(fast) == digest(general)
        df = fast.dataframe()
        if hwm == 1:
            assert (df["queue_len"] > 0).any()            # tasks really waited in the scheduler
        assert (df["started_at"] >= df["dispatched_at"]).all() and (df["finished_at"] >= df["started_at"]).all()


def test_a_given_workload_takes_the_same_path_choice():
    wl = Workload(np.array([0.0, 0.0, 0.5, 0.5, 0.5, 2.0]), np.array([1.0, 1.0, 0.5, 0.0, 0.0, 1.0]))
    cfg = SimConfig(scheme="leastload", hwm=1, engines=2, seed=4)
    assert digest(run(cfg, wl, fast=True)) == digest(run(cfg, wl, fast=False))


def test_which_runs_are_plain():
    plain = SimConfig(engines=4, tasks=100, seed=1)
    gens = streams(1)
    assert is_plain(plain, build_workload(plain, gens))
    for changed in (dict(mtbf=10.0), dict(retries=1), dict(timeout_s=1.0), dict(time_limit_s=2.0),
                    dict(latency=parse_dist("exp:mean=0.01")), dict(overhead=parse_dist("const:mean=0.001")),
                    dict(size_hints="exact"), dict(dag=DagSpec.parse("chains:length=3")), dict(worker_mtbf=5.0)):
        cfg = SimConfig(engines=4, tasks=100, seed=1, **changed)
        assert not is_plain(cfg, build_workload(cfg, streams(1))), changed
    wl = Workload(np.zeros(3), np.ones(3), {1: TaskExtras(targets=(0,))})
    assert not is_plain(plain, wl)


def test_forcing_the_fast_path_on_a_run_that_needs_the_general_one_is_refused():
    with pytest.raises(ValueError, match="general simulator"):
        run(SimConfig(engines=4, tasks=100, seed=1, retries=2), fast=True)


def test_auto_takes_the_fast_path_and_agrees():
    cfg = SimConfig(scheme="leastload", hwm=0, engines=50, tasks=5000, load=0.9, seed=3)
    assert digest(run(cfg)) == digest(run(cfg, fast=False))


@pytest.mark.parametrize("speed", [1.0, 2.5, 0.3])
def test_one_speed_for_every_engine_gives_the_general_records(speed):
    """Engines of one speed: the fast path scales the work once, in numpy, instead of per task; the records
    are still the general driver's (the same IEEE products)."""
    for scheme, hwm in (("leastload", 0), ("weighted", 1), ("plainrandom", 2)):
        cfg = SimConfig(scheme=scheme, hwm=hwm, speeds=(speed,) * 6, tasks=1500, load=0.95, seed=5,
                        length=parse_dist("lognormal:sigma=1.5"))
        assert digest(run(cfg, fast=True)) == digest(run(cfg, fast=False)), (speed, scheme, hwm)
