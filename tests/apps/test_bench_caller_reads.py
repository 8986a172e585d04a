"""`bench_caller_reads.py` (its figures are never judged here): both clients run every block, one reading as a
caller and the other through its reader thread only, the script prints both and their ratio, stops everything it
started, and refuses bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from test_bench_floor import _started_under

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_caller_reads.py"


def test_the_script_pairs_both_clients_prints_them_and_leaves_nothing_running(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--blocks", "2", "--roundtrips", "30", "--burst", "200",
                          "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for variant in ("on", "off"):
        assert len(data["blocks"][variant]) == 2
        assert all(b["rt_median_us"] > 0 and b["burst_per_s"] > 0 for b in data["blocks"][variant])
    assert set(data["ratio_per_block_median"]) == {"rt_median_us", "burst_per_s"}
    assert data["reads_on_client"]["callers"] > 0          # the "on" client did read as a caller
    assert _started_under(tmp_path) == []


def test_the_table_names_both_variants(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--blocks", "1", "--roundtrips", "10", "--burst", "50"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "caller reads (on)" in out.stdout and "reader thread (off)" in out.stdout and "round trip" in out.stdout
    assert _started_under(tmp_path) == []


def test_bad_options_are_refused():
    out = subprocess.run([sys.executable, str(SCRIPT), "--blocks", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "must be >= 1" in out.stderr
