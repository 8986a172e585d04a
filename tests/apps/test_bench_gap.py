"""`bench_gap.py` as a user runs it (its figures are never judged here): every part of the round trip and of the
dispatch gap is measured, and the gap is split by phase — while the client submits, and after — with as many gaps
as the engines had (one fewer than their tasks each, but for the trace's unwritten tail); a no-op burst likewise."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(240)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gap.py"


def test_json_has_every_part_and_the_gap_by_phase(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--n", "20", "--sleep-tasks", "300", "--burst", "400",
                          "--by-value", "--json"],
                         env=env, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["mode"] == "by-value" and data["sleep_tasks"] == 300
    rt, gap = data["round_trip_us"], data["gap_us"]
    assert all(math.isfinite(v) for v in [*rt.values(), *gap.values()])    # every part measured (a part between
    assert rt["TOTAL"] > 0 and gap["GAP return -> next call"] > 0         # two processes' clocks may be < 0)
    assert gap["sleep(1 ms) call"] >= 1000
    phases = data["gap_by_phase_us"]
    assert set(phases) <= {"while submitting", "after"} and phases["after"]["n"] > 0
    assert 300 - 2 - 2 * 13 <= sum(p["n"] for p in phases.values()) <= 300 - 2   # one gap fewer than tasks an
    # engine (2); a worker's trace is written 64 lines (13 tasks) at a time and the last may die with it (a kill)
    assert all(p["mean"] > 0 and p["median"] > 0 for p in phases.values())
    burst = data["burst_by_phase"]
    assert data["burst"] == 400 and set(burst) == {"while submitting", "after"}
    assert 400 - 2 * 13 <= sum(p["tasks"] for p in burst.values()) <= 400          # (the trace's tail, as above)
    assert 400 - 2 - 2 * 13 <= sum(p["hops"] for p in burst.values()) <= 400 - 2
    assert all(p["seconds"] > 0 for p in burst.values()) and burst["after"]["hop_median"] > 0
    for seen in (data["burst_seen"], data["burst_ppe"]):        # ours and ProcessPoolExecutor's, as the client saw
        assert seen["tasks_per_s"] > 0 and seen["while submitting"]["tasks"] + seen["after"]["tasks"] == 400
        assert seen["while submitting"]["seconds"] > 0 and seen["after"]["seconds"] >= 0


def test_a_negative_burst_is_refused(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--burst", "-1"], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, SCHED_LAB_DIR=str(tmp_path)))
    assert out.returncode == 2 and "--burst must be 0 or more" in out.stderr
