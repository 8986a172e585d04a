"""`sched-lab demo` as a user runs it (a subprocess, a private $SCHED_LAB_DIR): exit 0, a Markdown report
whose table has a live and three simulated rows per scheme with sane numbers, the figures it links
exist, stdout names the report, progress is on stderr, and no cluster process is left behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytestmark = pytest.mark.timeout(150)


def _cluster_processes(lab_dir: Path) -> list[str]:
    """Command lines of live processes whose $SCHED_LAB_DIR lies under `lab_dir` (the demo's temp dir does)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if any(e.startswith(b"SCHED_LAB_DIR=" + str(lab_dir).encode()) for e in env) and "real_cluster" in cmd:
            found.append(cmd)
    return found


def test_demo_writes_report_and_leaves_nothing_running(tmp_path):
    out_dir = tmp_path / "report"
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp), SCHED_LAB_DIR=str(tmp_path / "unused"))
    proc = subprocess.run([sys.executable, "-m", "sched_lab", "demo", "--out", str(out_dir)], env=env,
                          capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stderr
    assert f"report: {(out_dir / 'report.md').resolve()}" in proc.stdout
    assert "starting a cluster" in proc.stderr and "cluster stopped" in proc.stderr
    assert _cluster_processes(tmp) == []
    assert not list(tmp.iterdir())                 # the temporary profile dir was removed
    assert not (tmp_path / "unused").exists()      # the user's $SCHED_LAB_DIR was not touched

    report = (out_dir / "report.md").read_text()
    figures = re.findall(r"!\[[^]]*\]\(([^)]+)\)", report)
    assert {"cdf_leastload.png", "cdf_plainrandom.png"} <= set(figures)
    for name in figures:
        assert (out_dir / name).stat().st_size > 10_000, name
    table = pd.read_csv(out_dir / "summary.csv")
    assert list(table["driver"]) == ["live", "sim", "sim, tasks x100", "sim, engines+tasks x100"] * 2
    assert list(table["scheme"]) == ["leastload"] * 4 + ["plainrandom"] * 4
    for row in table.to_dict("records"):           # every row appears in the Markdown table
        assert f"| {row['scheme']} | {row['driver']} | {row['engines']:,} | {row['tasks']:,} |" in report
    assert list(table["tasks"]) == [200, 200, 20_000, 20_000] * 2
    assert list(table["engines"]) == [4, 4, 4, 400] * 2
    assert (table["p99_ms"] > table["p50_ms"]).all() and (table["utilization"] > 0.3).all()
    live = table[table["driver"] == "live"].set_index("scheme")
    # every live task really slept its length (lognormal, mean 20 ms): responses cannot be shorter
    assert (live["mean_ms"] > 15).all() and live["ks_vs_sim"].between(0, 1).all()
    # hwm=0: random placement queues far more than least-load (simulated rows: deterministic for the seed;
    # the live rows are not asserted against each other, a busy CI machine distorts a 3-second run)
    big = table[table["driver"] == "sim, tasks x100"].set_index("scheme")
    assert big.loc["plainrandom", "mean_ms"] > 1.5 * big.loc["leastload", "mean_ms"]
    assert big.loc["plainrandom", "p99_ms"] > 1.5 * big.loc["leastload", "p99_ms"]

@pytest.mark.parametrize("how", ["ctrl-c to the process group", "sigterm to the demo alone"])
def test_interrupted_demo_stops_its_cluster(tmp_path, how):
    import signal

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "sched_lab", "demo", "--out", str(tmp_path / "r")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:                   # interrupt while the first live workload runs
            if "submitting" in line:
                break
        assert _cluster_processes(tmp), "the cluster should be running now"
        if how.startswith("ctrl-c"):
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted (clusters stopped)" in err
    assert _cluster_processes(tmp) == []
    assert not (tmp_path / "r" / "report.md").exists()
