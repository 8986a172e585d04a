"""`sched-lab simulate`: JSON keys and values, the human table, CSV export, Parquet without pyarrow,
the plot file, and exit code 2 with a clear message for each kind of bad input."""

import importlib.util
import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from sched_lab.apps.cli import main

KEYS = {"scheme", "engines", "tasks", "hwm", "load", "seed", "mean_wait", "mean_response", "p50_response",
        "p99_response", "makespan", "throughput", "utilization", "wall_s", "sim_tasks_per_s"}


def simulate(capsys, *argv):
    rc = main(["simulate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_has_the_documented_keys(capsys):
    rc, out, _ = simulate(capsys, "--scheme", "plainrandom", "--engines", "8", "--tasks", "4000", "--load", "0.5",
                          "--hwm", "0", "--seed", "3", "--json")
    assert rc == 0
    data = json.loads(out)
    assert KEYS <= set(data)
    assert (data["scheme"], data["engines"], data["tasks"], data["hwm"], data["load"], data["seed"]) == \
        ("plainrandom", 8, 4000, 0, 0.5, 3)
    assert 1.3 < data["mean_response"] < 2.8 and data["p50_response"] < data["p99_response"]
    assert data["utilization"] == pytest.approx(0.5, rel=0.1) and data["sim_tasks_per_s"] > 0


def test_same_seed_same_json_numbers(capsys):
    args = ("--tasks", "2000", "--workload", "h2:c2=4", "--json", "--seed", "5")
    a = json.loads(simulate(capsys, *args)[1])
    b = json.loads(simulate(capsys, *args)[1])
    assert {k: v for k, v in a.items() if k not in ("wall_s", "sim_tasks_per_s")} == \
        {k: v for k, v in b.items() if k not in ("wall_s", "sim_tasks_per_s")}


def test_table_csv_and_plot(capsys, tmp_path):
    out_csv, png = tmp_path / "r.csv", tmp_path / "r.png"
    rc, out, _ = simulate(capsys, "--tasks", "1000", "--batch", "--speeds", "1x3,2x1", "--out", str(out_csv),
                          "--plot", str(png), "--no-progress")
    assert rc == 0
    assert "mean_response" in out and re.search(r"^engines +4$", out, re.M)
    df = pd.read_csv(out_csv)
    assert len(df) == 1000 and set(df["outcome"]) == {"ok"} and df["engine_id"].nunique() == 4
    assert png.stat().st_size > 1000


def test_trace_dag_failures_options(capsys, tmp_path):
    trace = tmp_path / "t.csv"
    trace.write_text("submit_time,duration,after\n0,1,\n0,2,0\n1,1,1\n")
    rc, out, _ = simulate(capsys, "--trace", str(trace), "--engines", "2", "--json", "--warmup", "0")
    data = json.loads(out)
    assert rc == 0 and data["tasks"] == 3 and data["makespan"] == pytest.approx(4.0) and data["load"] is None
    rc, out, _ = simulate(capsys, "--tasks", "500", "--dag", "forkjoin:width=4", "--mtbf", "50", "--retries", "20",
                          "--latency", "exp:mean=0.01", "--overhead", "const:mean=0.001", "--json")
    assert rc == 0 and json.loads(out)["failed"] == 0


def test_parquet_export_round_trips(capsys, tmp_path):
    import pandas as pd

    out = tmp_path / "r.parquet"
    rc, _, _ = simulate(capsys, "--tasks", "200", "--engines", "4", "--out", str(out))
    assert rc == 0
    df = pd.read_parquet(out)
    assert len(df) == 200 and set(df["outcome"]) == {"ok"} and (df["finished_at"] >= df["submitted_at"]).all()


def test_parquet_without_pyarrow_is_a_clear_usage_error(capsys, tmp_path, monkeypatch):
    # The test extra installs pyarrow; stand in for a machine without it (or fastparquet).
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("pyarrow", "fastparquet") else real_find_spec(name, *a))
    rc, _, err = simulate(capsys, "--tasks", "10", "--out", str(tmp_path / "r.parquet"))
    assert rc == 2 and "Parquet needs pyarrow" in err and not (tmp_path / "r.parquet").exists()


@pytest.mark.parametrize("argv,message", [
    (["--scheme", "fastestest"], "unknown scheme 'fastestest'; allowed: leastload"),
    (["--scheme", "powerofd:d=x"], "parameter d='x' is not a valid int"),
    (["--scheme", "powerofd:d=0"], "powerofd needs an integer d >= 1"),
    (["--scheme-module", "no_such_scheme_module"], "scheme module 'no_such_scheme_module' not found"),
    (["--load", "-0.5"], "--load must be > 0"),
    (["--workload", "pareto"], "unknown distribution 'pareto'"),
    (["--workload", "h2:c2"], "malformed parameter"),
    (["--engines", "0"], "--engines must be >= 1"),
    (["--trace", "/nonexistent.csv"], "cannot read trace file"),
    (["--hwm", "-1"], "hwm must be an integer >= 0"),
    (["--speeds", "fast"], "malformed speed"),
    (["--dag", "tree"], "unknown DAG kind"),
    (["--out", "r.xlsx"], "--out must end in .csv or .parquet"),
    (["--warmup", "1.5"], "warmup must be a fraction"),
])
def test_bad_input_exits_2_with_a_message(capsys, argv, message):
    rc, out, err = simulate(capsys, "--tasks", "10", *argv)
    assert rc == 2 and message in err and out == ""


def test_bad_trace_content_exits_2(capsys, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("start,len\n0,1\n")
    rc, _, err = simulate(capsys, "--trace", str(p))
    assert rc == 2 and "submit_time,duration" in err


def test_argparse_type_errors_exit_2():
    with pytest.raises(SystemExit) as exc:
        main(["simulate", "--tasks", "many"])
    assert exc.value.code == 2


def test_console_entry_in_a_fresh_process():
    proc = subprocess.run([sys.executable, "-m", "sched_lab", "simulate", "--tasks", "300", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tasks"] == 300


def test_time_limit_and_worker_restart_options(capsys):
    base = ("--engines", "2", "--tasks", "2000", "--load", "0.8", "--seed", "3", "--json", "--retries", "1")
    rc, out, _ = simulate(capsys, *base, "--time-limit", "2")
    cut = json.loads(out)
    # exp(1) tasks: e^-2 of them run longer than 2 and are stopped on both attempts (same work each time)
    assert rc == 0 and cut["failed"] == pytest.approx(0.135 * cut["measured"], rel=0.25)
    slow = json.loads(simulate(capsys, *base, "--time-limit", "2", "--worker-restart", "0.5")[1])
    assert slow["failed"] == cut["failed"] and slow["makespan"] > cut["makespan"]
    rc, _, err = simulate(capsys, *base, "--time-limit", "0")
    assert rc == 2 and "time_limit" in err
