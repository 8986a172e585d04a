"""`bench_floor.py` (its figures are never judged here): every shape really carries its tasks (two workers sleeping
1 ms each, one task at a time, cannot finish n tasks in under n/2 ms; a burst's every task is answered once; the
committing relays leave a row per answer; the pulling shapes' workers take tasks from the shared queue and the
others' never do), the script prints and saves every shape beside ProcessPoolExecutor and sched-lab, no process it
forked outlives it, and bad options are refused."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from sched_lab.apps.bench.floor import KINDS, LABELS, MSG, TOOK, Shape

pytestmark = pytest.mark.timeout(240)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_floor.py"


@pytest.mark.parametrize("kind", KINDS)
def test_each_shape_runs_its_tasks_on_two_workers_one_at_a_time(kind, tmp_path):
    shape = Shape(kind, str(tmp_path))
    try:
        assert shape.round_trip() > 0
        n = 40
        assert shape.sleep_batch(n) >= n * 0.001 / 2          # each task slept; two at a time at most
        assert shape.round_trip() > 0                          # the batch's answers were all read: in step
        burst = 2000
        assert shape.burst(burst) > 0
        assert len(shape.answers) == burst * MSG
        took = sum(shape.answers[i + MSG - 1:i + MSG] == TOOK for i in range(0, len(shape.answers), MSG))
        assert shape.round_trip() > 0                          # no answer more than its tasks: still in step
    finally:
        shape.close()
    assert all(not p.is_alive() for p in shape.procs)
    if kind.endswith("-pull"):
        assert took > 0             # workers took tasks from the shared queue, not only from the relay
    else:
        assert took == 0
    if "commit" in kind:
        (db,) = tmp_path.glob("floor-*.db")
        with sqlite3.connect(db) as con:
            assert con.execute("SELECT count(*) FROM t").fetchone()[0] == n + burst + 3     # a row per answer


def _started_under(lab_dir: Path) -> list[str]:
    """Live processes whose $SCHED_LAB_DIR lies under `lab_dir` (the script's forks inherit it, and its cluster's
    processes get its temporary directory, made under $TMPDIR)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(f"SCHED_LAB_DIR={lab_dir}".encode()) for v in env):
            found.append(pid)
    return found


def test_the_script_prints_and_saves_every_shape_and_leaves_nothing_running(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--runs", "1", "--round-trips", "30", "--sleep-tasks", "30",
                          "--burst", "300", "--json", str(tmp_path / "floor.json")],
                         env=env, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    for name in ("ProcessPoolExecutor", *KINDS, "sched-lab"):
        assert LABELS[name] in out.stdout
    data = json.loads((tmp_path / "floor.json").read_text())
    (run,) = data["runs"]
    assert set(run) == {"ProcessPoolExecutor", *KINDS, "sched-lab"}
    assert all(r["round_trip_us"] > 0 and 0 < r["efficiency_1ms"] < 1.5 for r in run.values())
    assert all(r["burst_per_s"] > 0 and r["cpu_per_burst_task_us"] >= 0 for r in run.values())
    assert data["ratio_to_ppe"]["ProcessPoolExecutor"] == 1.0
    assert {k: v["ProcessPoolExecutor"] for k, v in data["ratios_to_ppe"].items()} == \
        {"round_trip_us": 1.0, "burst_per_s": 1.0, "cpu_per_burst_task_us": 1.0}
    assert _started_under(tmp_path) == []


def test_bad_options_are_refused():
    out = subprocess.run([sys.executable, str(SCRIPT), "--sleep-tasks", "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--sleep-tasks and --burst >= 2" in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "--burst", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--sleep-tasks and --burst >= 2" in out.stderr
