"""`sched-lab bench --quick` as a user runs it: exit 0, a table naming both peers with every metric row,
sane figures in `--json`, and no cluster process left behind (the benchmark itself is never timed here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)


def _bench(tmp_path, *args):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "sched_lab", "bench", "--quick", "--db", "memory", *args],
                          env=env, capture_output=True, text=True, timeout=100)


def test_bench_quick_table_and_json(tmp_path):
    out = _bench(tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "sched-lab" in lines[0] and "ProcessPoolExecutor" in lines[0] and "ratio" in lines[0]
    for row in ("round trip, median", "round trip, p99", "async burst", "CPU per no-op task", "chunksize 1 ",
                "chunksize 1,000", "1 ms tasks", "lognormal"):
        assert any(row in line for line in lines), row

    out = _bench(tmp_path, "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ours = data["results"]["sched-lab"]["median"]
    assert 0 < ours["rt_median_ms"] <= ours["rt_p99_ms"] < 1000
    assert ours["burst_per_s"] > 50 and ours["map_c1000_per_s"] > ours["map_c1_per_s"] > 10
    assert 0 < ours["sleep_efficiency"] <= 1.2 and ours["lognormal_ratio"] >= 0.9
    assert ours["cpu_us_per_task"] > 0
    assert "ProcessPoolExecutor" in data["results"]
    assert not (tmp_path / "profile_bench-live-1" / "pid" / "cluster.json").exists()   # the cluster was stopped


def test_bench_usage_error(tmp_path):
    out = _bench(tmp_path, "--peers", "nosuchpeer")
    assert out.returncode == 2
    assert "unknown peers" in out.stderr


def test_bench_pinned_to_one_cpu_runs_every_peer_there(tmp_path):
    out = _bench(tmp_path, "--json", "--peers", "ppe", "--cpus", "0")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["meta"]["pinned_cpus"] == [0]
    assert set(data["results"]) == {"sched-lab", "ProcessPoolExecutor"}
    assert data["results"]["sched-lab"]["median"]["burst_per_s"] > 50
    assert json.loads(_bench(tmp_path, "--json", "--peers", "ppe").stdout)["meta"]["pinned_cpus"] is None


@pytest.mark.parametrize("cpus, said", [("x", "a list of CPU numbers"), ("4096", "CPUs this process may use"),
                                        ("", "a list of CPU numbers")])
def test_bench_refuses_cpus_it_cannot_pin_to(tmp_path, cpus, said):
    out = _bench(tmp_path, "--cpus", cpus)
    assert out.returncode == 2 and said in out.stderr and not out.stdout
