"""`bench_redo.py` (its figures are never judged here): both clusters run every workload, the script prints and
saves both and their ratio, stops everything it started, and refuses bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_bench_floor import _started_under

from sched_lab.apps.bench.redo import METRICS, median_ratio

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_redo.py"


def test_the_script_runs_both_clusters_prints_and_saves_them_and_leaves_nothing_running(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--runs", "2", "--round-trips", "20", "--burst", "400",
                          "--sleep-tasks", "20", "--json", str(tmp_path / "redo.json")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for _, label, _ in METRICS:
        assert label in out.stdout
    data = json.loads((tmp_path / "redo.json").read_text())
    assert len(data["runs"]) == 2
    for run in data["runs"]:
        assert set(run) == {"redo log", "after commit"}
        for r in run.values():
            assert r["rt_us"] > 0 and r["burst_per_s"] > 0 and r["cpu_us"] > 0 and 0 < r["efficiency"] < 1.5
    assert set(data["ratio"]) == {k for k, _, _ in METRICS}
    assert _started_under(tmp_path) == []


def test_a_run_whose_base_took_no_clock_tick_is_left_out_of_the_ratio():
    # (CPU is counted in clock ticks of 10 ms: a short burst of the faster cluster can take none; CI on 018f9dd)
    runs = [{"new": {"cpu_us": 200.0}, "old": {"cpu_us": 0.0}}, {"new": {"cpu_us": 300.0}, "old": {"cpu_us": 400.0}},
            {"new": {"cpu_us": 100.0}, "old": {"cpu_us": 200.0}}]
    assert median_ratio(runs, "new", "old", "cpu_us") == (0.75 + 0.5) / 2
    assert median_ratio(runs[:1], "new", "old", "cpu_us") is None


def test_bad_options_are_refused():
    out = subprocess.run([sys.executable, str(SCRIPT), "--burst", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "must be at least 1" in out.stderr
