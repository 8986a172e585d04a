"""`sched-lab compare --cluster PROFILE` and `run_sweep(..., cluster=...)`: a tiny sweep sent point by point
to a real 2-engine cluster gives the same rows as the local sweep (all but the wall time), every point
ran as a task on the cluster's engines, and a missing cluster is a clear exit 1, not a hang."""

from __future__ import annotations

import pandas as pd
import pytest

from real_cluster import Cluster
from sched_lab.apps.cli import main
from sched_lab.sim import SimConfig
from sched_lab.apps.sweep import ClusterUnavailable, run_sweep, sweep_configs
from sched_lab.sim.distributions import Dist

pytestmark = pytest.mark.timeout(120)

SWEEP = ["--schemes", "leastload,plainrandom", "--loads", "0.5,0.8", "--hwm", "0", "--seeds", "2",
         "--engines", "4", "--tasks", "500", "--plot", ""]


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("SCHED_LAB_DIR", str(tmp_path / "lab"))
    c = Cluster(n=2, profile="sweeps", db="memory")
    try:
        c.start(timeout=30)
        yield c
    finally:
        c.stop()


def test_cli_sweep_on_cluster_matches_local(cluster, tmp_path, capsys):
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert main(["compare", *SWEEP, "--jobs", "1", "--out", str(local)]) == 0
    assert main(["compare", *SWEEP, "--cluster", "sweeps", "--out", str(remote)]) == 0
    a = pd.read_csv(local).drop(columns="wall_s")
    b = pd.read_csv(remote).drop(columns="wall_s")
    assert len(a) == 2 * 2 * 2 and not a.isna().any().any()
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert "leastload" in capsys.readouterr().out
    # the points really ran on the cluster: one task each, spread over both engines
    recs = [r for r in cluster.client.records() if r.label == "sched-lab compare"]
    assert len(recs) == 8 and all(str(r.outcome) == "ok" for r in recs)
    assert {r.engine_id for r in recs} == set(cluster.client.ids)


def test_api_sweep_on_cluster_by_profile_file_and_client(cluster):
    base = SimConfig(engines=3, tasks=300, load=0.7)
    configs = sweep_configs(base, ["lru", "weighted"], [0.7], [1], [Dist("exp"), Dist("lognormal")], [5])
    local = run_sweep(configs, jobs=1).drop(columns="wall_s")
    conn = cluster.dir / "security" / "controller-client.json"
    done: list[int] = []
    for target in ("sweeps", str(conn), cluster.client):
        remote = run_sweep(configs, cluster=target, on_done=done.append).drop(columns="wall_s")
        pd.testing.assert_frame_equal(local, remote, check_exact=True)
    assert done == [1, 2, 3, 4] * 3
    assert cluster.client.ids          # a client passed in is left open


def test_missing_cluster_is_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SCHED_LAB_DIR", str(tmp_path / "empty"))
    assert main(["compare", *SWEEP, "--cluster", "nosuch", "--out", str(tmp_path / "c.csv")]) == 1
    assert "no running cluster for profile 'nosuch'" in capsys.readouterr().err
    with pytest.raises(ClusterUnavailable, match="no connection file"):
        run_sweep(sweep_configs(SimConfig(tasks=10), ["lru"], [0.5], [1], [Dist("exp")], [0]),
                  cluster=str(tmp_path / "gone.json"))
