"""What the paired benchmark scripts share (sched_lab/apps/bench/script.py): a lab directory of their own that
goes with the run (and none when the caller set one), their common options and refusals, and bench_fncache.py's
use of them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sched_lab.apps.bench.script import counts_refused, own_lab_dir, paired_parser, run_meta

COUNTS = {"blocks": (3, "blocks"), "burst": (10, "tasks")}


def test_an_own_lab_dir_is_set_for_the_run_and_removed_after(monkeypatch):
    monkeypatch.delenv("SCHED_LAB_DIR", raising=False)
    with own_lab_dir("t-"):
        lab = Path(os.environ["SCHED_LAB_DIR"])
        assert lab.is_dir() and lab.name.startswith("t-")
        (lab / "profile_x").mkdir()
    assert not lab.exists() and "SCHED_LAB_DIR" not in os.environ


def test_a_lab_dir_the_caller_set_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("SCHED_LAB_DIR", str(tmp_path))
    with pytest.raises(RuntimeError):
        with own_lab_dir("t-"):
            assert os.environ["SCHED_LAB_DIR"] == str(tmp_path)
            raise RuntimeError("a failed run")
    assert tmp_path.is_dir() and os.environ["SCHED_LAB_DIR"] == str(tmp_path)


def test_the_common_options_and_a_count_below_one(capsys):
    parser = paired_parser("b", "A benchmark.\nmore", COUNTS)
    args = parser.parse_args(["--burst", "5", "--mode", "module", "--json"])
    assert (args.blocks, args.burst, args.mode, args.json) == (3, 5, "module", True)
    assert not counts_refused("b", args, COUNTS)
    assert counts_refused("b", parser.parse_args(["--blocks", "0"]), COUNTS)
    assert "b: --blocks and --burst must be >= 1" in capsys.readouterr().err
    meta = run_meta("bench_b.py", ["--json"], 0.5, mode="module")
    assert meta["command"] == "python benchmarks/bench_b.py --json" and meta["mode"] == "module"
    assert meta["loadavg_before"] == 0.5 and meta["cpus"] == os.cpu_count()


def test_bench_fncache_refuses_a_bad_count():
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_fncache.py"
    out = subprocess.run([sys.executable, str(script), "--rounds", "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "--rounds, --burst and --roundtrips must be >= 1" in out.stderr
