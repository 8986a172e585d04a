"""Aborting many queued tasks, and what another client waits meanwhile (the controller's loop under a big abort).

A sched-lab cluster with no engines (SQLite, the defaults) queues `--tasks` no-op tasks from one client, then
`abort()`s them all; a second client sends `queue_status()` requests back to back (10 ms apart) during the abort.
Prints the abort's wall time, how many it aborted, and the other client's slowest and median answer. Peer:
ProcessPoolExecutor with its 2 workers held busy, the same number of queued futures, each `cancel()`ed (in-process:
no database, no results sent; a floor, not a like-for-like). Medians over rounds.

`--requests` (one round, no peer) then times the other big requests on those tasks, each beside the same probe:
`hub_history`, `db_query` of every id, `result_status`, `get_result` of every id by a third client, `resubmit` of a
fifth of them, `purge_results("all")`.

    python benchmarks/bench_abort.py [--tasks 100000] [--rounds 3] [--requests] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from .tasks import ident, noop, sleep_s


def _probed(other: Any, request: Callable[[], Any]) -> tuple[Any, dict[str, float]]:
    """Run `request()` while `other` sends queue_status() every 10 ms: its value, its wall time, the probe's waits."""
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            other.queue_status()
            latencies.append(time.perf_counter() - t0)
            done.wait(0.01)
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    done.wait(0.1)
    t0 = time.perf_counter()
    try:
        value = request()
    finally:
        wall = time.perf_counter() - t0
        done.set()
        prober.join(60)
    return value, {"wall_s": wall, "other_max_ms": max(latencies) * 1e3,
                   "other_p50_ms": statistics.median(latencies) * 1e3, "probes": len(latencies)}


def _ours(cluster: Any, n: int, requests: bool = False) -> dict[str, Any]:
    from real_cluster import Client
    from real_cluster.profile import CLIENT_FILE
    path = cluster.dir / "security" / CLIENT_FILE
    with Client(path, timeout=600) as rc, Client(path, timeout=600) as other, Client(path, timeout=600) as third:
        ar = rc.load_balanced_view().map_async(ident, range(n), chunksize=1)
        deadline = time.monotonic() + 600
        while other.queue_status()["unassigned"] < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{n} tasks not queued after 600 s")
            time.sleep(0.05)
        aborted, fig = _probed(other, rc.abort)
        if not ar.wait(60) or aborted != n:
            raise RuntimeError(f"the abort answered {aborted} of {n}, or the map did not end")
        out: dict[str, Any] = {"abort_s": fig["wall_s"], "other_max_ms": fig["other_max_ms"],
                               "other_p50_ms": fig["other_p50_ms"], "probes": fig["probes"]}
        if requests:
            ids = list(ar.msg_ids)
            steps: list[tuple[str, Callable[[], Any]]] = [
                ("hub_history", rc.hub_history),
                ("db_query of every id", lambda: rc.db_query({"msg_id": {"$in": ids}}, ["msg_id", "status"])),
                ("result_status of every id", lambda: rc.result_status(ids)),
                ("get_result of every id (a third client)", lambda: third.get_result(ids, owner=False).wait(600)),
                (f"resubmit of {n // 5:,}", lambda: rc.resubmit(ids[:n // 5])),
                ("purge_results('all')", lambda: rc.purge_results("all"))]
            out["requests"] = {name: _probed(other, step)[1] for name, step in steps}
            rc.abort()
        other.purge_results("all")
    return out


def _ppe(n: int) -> dict[str, float]:
    with cf.ProcessPoolExecutor(2) as pool:
        holds = [pool.submit(sleep_s, 0.3) for _ in range(2)]
        futures = [pool.submit(noop) for _ in range(n)]
        t0 = time.perf_counter()
        cancelled = sum(f.cancel() for f in futures)
        wall = time.perf_counter() - t0
        cf.wait(holds, 60)
    return {"abort_s": wall, "aborted": cancelled}


def measure(tasks: int, rounds: int, requests: bool = False) -> dict[str, Any]:
    from real_cluster import Cluster
    rows: dict[str, list[dict[str, float]]] = {"sched-lab": [], "ProcessPoolExecutor": []}
    with tempfile.TemporaryDirectory(prefix="sched-lab-bench-abort-") as lab:
        os.environ.setdefault("SCHED_LAB_DIR", lab)
        cluster = Cluster(n=0, profile=f"bench-abort-{os.getpid()}", db="sqlite")
        try:
            cluster.start()
            for _ in range(rounds):
                rows["sched-lab"].append(_ours(cluster, tasks))
                rows["ProcessPoolExecutor"].append(_ppe(tasks))
            extra = _ours(cluster, tasks, requests=True)["requests"] if requests else None
        finally:
            cluster.stop()
    return {"tasks": tasks, "rounds": rows, "requests": extra,
            "median": {peer: {k: statistics.median(r[k] for r in runs) for k in ("abort_s", "other_max_ms",
                                                                                  "other_p50_ms", "probes", "aborted")
                              if k in runs[0]} for peer, runs in rows.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_abort", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=100_000, help="queued tasks to abort (default 100000)")
    p.add_argument("--rounds", type=int, default=3, help="rounds; medians are printed (default 3)")
    p.add_argument("--requests", action="store_true", help="then time the other big requests (one round)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        p.error("--tasks and --rounds must be at least 1")
    result = measure(args.tasks, args.rounds, args.requests)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    ours, ppe = result["median"]["sched-lab"], result["median"]["ProcessPoolExecutor"]
    print(f"abort of {args.tasks:,} queued tasks, medians of {args.rounds}")
    print(f"  sched-lab            {ours['abort_s']:8.2f} s   (another client's queue_status meanwhile: "
          f"slowest {ours['other_max_ms']:.0f} ms, median {ours['other_p50_ms']:.1f} ms)")
    print(f"  ProcessPoolExecutor  {ppe['abort_s']:8.2f} s   (cancel() of queued futures, in-process)")
    print(f"  ratio                {ours['abort_s'] / max(ppe['abort_s'], 1e-9):8.1f}")
    if result["requests"]:
        print(f"\n{'request on ' + format(args.tasks, ',') + ' tasks':<42}{'wall s':>8}{'other: slowest ms':>19}"
              f"{'median ms':>11}")
        for name, fig in result["requests"].items():
            print(f"  {name:<40}{fig['wall_s']:>8.2f}{fig['other_max_ms']:>19.0f}{fig['other_p50_ms']:>11.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
