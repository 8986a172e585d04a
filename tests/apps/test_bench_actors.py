"""`benchmarks/bench_actors.py --quick` as a user runs it: exit 0, the table with every metric row and the
Ray column ("not run" here: Ray's start-up is too heavy for the test run), sane figures in --json, no
cluster left behind. Usage errors exit 2. (The benchmark's figures are never judged here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(150)
SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_actors.py"


def _bench(tmp_path, *args):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    return subprocess.run([sys.executable, str(SCRIPT), "--quick", "--runs", "1", *args], env=env,
                          capture_output=True, text=True, timeout=140)


def test_bench_actors_quick_table_and_json(tmp_path):
    out = _bench(tmp_path, "--peers", "sched-lab", "--json", str(tmp_path / "r.json"))
    assert out.returncode == 0, out.stderr
    for row in ("round trip, median", "round trip, p99", "one actor", "8 actors over 2 engines"):
        line = next(line for line in out.stdout.splitlines() if row in line)
        assert "| not run |" in line
    data = json.loads((tmp_path / "r.json").read_text())
    ours = data["medians"]["sched-lab"]
    assert 0 < ours["rt_median_ms"] <= ours["rt_p99_ms"] < 5000
    assert ours["one_actor_per_s"] > 10 and ours["eight_actors_per_s"] > 10
    assert data["ray"] == "not run"
    assert not list(tmp_path.glob("profile_*/pid/cluster.json"))          # every cluster was stopped


def test_bench_actors_usage_error(tmp_path):
    assert _bench(tmp_path, "--peers", "dask").returncode == 2
