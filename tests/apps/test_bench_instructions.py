"""`bench_instructions.py` (its figures are never judged here; CI has no valgrind, so the measured path is run by
hand): a machine without valgrind gets a clear error and exit 2, bad options are refused, and the arithmetic on
callgrind's output files is right: each process's role from its command line, its totals, and instructions per
round trip as the difference of two runs over the difference of their round trips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sched_lab.apps.bench.instructions import per_round_trip, read_totals, role_of

pytestmark = pytest.mark.timeout(120)

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_instructions.py"


def _run(args: list[str], path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH=path))


def test_without_valgrind_it_says_what_is_missing_and_exits_2(tmp_path):
    out = _run([], str(tmp_path))                       # a PATH with nothing on it
    assert out.returncode == 2
    assert "valgrind" in out.stderr and "not found on PATH" in out.stderr and not out.stdout


@pytest.mark.parametrize("args", [["--n1", "10", "--n2", "10"], ["--n1", "0"], ["--n2", "x"]])
def test_bad_options_are_refused(args, tmp_path):
    out = _run(args, str(tmp_path))
    assert out.returncode == 2 and "usage" in out.stderr


def test_a_callgrind_file_gives_its_command_and_totals(tmp_path):
    path = tmp_path / "cg.4242"
    path.write_text("# callgrind format\nversion: 1\ncmd:  /usr/bin/python -m real_cluster.worker --fd 5\n"
                    "events: Ir\nsummary: 1200\nfn=(1) main\n5 1200\ntotals: 1234\n")
    assert read_totals(path) == ("/usr/bin/python -m real_cluster.worker --fd 5", 1234)
    empty = tmp_path / "cg.4243"
    empty.write_text("")                                # a process killed before it wrote anything
    assert read_totals(empty) == ("", 0)


def test_roles_come_from_the_command_line_or_the_driver_pid():
    assert role_of("python -m real_cluster.controller_app --profile p", 7, 1, "ours") == "controller"
    assert role_of("python -m real_cluster.engine --file f", 7, 1, "ours") == "nanny"
    assert role_of("python -m real_cluster.worker --fd 3", 7, 1, "ours") == "worker"
    assert role_of("python driver.py ours 10 pid", 1, 1, "ours") == "client"
    assert role_of("python driver.py ppe 10 pid", 1, 1, "ppe") == "parent"
    assert role_of("python driver.py ppe 10 pid", 9, 1, "ppe") == "pool workers"    # forks share the command


def test_per_round_trip_is_the_difference_over_the_extra_round_trips():
    small = {"client": 1_000_000, "worker": 500_000}
    large = {"client": 3_000_000, "worker": 1_300_000, "nanny": 40_000}
    assert per_round_trip(small, large, 100, 500) == {"client": 5000.0, "nanny": 100.0, "worker": 2000.0}
