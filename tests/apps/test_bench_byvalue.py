"""`bench_live --by-value` as a user runs it (the benchmark itself is never timed here): both modes in one
`--json` run, "sched-lab, no fn cache" only in the by-value table, the task functions really defined in
`__main__` (cloudpickle ships them by value), and a peer that is not installed named and skipped cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(240)

_SKIP_RAY = """
import sys
sys.modules["ray"] = None                  # as if Ray were not installed
from sched_lab.apps.bench.live import main
sys.exit(main(sys.argv[1:]))
"""


def test_by_value_json_has_both_modes(tmp_path):
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _SKIP_RAY, "--quick", "--db", "memory", "--by-value", "--json",
                          "--peers", "ppe,ray"], env=env, capture_output=True, text=True, timeout=200)
    assert out.returncode == 0, out.stderr
    assert "ray: not installed" in out.stderr
    data = json.loads(out.stdout)
    assert set(data["modes"]) == {"module", "by-value"}
    assert set(data["modes"]["module"]) == {"sched-lab", "ProcessPoolExecutor"}
    assert set(data["modes"]["by-value"]) == {"sched-lab", "sched-lab, no fn cache", "ProcessPoolExecutor"}
    for mode in data["modes"].values():
        ours = mode["sched-lab"]["median"]
        assert 0 < ours["rt_median_ms"] < 1000 and ours["burst_per_s"] > 10 and ours["cpu_us_per_task"] > 0
    saved = tmp_path / "run.json"
    saved.write_text(out.stdout)
    table = subprocess.run([sys.executable, "benchmarks/bench_live.py", "--from-json", str(saved), "--markdown"],
                           capture_output=True, text=True, timeout=60,
                           cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert table.returncode == 0, table.stderr
    assert "defined in __main__" in table.stdout and "sched-lab, no fn cache" in table.stdout


def test_by_value_functions_live_in_main():
    code = """
import cloudpickle, pickle, sys
from sched_lab.apps.bench.live_peers import task_functions
fns = task_functions("by-value")
assert fns.noop.__module__ == "__main__" and sys.modules["__main__"].noop is fns.noop
assert task_functions("by-value").noop is fns.noop          # defined once
blob = cloudpickle.dumps(fns.sleep_s)
assert b"time" in blob and b"sleep_s" in blob and len(blob) > 200, len(blob)  # code by value, not a name
mod = task_functions("module")
assert len(cloudpickle.dumps(mod.sleep_s)) < 120
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
