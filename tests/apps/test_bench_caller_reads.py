"""`bench_caller_reads.py` (its figures are never judged here): both clients run every block, one as built and the
other with the toggled setting off (caller reads: through its reader thread only; spin: sleeping at once), the
script prints both and their ratio, stops everything it started, and refuses bad options."""

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
    assert set(data["ratio_per_block_median"]) == {"rt_median_us", "client_cpu_rt_us", "cluster_cpu_rt_us",
                                                   "burst_per_s"}
    assert data["reads_on_client"]["callers"] > 0          # the "on" client did read as a caller
    assert _started_under(tmp_path) == []


def test_the_spin_toggle_pairs_a_polling_client_with_one_that_sleeps(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path), SCHED_LAB_CLIENT_SPIN_US="30000000")
    out = subprocess.run([sys.executable, str(SCRIPT), "--toggle", "spin", "--blocks", "2", "--roundtrips", "30",
                          "--burst", "100", "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["meta"]["toggle"] == "spin"
    assert data["polls_on_client"]["answered"] > 0 and data["polls_on_client"]["ran_out"] == 0
    assert all(b["client_cpu_rt_us"] > 0 for v in ("on", "off") for b in data["blocks"][v])
    assert _started_under(tmp_path) == []


def test_the_table_names_both_variants(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path), TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, str(SCRIPT), "--blocks", "1", "--roundtrips", "10", "--burst", "50"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "caller-reads on" in out.stdout and "off (SCHED_LAB_CALLER_READS=0)" in out.stdout
    assert "round trip" in out.stdout
    assert _started_under(tmp_path) == []


def test_bad_options_are_refused():
    out = subprocess.run([sys.executable, str(SCRIPT), "--blocks", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "must be >= 1" in out.stderr
    out = subprocess.run([sys.executable, str(SCRIPT), "--toggle", "tls"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice: 'tls'" in out.stderr
