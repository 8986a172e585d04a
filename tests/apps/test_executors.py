"""`--executor local|dask:ADDRESS|ray[:ADDRESS]`: a sweep on a real `distributed.LocalCluster` (two
worker processes) gives the rows of the local sweep (all but the wall time), from the API, the
`compare` CLI and an experiment script whose point function the workers cannot import (shipped by
value); Ray the same when it is installed; a missing extra is a clear error naming what to install."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from sched_lab.apps.cli import main
from sched_lab.apps.executors import ExecutorSpec, ExecutorUnavailable
from sched_lab.apps.sweep import map_points, run_sweep, sweep_configs
from sched_lab.sim import SimConfig
from sched_lab.sim.distributions import Dist

pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["--schemes", "leastload,plainrandom", "--loads", "0.5,0.8", "--hwm", "0", "--seeds", "2",
         "--engines", "4", "--tasks", "500", "--plot", ""]


def configs():
    base = SimConfig(engines=4, tasks=500, latency=Dist("exp", (), 0.01))
    return sweep_configs(base, ["leastload", "plainrandom", "powerofd"], [0.5, 0.8], [0, 1], [Dist("exp")], [3, 4])


@pytest.fixture(scope="module")
def dask_address():
    distributed = pytest.importorskip("distributed", reason="the test extra installs distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       worker_dashboard_address=None)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close(timeout=30)


@pytest.mark.parametrize("text, kind, address", [
    (None, "local", None), ("local", "local", None), ("dask:tcp://10.0.0.5:8786", "dask", "tcp://10.0.0.5:8786"),
    ("ray", "ray", None), ("ray:auto", "ray", "auto"), ("ray:ray://head:10001", "ray", "ray://head:10001"),
])
def test_specs_parse(text, kind, address):
    spec = ExecutorSpec.parse(text)
    assert (spec.kind, spec.address) == (kind, address)
    assert ExecutorSpec.parse(str(spec)) == spec


@pytest.mark.parametrize("text, message", [("spark:x", "unknown executor 'spark'"), ("dask", "needs the scheduler"),
                                           ("dask:", "needs the scheduler"), ("local:x", "takes no address")])
def test_bad_specs_are_usage_errors(text, message, tmp_path, capsys):
    with pytest.raises(ValueError, match=message):
        ExecutorSpec.parse(text)
    assert main(["compare", *SWEEP, "--executor", text, "--out", str(tmp_path / "c.csv")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c.csv").exists()


def test_cluster_and_executor_exclude_each_other(tmp_path, capsys):
    assert main(["compare", *SWEEP, "--cluster", "x", "--executor", "ray", "--out", str(tmp_path / "c.csv")]) == 2
    assert "not both" in capsys.readouterr().err


@pytest.mark.parametrize("kind, module, extra", [("dask:tcp://127.0.0.1:1", "distributed", "dask"),
                                                 ("ray", "ray", "ray")])
def test_missing_extra_names_what_to_install(kind, module, extra, tmp_path, capsys, monkeypatch):
    # The venv may have the extra installed; stand in for a machine without it.
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ExecutorUnavailable, match=rf"pip install 'sched-lab\[{extra}\]'"):
        run_sweep(configs()[:2], executor=kind)
    assert main(["compare", *SWEEP, "--executor", kind, "--out", str(tmp_path / "c.csv")]) == 1
    assert f"pip install 'sched-lab[{extra}]'" in capsys.readouterr().err


def test_unreachable_dask_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr("sched_lab.apps.executors.DASK_CONNECT_TIMEOUT_S", 2.0)
    with pytest.raises(ExecutorUnavailable, match="cannot reach the Dask scheduler at 'tcp://127.0.0.1:9'"):
        run_sweep(configs()[:2], executor="dask:tcp://127.0.0.1:9")


def test_dask_sweep_rows_identical_to_local(dask_address):
    cfgs = configs()
    local = run_sweep(cfgs, jobs=1)
    done: list[int] = []
    remote = run_sweep(cfgs, executor=f"dask:{dask_address}", on_done=done.append)
    assert done == list(range(1, len(cfgs) + 1))
    assert len(remote) == 24 and remote["wall_s"].gt(0).all()
    pd.testing.assert_frame_equal(remote.drop(columns="wall_s"), local.drop(columns="wall_s"))
    # the figures are real and differ across points (not one row copied)
    assert remote["mean_response"].nunique() > 12 and (remote["mean_response"] > remote["sched_mean_response"]).all()


def _worker_pid(_: object) -> int:
    return os.getpid()


def test_dask_points_run_in_the_worker_processes(dask_address):
    pids = set(map_points(_worker_pid, list(range(40)), executor=f"dask:{dask_address}"))
    assert os.getpid() not in pids and 1 <= len(pids) <= 2


def test_dask_point_error_is_raised_here(dask_address):
    bad = [SimConfig(engines=2, tasks=10, trace="/nonexistent/trace.csv")]
    with pytest.raises((FileNotFoundError, ValueError, OSError)):
        run_sweep(bad, executor=f"dask:{dask_address}")


def test_cli_compare_on_dask_matches_local(dask_address, tmp_path, capsys):
    local, remote = tmp_path / "local.csv", tmp_path / "remote.csv"
    assert main(["compare", *SWEEP, "--jobs", "1", "--out", str(local)]) == 0
    assert main(["compare", *SWEEP, "--executor", f"dask:{dask_address}", "--out", str(remote)]) == 0
    a, b = pd.read_csv(local), pd.read_csv(remote)
    pd.testing.assert_frame_equal(a.drop(columns="wall_s"), b.drop(columns="wall_s"))


def run_script(name: str, out: Path, tmp_path: Path, *extra: str) -> pd.DataFrame:
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path / "sched-lab"), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / f"{name}.py"), "--quick", "--jobs", "2",
                           "--out", str(out), *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return pd.read_csv(out / "points.csv")


def test_failures_retries_on_dask_matches_local(dask_address, tmp_path):
    # failures_retries maps its own point function (a script's, that the workers cannot import)
    local = run_script("failures_retries", tmp_path / "local", tmp_path)
    remote = run_script("failures_retries", tmp_path / "dask", tmp_path, "--executor", f"dask:{dask_address}")
    pd.testing.assert_frame_equal(local.drop(columns="wall_s"), remote.drop(columns="wall_s"))


def test_experiment_point_function_imported_as_a_module_ships_by_value(dask_address, monkeypatch):
    # imported (not __main__), from a directory the workers do not have on sys.path
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import dependencies

    points = dependencies.plan(True, 1)[:6]
    local = pd.DataFrame(map_points(dependencies.point, points, jobs=1))
    remote = pd.DataFrame(map_points(dependencies.point, points, executor=f"dask:{dask_address}"))
    pd.testing.assert_frame_equal(local, remote)


def test_ray_sweep_rows_identical_to_local():
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'sched-lab[ray]'), not in the test extra")
    cfgs = configs()[:8]
    local = run_sweep(cfgs, jobs=1)
    remote = run_sweep(cfgs, executor="ray")
    pd.testing.assert_frame_equal(remote.drop(columns="wall_s"), local.drop(columns="wall_s"))


def test_experiment_point_function_runs_on_a_sched_lab_cluster(monkeypatch, tmp_path):
    # failures_retries/dependencies take --cluster too: their point function, imported as a module
    # the engines cannot import, reaches the engines by value
    from real_cluster import Cluster

    monkeypatch.setenv("SCHED_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.syspath_prepend(str(ROOT / "experiments"))
    import dependencies

    points = dependencies.plan(True, 1)[:4]
    local = pd.DataFrame(map_points(dependencies.point, points, jobs=1))
    c = Cluster(n=2, profile="exp-points", db="memory")
    try:
        c.start(timeout=30)
        remote = pd.DataFrame(map_points(dependencies.point, points, cluster=c.client))
        assert len(c.client.records()) >= 4
    finally:
        c.stop()
    pd.testing.assert_frame_equal(local, remote)


def test_builtin_point_functions_go_by_reference(dask_address):
    import math

    assert map_points(math.sqrt, [4.0, 9.0], executor=f"dask:{dask_address}") == [2.0, 3.0]
