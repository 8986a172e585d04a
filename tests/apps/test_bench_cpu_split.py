"""`bench_cpu_split.py` as a user runs it (its figures are never judged here): every role of both peers in
`--json`, the cluster's CPU found in its controller and workers (not lost to a wrong role), the
ProcessPoolExecutor's in its parent and workers (the idle cluster's heartbeats aside), with `--hwm 0` none of it in
the nannies (tasks go straight to the workers), and bad options refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cpu_split.py"


def test_json_splits_cpu_by_role(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "2000", "--rounds", "1", "--json"], env=env,
                         capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ours, theirs = data["sched-lab"]["cpu_us_per_task"], data["ProcessPoolExecutor"]["cpu_us_per_task"]
    assert set(ours) == set(theirs) == {"client", "controller", "nanny", "worker"}
    assert ours["controller"] > 0 and ours["worker"] > 0 and ours["client"] > 0
    assert theirs["worker"] > 0                                   # the cluster stays up, idle, during the peer's
    assert theirs["controller"] + theirs["nanny"] < 0.1 * ours["controller"]    # bursts: only its heartbeats
    assert data["sched-lab"]["tasks_per_s"] > 0 and data["ProcessPoolExecutor"]["tasks_per_s"] > 0


def test_bad_options_are_refused():
    out = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--tasks and --rounds must be at least 1" in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "--hwm", "-1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--hwm must be 0 (unlimited) or more" in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "--doc-kb", "4"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--doc-kb is a size in KiB (0 or more) and needs --by-value" in out.stderr


def test_a_padded_function_is_that_much_bigger_to_ship(tmp_path):
    import cloudpickle

    from sched_lab.apps.bench.cpu_split import padded_noop
    assert padded_noop(4)() is None and len(cloudpickle.dumps(padded_noop(4))) > 4096
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "500", "--rounds", "1", "--by-value", "--doc-kb", "4",
                          "--json"], env=env, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["doc_kb"] == 4 and data["sched-lab"]["tasks_per_s"] > 0


def test_with_hwm_0_the_nannies_stay_off_the_tasks_path(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "4000", "--rounds", "1", "--hwm", "0", "--json"],
                         env=env, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    ours = data["sched-lab"]["cpu_us_per_task"]
    assert data["hwm"] == 0 and ours["worker"] > 0
    # Every task went straight to its worker (direct_links.py): through the nannies they cost each about as much
    # CPU as the worker that ran it. (/proc counts CPU in 10 ms ticks: 2.5 µs a task here; a tick of the nannies'
    # own heartbeats may land in the burst.)
    assert ours["nanny"] < 0.5 * ours["worker"]


def test_round_trip_mode_prints_cpu_per_round_trip(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    # (1,500: /proc counts CPU in 10 ms ticks, and 300 round trips, ~10 ms of each worker's CPU, once read 0.0)
    out = subprocess.run([sys.executable, str(SCRIPT), "--tasks", "1500", "--rounds", "1", "--round-trip"], env=env,
                         capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    lines = {line.split("  ")[0]: line.split() for line in out.stdout.splitlines()}
    assert "CPU µs per round trip" in lines and "CPU µs per no-op task" not in lines
    *_, ours, theirs, _, ratio = lines["round trip µs"]
    assert float(ours) > 0 and float(theirs) > 0 and float(ratio) == pytest.approx(float(ours) / float(theirs), rel=0.02)
    assert float(lines["controller"][1]) > 0 and float(lines["worker"][1]) > 0
