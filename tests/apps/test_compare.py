"""`sched-lab compare`: a small sweep in parallel worker processes writes a tidy CSV (one row per
scheme × load × hwm × seed), a figure and a table; bad sweep arguments exit 2. Parameterised schemes
come with a repeatable `--scheme` (their names contain commas) beside `--schemes`, and a user's
`--scheme-module` file is imported by the sweep's worker processes too."""

import json

import pandas as pd
import pytest

from sched_lab.apps.cli import main


def test_sweep_writes_tidy_csv_figure_and_table(capsys, tmp_path):
    out, png = tmp_path / "c.csv", tmp_path / "c.png"
    rc = main(["compare", "--schemes", "leastload,plainrandom", "--loads", "0.5,0.8", "--hwm", "0,1",
               "--seeds", "2", "--engines", "5", "--tasks", "3000", "--jobs", "2", "--out", str(out),
               "--plot", str(png)])
    stdout, _ = capsys.readouterr()
    assert rc == 0
    tidy = pd.read_csv(out)
    assert len(tidy) == 2 * 2 * 2 * 2
    assert set(tidy.columns) >= {"scheme", "hwm", "workload", "load", "seed", "mean_response", "p99_response"}
    assert png.stat().st_size > 1000
    assert "leastload" in stdout and "mean_ci" in stdout
    # hwm=1: every scheme sees the same workload and the same M/M/c sample path (identical means)
    h1 = tidy[tidy["hwm"] == 1].pivot_table(index=["load", "seed"], columns="scheme", values="mean_response")
    assert (h1["leastload"] - h1["plainrandom"]).abs().max() < 1e-9
    # hwm=0: leastload beats random dispatch at every point
    h0 = tidy[tidy["hwm"] == 0].pivot_table(index=["load", "seed"], columns="scheme", values="mean_response")
    assert (h0["leastload"] < h0["plainrandom"]).all()


def test_json_table_single_process(capsys, tmp_path):
    rc = main(["compare", "--schemes", "lru", "--loads", "0.6", "--seeds", "3", "--tasks", "1000", "--jobs", "1",
               "--workloads", "exp;const", "--out", str(tmp_path / "c.csv"), "--plot", "", "--json"])
    rows = json.loads(capsys.readouterr().out)
    assert rc == 0 and [r["workload"] for r in rows] == ["exp", "const"] and all(r["seeds"] == 3 for r in rows)
    assert rows[1]["mean_response"] < rows[0]["mean_response"]


@pytest.mark.parametrize("argv,message", [
    (["--schemes", "leastload,best"], "unknown scheme 'best'"),
    (["--scheme", "powerofd:q=1"], "scheme 'powerofd' has no parameter 'q' (parameters: d)"),
    (["--scheme-module", "no/such/file.py"], "scheme module file 'no/such/file.py' not found"),
    (["--loads", "0.5,1.2"], "--loads must be in (0, 1)"),
    (["--loads", "x"], "bad --loads"),
    (["--workloads", "exp;zipf"], "unknown distribution 'zipf'"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--engines", "0"], "--engines must be >= 1"),
])
def test_bad_sweeps_exit_2(capsys, tmp_path, argv, message):
    rc = main(["compare", "--out", str(tmp_path / "c.csv"), *argv])
    _, err = capsys.readouterr()
    assert rc == 2 and message in err and not (tmp_path / "c.csv").exists()


def test_repeated_scheme_with_parameters_and_a_user_module(capsys, tmp_path):
    from sched_lab.core.scheme_api import SCHEMES

    mod = tmp_path / "lastfirst.py"
    mod.write_text("from sched_lab import register_scheme\n"
                   "register_scheme('mostrecent', lambda choice: choice.candidates[-1])\n")
    out = tmp_path / "c.csv"
    try:
        rc = main(["compare", "--schemes", "leastload", "--scheme", "powerofd:d=3", "--scheme", "powerofd:d=1",
                   "--scheme-module", str(mod), "--scheme", "mostrecent", "--loads", "0.8", "--hwm", "0",
                   "--seeds", "2", "--engines", "8", "--tasks", "3000", "--jobs", "2", "--out", str(out),
                   "--plot", ""])
    finally:
        SCHEMES.pop("mostrecent", None)
    assert rc == 0, capsys.readouterr().err
    tidy = pd.read_csv(out)
    assert list(dict.fromkeys(tidy["scheme"])) == ["leastload", "powerofd:d=3", "powerofd:d=1", "mostrecent"]
    means = tidy.groupby("scheme")["mean_response"].mean()
    assert means["leastload"] < means["powerofd:d=3"] < means["powerofd:d=1"]   # JSQ < JSQ(3) < random
