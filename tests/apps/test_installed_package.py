"""The `sched-lab` commands work from a built, non-editable install, not only from a checkout.

A wheel is built from the source tree and unpacked into a private directory; the commands then run
with that directory first on the path and a working directory outside the checkout, so nothing can
be found through the source tree (`sched-lab bench` used to load benchmarks/bench_live.py by path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source")       # a copy: building writes build/ and *.egg-info
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("sched_lab", "real_cluster"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheel")
    site = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source), "-w", str(wheels)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    (wheel,) = wheels.glob("sched_lab-*.whl")
    unpack = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                             str(wheel)], capture_output=True, text=True, timeout=300)
    assert unpack.returncode == 0, unpack.stderr[-3000:]
    return site


def run_installed(site: Path, cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(site), SCHED_LAB_DIR=str(cwd / "lab"))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_installed_package_is_the_one_imported(installed: Path, tmp_path: Path) -> None:
    proc = run_installed(installed, tmp_path, "-c", "import sched_lab, real_cluster; "
                         "print(sched_lab.__file__); print(real_cluster.__file__)")
    assert proc.returncode == 0, proc.stderr
    files = proc.stdout.split()
    assert all(f.startswith(str(installed)) for f in files), files


def test_bench_runs_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    proc = run_installed(installed, tmp_path, "-m", "sched_lab", "bench", "--quick", "--db", "memory",
                         "--peers", "ppe", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)["results"]
    assert set(results) >= {"sched-lab", "ProcessPoolExecutor"}
    assert results["sched-lab"]["median"]["burst_per_s"] > 0


def test_simulate_runs_from_the_installed_package(installed: Path, tmp_path: Path) -> None:
    proc = run_installed(installed, tmp_path, "-m", "sched_lab", "simulate", "--engines", "4", "--tasks", "300",
                         "--seed", "2", "--json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["ok"] + summary["failed"] == summary["measured"] > 0
