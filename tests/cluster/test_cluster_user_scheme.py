"""A user's scheme file run both ways, and live engines' advertised speed and labels (issue 13 items 3, 5, 6).

- examples/schemes/sampled_delay.py passes check_scheme, runs under `sched-lab simulate
  --scheme-module ... --scheme sampleddelay:d=3`, and on a live cluster started with
  `Cluster(scheme=..., scheme_modules=[...])` (the controller imports the same file): tasks labelled
  `gpu` go to the engines started with `--label gpu`;
- `fastest` on a live cluster uses the speeds engines advertise with `--speed`: sequential tasks
  at hwm=1 always go to a fast engine (leastload would rotate through all four);
- a scheme that raises for some tasks fails exactly those with SchemeError (a RemoteError naming
  the scheme) and the controller keeps serving; a bad spec or module stops the CLI with exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from real_cluster import RemoteError
from real_cluster.error import SchemeError
from sched_lab.core.scheme_api import SCHEMES, load_scheme_module
from sched_lab.core.scheme_modules import _module_name_for

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "schemes" / "sampled_delay.py"


def _add_engines(cluster, n: int, *engine_args: str) -> None:
    cluster.engine_args = list(engine_args)
    cluster.start_engines(n)
    cluster.client.wait_for_engines(len(cluster.engines), timeout=30)


def _engines_of(view, n: int, **flags) -> list[int]:
    """Engine ids that ran `n` sequential no-op tasks submitted with these flags."""
    out = []
    with view.temp_flags(**flags):
        for _ in range(n):
            ar = view.apply_async(int)
            ar.get(timeout=30)
            out.append(ar.engine_id)
    return out


def test_the_example_scheme_passes_check_scheme() -> None:
    from sched_lab.testing import check_scheme

    load_scheme_module(str(EXAMPLE))
    try:
        assert "the law chooses only candidates" in check_scheme("sampleddelay:d=3")
        assert "the law chooses only candidates" in check_scheme("sampleddelay:affinity=false")
    finally:                                          # unload: later tests load the file afresh
        SCHEMES.pop("sampleddelay", None)
        sys.modules.pop(_module_name_for(EXAMPLE.resolve()), None)


def test_the_example_scheme_runs_in_the_simulator_cli(tmp_path) -> None:
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    r = subprocess.run([sys.executable, "-m", "sched_lab", "simulate", "--scheme-module", str(EXAMPLE), "--scheme",
                        "sampleddelay:d=3", "--speeds", "1x20,4x20", "--hwm", "0", "--load", "0.8", "--tasks", "20000",
                        "--json"], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["scheme"] == "sampleddelay:d=3" and out["failed"] == 0 and out["tasks"] == 20000
    base = subprocess.run([sys.executable, "-m", "sched_lab", "simulate", "--scheme", "powerofd:d=3", "--speeds",
                           "1x20,4x20", "--hwm", "0", "--load", "0.8", "--tasks", "20000", "--json"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert base.returncode == 0, base.stderr
    assert out["mean_response"] < json.loads(base.stdout)["mean_response"]   # speed-aware beats speed-blind
    bad = subprocess.run([sys.executable, "-m", "sched_lab", "simulate", "--scheme-module", str(EXAMPLE), "--scheme",
                          "sampleddelay:e=3"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "has no parameter 'e' (parameters: d, affinity)" in bad.stderr


def test_the_example_scheme_runs_live_with_labels(make_cluster) -> None:
    cluster = make_cluster(2, scheme="sampleddelay:d=4", scheme_modules=[str(EXAMPLE)], hwm=0,
                           engine_args=["--speed", "4", "--label", "gpu"])
    _add_engines(cluster, 2, "--speed", "1")
    view = cluster.client.load_balanced_view()
    gpu = set(_engines_of(view, 12, label="gpu"))
    assert gpu <= {0, 1}, gpu                        # the first two engines registered carry the label
    assert view.map_sync(lambda x: x * x, range(20)) == [x * x for x in range(20)]


def test_fastest_live_uses_advertised_speeds(make_cluster) -> None:
    cluster = make_cluster(2, scheme="fastest", hwm=1, engine_args=["--speed", "1"])
    _add_engines(cluster, 2, "--speed", "4")
    view = cluster.client.load_balanced_view()
    assert set(_engines_of(view, 12)) <= {2, 3}


@pytest.fixture
def raising_scheme(tmp_path):
    path = tmp_path / "raising_scheme.py"
    path.write_text("from sched_lab import register_scheme\n"
                    "def picky(choice):\n"
                    "    if choice.task.label == 'boom':\n"
                    "        raise RuntimeError('no engine for boom')\n"
                    "    return choice.candidates[0]\n"
                    "register_scheme('picky', picky)\n")
    return path


def test_a_raising_scheme_fails_only_its_task_live(make_cluster, raising_scheme) -> None:
    cluster = make_cluster(2, scheme="picky", scheme_modules=[str(raising_scheme)])
    view = cluster.client.load_balanced_view()
    with view.temp_flags(label="boom"):
        ar = view.apply_async(int)
    with pytest.raises(SchemeError) as info:
        ar.get(timeout=30)
    assert isinstance(info.value, RemoteError) and info.value.ename == "SchemeError"
    assert "scheme 'picky' raised RuntimeError: no engine for boom" in str(info.value)
    assert view.apply_sync(lambda: 42) == 42         # the controller keeps serving
    assert cluster.controller is not None and cluster.controller.poll() is None


def test_cli_rejects_bad_specs_and_modules(tmp_path) -> None:
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    for args, msg in ((["--scheme", "nope"], "unknown scheme 'nope'; allowed: leastload"),
                      (["--scheme", "powerofd:x=1"], "has no parameter 'x'"),
                      (["--scheme-module", str(tmp_path / "missing.py")], "not found")):
        for cmd in (["cluster", "start", "-n", "1", "--profile", "bad"], ["controller", "--profile", "bad"]):
            r = subprocess.run([sys.executable, "-m", "sched_lab", *cmd, *args], env=env, capture_output=True,
                               text=True, timeout=60)
            assert r.returncode == 2 and msg in r.stderr, (cmd, args, r.stderr)
    r = subprocess.run([sys.executable, "-m", "sched_lab", "engine", "--file", str(tmp_path / "x.json"), "--speed", "0"],
                       env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--speed must be a number > 0" in r.stderr


def test_cluster_rejects_a_bad_scheme_before_starting_anything(lab_dir) -> None:
    from real_cluster import Cluster

    with pytest.raises(ValueError, match="unknown scheme 'nope'"):
        Cluster(n=1, profile="never", scheme="nope")
    with pytest.raises(ValueError, match="not found"):
        Cluster(n=1, profile="never", scheme="leastload", scheme_modules=["/no/such/scheme.py"])
    assert Cluster(n=1, profile="never", scheme="powerofd: d = 3").scheme == "powerofd:d=3"
