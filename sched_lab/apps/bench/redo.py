"""What the task database's redo log buys (issue 15): answers after one log append vs after the SQLite commit.

Two 2-engine clusters (hwm=1, SQLite, module functions) that differ only in `--no-redo-log`: with it, an
answer waits for the SQLite commit of its task's writes (~70-90 µs of the controller's loop), as before the
redo log; without it, for one append of those writes to the log (real_cluster/redo_log.py). Runs are
interleaved (one cluster, then the other, `--runs` times; each started afresh on an empty database) and
each figure is the median over runs: `apply_sync` round trip (median of `--round-trips`), a burst of
`--burst` no-op `apply_async` (tasks/s, and CPU µs per task of the whole process tree), and `--sleep-tasks`
tasks sleeping 1 ms (efficiency: n x measured sleep / 2 / makespan). Ratios are per run, then the median.

    python benchmarks/bench_redo.py [--runs 5] [--round-trips 2000] [--burst 5000] [--sleep-tasks 2000] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from .live import measured_sleep_s, sleep_efficiency, time_burst, time_round_trips
from .live_peers import Ours, Peer, task_functions

METRICS = (("rt_us", "apply_sync round trip, median (µs)", False), ("burst_per_s", "no-op burst (tasks/s)", True),
           ("cpu_us", "CPU per no-op task, process tree (µs)", False),
           ("efficiency", "1 ms tasks: efficiency", True))


def run_once(peer: Peer, round_trips: int, burst: int, sleep_tasks: int, sleep_s: float) -> dict[str, float]:
    """Every workload once on a started peer."""
    fns = task_functions("module")
    rts = time_round_trips(peer.apply_sync, fns.noop, round_trips)
    dt, cpu = time_burst(peer.apply_async, peer.wait_all, fns.noop, burst)
    eff = sleep_efficiency(peer.apply_async, peer.wait_all, fns.sleep_s, sleep_tasks, sleep_s)
    return {"rt_us": statistics.median(rts) * 1e6, "burst_per_s": burst / dt, "cpu_us": cpu / burst * 1e6,
            "efficiency": eff}


def median_ratio(runs: list[dict[str, dict[str, float]]], ours: str, theirs: str, key: str) -> float | None:
    """The median over runs of ours/theirs for `key`, leaving out runs where theirs is 0 (CPU is counted in clock
    ticks: a short run may take none); None when no run has a ratio."""
    ratios = [r[ours][key] / r[theirs][key] for r in runs if r[theirs][key] > 0]
    return statistics.median(ratios) if ratios else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_redo", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=5000)
    parser.add_argument("--sleep-tasks", type=int, default=2000)
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the runs and medians here")
    args = parser.parse_args(argv)
    if min(args.runs, args.round_trips, args.burst, args.sleep_tasks) < 1:
        parser.error("--runs, --round-trips, --burst and --sleep-tasks must be at least 1")
    peers = [Ours(db="sqlite", hwm=1, name="redo log"),
             Ours(db="sqlite", hwm=1, controller_args=("--no-redo-log",), name="after commit")]
    sleep_s = measured_sleep_s()
    runs: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="sched-lab-redo-") as tmp:
        os.environ["SCHED_LAB_DIR"] = tmp
        for i in range(args.runs):
            run: dict[str, dict[str, float]] = {}
            for peer in (peers if i % 2 == 0 else peers[::-1]):
                peer.start()
                try:
                    run[peer.name] = run_once(peer, args.round_trips, args.burst, args.sleep_tasks, sleep_s)
                finally:
                    peer.stop()
            runs.append(run)
            print(f"[redo] run {i + 1}/{args.runs}: " + "; ".join(
                f"{name} " + ", ".join(f"{k} {v:.4g}" for k, v in r.items()) for name, r in run.items()),
                file=sys.stderr, flush=True)
    ours, theirs = peers[0].name, peers[1].name
    med = {name: {k: statistics.median(r[name][k] for r in runs) for k, _, _ in METRICS} for name in (ours, theirs)}
    ratio = {k: median_ratio(runs, ours, theirs, k) for k, _, _ in METRICS}
    print(f"{'median of ' + str(args.runs) + ' runs':40} {ours:>12} {theirs:>14} {'ratio':>7}")
    for k, label, _ in METRICS:
        shown = "n/a" if ratio[k] is None else f"{ratio[k]:.3f}"
        print(f"{label:40} {med[ours][k]:12.4g} {med[theirs][k]:14.4g} {shown:>7}")
    if args.json:
        out: dict[str, Any] = {"runs": runs, "median": med, "ratio": ratio, "measured_sleep_s": sleep_s,
                               "argv": sys.argv[1:], "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)
    return 0
