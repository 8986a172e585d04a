"""`bench_ab.py` (its figures are never judged here): both trees' clusters run every workload, each importing its
own tree and given its own controller options, the script prints and saves both sides and their ratios, removes
the base worktree, stops everything it started, and refuses bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_bench_floor import _started_under

from sched_lab.apps.bench.ab import METRICS, summarize

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "bench_ab.py"


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(REPO), "worktree", "list"], capture_output=True, text=True,
                          timeout=60).stdout


def test_both_trees_run_every_workload_and_nothing_is_left_behind(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--base", "HEAD", "--blocks", "2", "--round-trips", "20",
                          "--burst", "30", "--sleep-tasks", "10", "--json", str(tmp_path / "ab.json"),
                          "--base-args=--no-pull", "--new-args=--pull"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for label in METRICS.values():
        assert label in out.stdout
    data = json.loads((tmp_path / "ab.json").read_text())
    assert len(data["blocks"]) == 2
    for row in data["blocks"]:
        assert set(row) == {"base", "new"}
        for r in row.values():
            assert set(r) == set(METRICS)
            assert r["rt_us"] > 0 and r["cpu_rt_us"] >= 0 and r["burst_per_s"] > 0 and 0 < r["efficiency"] < 1.5
    assert set(data["summary"]) == set(METRICS)
    assert data["pull_stats"]["base"] == {} and data["pull_stats"]["new"]["taken"] > 0     # each side its options
    base_tree = Path(data["imports"]["base"])        # where a process started as the clusters' were imports from
    assert base_tree.is_relative_to(tmp_path.resolve()) and base_tree.name == "base"   # the checked-out revision
    assert Path(data["imports"]["new"]) == REPO.resolve()
    assert not base_tree.exists() and str(base_tree) not in _worktrees()       # removed, and git forgot it
    assert _started_under(tmp_path) == []


def test_bad_options_and_revisions_are_refused(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    for argv, code, says in ((["--blocks", "0", "--base", "HEAD"], 2, "must be at least 1"),
                             ([], 2, "--base"),
                             (["--base", "HEAD", "--new", str(tmp_path)], 2, "not a sched-lab source tree"),
                             (["--base", "no-such-revision-xyz"], 1, "cannot check out 'no-such-revision-xyz'")):
        out = subprocess.run([sys.executable, str(SCRIPT), *argv], env=env, capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == code and says in out.stderr, (argv, out.returncode, out.stderr)
    assert not list(tmp_path.glob("sched-lab-ab-*"))       # a refused revision leaves no temporary directory


def test_a_metric_whose_base_took_no_cpu_tick_is_kept_with_no_ratio():
    blocks = [{"base": {"rt_us": 100.0, "cpu_rt_us": 0.0}, "new": {"rt_us": 90.0, "cpu_rt_us": 10.0}},
              {"base": {"rt_us": 200.0, "cpu_rt_us": 0.0}, "new": {"rt_us": 220.0, "cpu_rt_us": 0.0}}]
    out = summarize(blocks)
    assert out["cpu_rt_us"] == {"base": 0.0, "new": 5.0, "ratio": None, "quartiles": None}
    assert out["rt_us"]["ratio"] == 1.0 and out["rt_us"]["base"] == 150.0      # ratios 0.9 and 1.1
    assert set(out) == {"rt_us", "cpu_rt_us"}                                   # (not measured: not reported)
