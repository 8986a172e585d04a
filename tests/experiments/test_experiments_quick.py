"""Every experiment script runs with --quick in a subprocess and writes sane results.

Each script writes into a temporary --out directory (never into experiments/results). Checks are
properties the numbers must have, not pinned values: theory_validation's simulated means sit near
the closed forms; scheme_comparison ranks leastload above plainrandom at hwm=0 and makes every
scheme equal at hwm=1 on identical engines; the makespan never beats its lower bound; failures
without retries lose tasks and retries win them back; live_vs_sim starts a real cluster, stops it
(no process of its profiles survives the script) and holds both sources with a KS distance in [0, 1].
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"


def run_quick(name: str, out: Path, tmp_path: Path, timeout: float = 150,
              extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, SCHED_LAB_DIR=str(tmp_path / "sched-lab"), PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, str(EXPERIMENTS / f"{name}.py"), "--quick", "--jobs", "2", "--out", str(out),
                           *extra], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def pngs(out: Path) -> list[Path]:
    files = sorted(out.glob("*.png"))
    assert files, f"no figures in {out}"
    for f in files:
        assert 5_000 < f.stat().st_size < 200_000, f
    return files


@pytest.fixture(scope="module")
def theory_local(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tv")
    proc = run_quick("theory_validation", tmp / "out", tmp)
    return proc, tmp / "out"


def test_theory_validation(theory_local):
    proc, out = theory_local
    table = pd.read_csv(out / "table.csv")
    assert "Simulated vs closed-form" in proc.stdout
    assert set(table["model"].str.split(" ").str[0]) >= {"M/M/10", "M/M/1", "E_10/M/1", "supermarket", "P-K"}
    assert table["rel_err"].abs().max() < 0.15, table
    mmc = table[table["model"].str.startswith("M/M/10")]
    assert len(mmc["label"].unique()) >= 6 and mmc["rel_err"].abs().max() < 0.06
    assert (table["sim_ci"] > 0).all()
    pngs(out)


def test_theory_validation_on_a_cluster_gives_the_same_table(theory_local, tmp_path, monkeypatch):
    """--cluster PROFILE sends the sweep's points to a running cluster: identical seeds, identical numbers."""
    from real_cluster import Cluster

    monkeypatch.setenv("SCHED_LAB_DIR", str(tmp_path / "sched-lab"))
    cluster = Cluster(n=2, profile="exp-sweep", db="memory")
    try:
        cluster.start()
        out = tmp_path / "tv-cluster"
        run_quick("theory_validation", out, tmp_path, extra=("--cluster", "exp-sweep"))
    finally:
        cluster.stop()
    local = pd.read_csv(theory_local[1] / "table.csv")
    remote = pd.read_csv(out / "table.csv")
    pd.testing.assert_frame_equal(local, remote)


def test_scheme_comparison(tmp_path):
    out = tmp_path / "sc"
    run_quick("scheme_comparison", out, tmp_path)
    s = pd.read_csv(out / "summary.csv")
    assert set(s["case"]) == {"exp", "lognormal_s1.5", "bpareto_a1.1", "bpareto_a2.5", "hetero_exp"}
    assert set(s["hwm"]) == {0, 1, 2}
    at = s[(s["case"] == "exp") & (s["load"] == 0.9)].set_index(["hwm", "scheme"])["mean_response"]
    assert at[(0, "leastload")] * 2 < at[(0, "plainrandom")]           # JSQ vs random split: ~1.5 vs ~7
    hwm1 = at.loc[1]
    assert hwm1.max() == pytest.approx(hwm1.min(), rel=1e-9)            # central queue: the scheme cannot matter
    sp = pd.read_csv(out / "spread.csv")
    assert (sp["mean_ratio"] >= 1).all() and (sp["p99_ratio"] >= 1).all()
    assert len(pngs(out)) == 5


def test_scale(tmp_path):
    out = tmp_path / "scale"
    run_quick("scale", out, tmp_path)
    p = pd.read_csv(out / "points.csv")
    assert sorted(p["engines"].unique()) == [10, 100, 1000] and len(p) == 3 * 2 * len(p["scheme"].unique())
    assert (p["sim_tasks_per_s"] > 0).all()
    central = p[(p["hwm"] == 1) & (p["scheme"] == "leastload")].set_index("engines")["mean_response"]
    assert central[1000] < central[10]                                  # pooling: M/M/c wait vanishes as c grows
    pngs(out)


def test_failures_retries(tmp_path):
    out = tmp_path / "fr"
    run_quick("failures_retries", out, tmp_path)
    s = pd.read_csv(out / "summary.csv")
    never = s[s["mtbf"] == math.inf]
    assert (never["completion"] == 1).all() and (never["wasted_work"] == 0).all()
    often = s[s["mtbf"] == s["mtbf"].min()].set_index(["hwm", "retries"])
    for hwm in (0, 1):
        assert often.loc[(hwm, 0), "completion"] < 0.99
        assert often.loc[(hwm, 3), "completion"] > often.loc[(hwm, 0), "completion"]
        assert often.loc[(hwm, 3), "attempts_per_task"] > 1
    assert ((s["wasted_work"] >= 0) & (s["wasted_work"] < 1)).all()
    assert (s[s["mtbf"] < math.inf]["wasted_work"] > 0).all()
    pngs(out)


def test_dependencies(tmp_path):
    out = tmp_path / "dag"
    run_quick("dependencies", out, tmp_path)
    p = pd.read_csv(out / "points.csv")
    assert set(p["dag"]) == {"chains", "forkjoin", "random"}
    assert (p["ok"] == p["tasks"]).all()
    assert (p["ratio"] >= 1 - 1e-9).all()                               # nothing beats max(critical path, work/n)
    assert (p["makespan"] >= p["critical_path"] - 1e-9).all()
    assert p["ratio"].max() < 3
    pngs(out)


def _processes_mentioning(text: str) -> list[str]:
    """Live processes whose command line or environment contains `text` (our SCHED_LAB_DIR)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if text in cmd or text in env:
            found.append(f"{proc.name}: {cmd}")
    return found


def test_live_vs_sim(tmp_path):
    out = tmp_path / "lvs"
    env_dir = tmp_path / "sched-lab"
    proc = run_quick("live_vs_sim", out, tmp_path, timeout=170)
    assert not _processes_mentioning(str(env_dir)), "a controller or engine outlived the script"
    r = pd.read_csv(out / "responses.csv")
    assert set(r["source"]) == {"live", "sim", "sim_uncalibrated"}
    assert set(r["scheme"]) == {"leastload", "plainrandom"}
    live = r[r["source"] == "live"]
    assert live.groupby("scheme").size().eq(300).all()
    assert (live["response_s"] > 0.0005).all() and live["response_s"].median() < 1.0
    s = pd.read_csv(out / "summary.csv")
    assert s["ks"].between(0, 1).all() and s["uncal_ks"].between(0, 1).all()
    for model in ("iid", "replay", "modulated"):                        # every overhead model simulated
        assert s[f"ks_{model}"].between(0, 1).all() and s[f"mean_err_{model}"].abs().lt(1.0).all(), s
    # The accuracy bound is the default model's (replay, below). The other two are the comparison models the
    # experiment reports beside it: `iid` takes each hop's median as a constant and so misses the host's bursts of
    # contention; under a slow phase in CI it once came out 63 % off for plainrandom (12 local runs: -9 %...+31 %).
    # Within a factor of two says they ran on the calibration, not that they are as good as replay.
    assert (s["ks"] == s["ks_replay"]).all() and set(s["overhead_model"]) == {"replay"}
    assert (s["mean_err"].abs() < 0.6).all(), s                         # loose: a shared 2-core host is noisy
    for check in ("nopickup", "heldout"):                              # the same model without pickups; another
        assert s[f"ks_{check}"].between(0, 1).all()                   # scheme's traces (the other of the two)
    assert s["heldout_from"].tolist() == ["plainrandom", "leastload"]
    parts = pd.read_csv(out / "decomposition.csv")
    assert set(parts["source"]) == {"live", "sim", "sim_nopickup"} and parts["queued"].between(0, 1).all()
    cal = pd.read_csv(out / "calibration.csv")
    assert (cal["latency_s"] > 0).all() and (cal["latency_s"] < 0.05).all()
    assert (cal["pickups"] > 0).all() and (cal["pickup_median_s"] > 0).all() and (cal["pickup_median_s"] < 0.05).all()
    assert cal["hop_lag1_corr"].between(-1, 1).all() and not cal["hog"].astype(bool).any()
    assert "live vs simulated" in proc.stdout
    assert {"live_vs_sim_cdf.png", "gantt_live_leastload.png", "gantt_sim_leastload.png"} <= {p.name for p in pngs(out)}
    # --resimulate: the saved live records give the same comparison without a live cluster
    again = tmp_path / "lvs-again"
    run_quick("live_vs_sim", again, tmp_path, extra=("--resimulate", str(out)))
    r2 = pd.read_csv(again / "responses.csv")
    pd.testing.assert_frame_equal(r2[r2["source"] == "live"].reset_index(drop=True), live.reset_index(drop=True))
    s2 = pd.read_csv(again / "summary.csv")
    for col in ("ks", "ks_iid", "ks_replay", "ks_modulated", "mean_err", "uncal_ks", "ks_nopickup", "ks_heldout"):
        assert s2[col].to_numpy() == pytest.approx(s[col].to_numpy(), abs=1e-9), col


def _live_vs_sim_module(monkeypatch):
    monkeypatch.syspath_prepend(str(EXPERIMENTS))
    import live_vs_sim

    return live_vs_sim


def test_cpu_hog_burns_a_pinned_core_and_is_always_stopped(monkeypatch):
    import time

    lvs = _live_vs_sim_module(monkeypatch)
    with lvs.cpu_hog() as hog:
        assert hog.poll() is None
        assert os.sched_getaffinity(hog.pid) == {0}
        deadline = time.monotonic() + 30
        while lvs.cpu_seconds(hog.pid) < 0.05:             # it really burns CPU (shared host: give it time)
            assert time.monotonic() < deadline, "the hog used no CPU in 30 s"
            time.sleep(0.05)
    assert hog.poll() is not None and not Path(f"/proc/{hog.pid}").exists()
    with pytest.raises(RuntimeError, match="boom"):
        with lvs.cpu_hog() as hog:
            raise RuntimeError("boom")
    assert hog.poll() is not None                           # stopped on the error path too
    with lvs.cpu_hog(False) as none:
        assert none is None


def test_cpu_hog_dies_with_a_killed_script(tmp_path):
    # kill -9 of the script skips every finally: the kernel's parent-death signal stops the hog
    import signal
    import time

    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); import live_vs_sim as l\n"
            "with l.cpu_hog() as hog:\n    print(hog.pid, flush=True)\n    time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", code, str(EXPERIMENTS)], stdout=subprocess.PIPE, text=True)
    hog_pid = None
    try:
        hog_pid = int(parent.stdout.readline())
        assert Path(f"/proc/{hog_pid}").exists()
        parent.send_signal(signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{hog_pid}").exists() and "Z" not in _state(hog_pid):
            assert time.monotonic() < deadline, "the hog outlived its killed parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait(30)
        if hog_pid is not None and Path(f"/proc/{hog_pid}").exists() and _state(hog_pid) != "Z":
            os.kill(hog_pid, signal.SIGKILL)          # the test failed: still stop what it started


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def test_speed_aware(tmp_path):
    """Speed-aware placement at hwm=1 on speeds 1x5,4x5: speed-blind leastload is ~48% slower than fastest."""
    out = tmp_path / "out"
    proc = run_quick("speed_aware", out, tmp_path)
    assert "relative to fastest at load 0.5" in proc.stdout
    pen = pd.read_csv(out / "penalty.csv").set_index("scheme")
    assert 0.35 < pen.loc["leastload", "slower_than_fastest"] < 0.60, pen
    assert (pen.drop(index="fastest")["slower_than_fastest"] > 0.2).all(), pen
    assert pen.loc["leastload", "slower_than_fastest"] == pen.loc["lru", "slower_than_fastest"]  # same decisions
    pngs(out)


def test_speed_aware_with_a_user_scheme_module(tmp_path):
    """Experiments take --scheme-module and repeated --scheme NAME:k=v (the example user scheme here)."""
    out = tmp_path / "out"
    example = ROOT / "examples" / "schemes" / "sampled_delay.py"
    run_quick("speed_aware", out, tmp_path, extra=("--scheme-module", str(example), "--scheme", "sampleddelay:d=3",
                                                   "--scheme", "leastload"))
    pen = pd.read_csv(out / "penalty.csv").set_index("scheme")
    assert list(pen.index) == ["fastest", "sampleddelay:d=3", "leastload"]
    assert pen.loc["sampleddelay:d=3", "slower_than_fastest"] < pen.loc["leastload", "slower_than_fastest"]


def test_jsq_jiq_theory(tmp_path):
    """JSQ(3)/JSQ(2) near the supermarket model, JIQ near its many-server limit (small n: loose bounds)."""
    out = tmp_path / "out"
    proc = run_quick("jsq_jiq_theory", out, tmp_path)
    assert "simulated vs theory" in proc.stdout
    t = pd.read_csv(out / "table.csv").set_index("scheme")
    for scheme in ("powerofd:d=3", "powerofd"):
        assert abs(t.loc[scheme, "rel_err"]) < 0.10, t
        assert abs(t.loc[scheme, "found_idle"] - t.loc[scheme, "theory_idle"]) < 0.05, t
    assert t.loc["powerofd:d=3", "mean_response"] < t.loc["powerofd", "mean_response"]
    assert t.loc["jiq", "found_idle"] > 0.95 and abs(t.loc["jiq", "rel_err"]) < 0.06, t
