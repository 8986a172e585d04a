"""DirectView benchmark (issue 14 item 4): sched-lab's multiengine interface vs ipyparallel's, in the same run.

With 2 engines, for each peer: the median `rc[0].apply_sync(noop)` round trip; the median time to
`push` 1 MB of bytes to one engine and `pull` it back; `scatter` then `gather` of a 200,000-element
list over both engines (elements/s); and a DirectView `map` of 20,000 items (one task per engine,
items/s). Each figure is the median of `--runs` runs, the peers interleaved (each run starts and
stops its own cluster); ratios are ours / peer's (for times lower is better, for rates higher).

    python benchmarks/bench_directview.py [--runs 3] [--quick] [--json]

ipyparallel runs when it is installed (`pip install 'sched-lab[peers]'`); otherwise the table says so.
Task functions live in sched_lab.apps.bench.tasks, imported by every peer.
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

METRICS = (("rt_median_ms", "apply_sync round trip, median (ms)", False),
           ("push_pull_1mb_ms", "push + pull 1 MB, median (ms)", False),
           ("scatter_gather_per_s", "scatter + gather, elements/s", True),
           ("map_per_s", "DirectView map, items/s", True))


def run_once(rc: Any, roundtrips: int, items: int) -> dict[str, float]:
    """Every workload once on a connected client `rc` with 2 engines (ours or ipyparallel's)."""
    from .tasks import ident, noop
    e0 = rc[rc.ids[0]]
    e0.block = True
    dview = rc[:]
    dview.block = True
    for _ in range(20):
        e0.apply_sync(noop)
    rts = []
    for _ in range(roundtrips):
        t = time.perf_counter()
        e0.apply_sync(noop)
        rts.append(time.perf_counter() - t)
    blob = os.urandom(1 << 20)
    pp = []
    for _ in range(max(5, roundtrips // 10)):
        t = time.perf_counter()
        e0.push({"blob": blob})
        back = e0.pull("blob")
        pp.append(time.perf_counter() - t)
        if back != blob:
            raise RuntimeError("push/pull returned different bytes")
    seq = list(range(10 * items))
    t = time.perf_counter()
    dview.scatter("part", seq)
    joined = dview.gather("part")
    sg = time.perf_counter() - t
    if list(joined) != seq:
        raise RuntimeError("gather did not return what was scattered")
    t = time.perf_counter()
    mapped = dview.map(ident, range(items))
    mp = time.perf_counter() - t
    if list(mapped) != list(range(items)):
        raise RuntimeError("map returned a wrong result")
    return {"rt_median_ms": statistics.median(rts) * 1e3, "push_pull_1mb_ms": statistics.median(pp) * 1e3,
            "scatter_gather_per_s": len(seq) / sg, "map_per_s": items / mp}


def _ours(run: int, roundtrips: int, items: int) -> dict[str, float]:
    from real_cluster import Cluster
    cluster = Cluster(n=2, profile=f"bench-directview-{os.getpid()}-{run}")
    try:
        rc = cluster.start()
        rc.wait_for_engines(2, timeout=60)
        return run_once(rc, roundtrips, items)
    finally:
        cluster.stop()


def _ipyparallel(run: int, roundtrips: int, items: int) -> dict[str, float]:
    import ipyparallel as ipp
    os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="bench-ipython-"))
    cluster = ipp.Cluster(n=2, log_level=40)
    rc = None
    try:
        rc = cluster.start_and_connect_sync()
        rc.wait_for_engines(2, timeout=60)
        return run_once(rc, roundtrips, items)
    finally:
        if rc is not None:
            rc.close()
        cluster.stop_cluster_sync()


def table(results: dict[str, dict[str, float]]) -> str:
    """A plain-text table: one row per metric, ours, each peer's, and the ratio ours / peer's."""
    peers = [p for p in results if p != "sched-lab"]
    head = ["metric", "sched-lab"] + [x for p in peers for x in (p, "ratio")]
    rows = [head]
    for key, label, _higher in METRICS:
        row = [label, f"{results['sched-lab'][key]:,.2f}"]
        for p in peers:
            row += [f"{results[p][key]:,.2f}", f"{results['sched-lab'][key] / results[p][key]:.2f}"]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_directview", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per peer (medians are reported)")
    parser.add_argument("--quick", action="store_true", help="fewer round trips and items (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print the medians as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    roundtrips, items = (30, 2000) if args.quick else (200, 20_000)
    peers = {"sched-lab": _ours}
    try:
        import ipyparallel  # noqa: F401
        peers["ipyparallel"] = _ipyparallel
    except ImportError:
        print("[bench] ipyparallel is not installed (pip install 'sched-lab[peers]'); skipping it", file=sys.stderr)
    raw: dict[str, list[dict[str, float]]] = {name: [] for name in peers}
    for run in range(args.runs):
        for name, bench in peers.items():
            print(f"[bench] run {run + 1}/{args.runs}: {name}", file=sys.stderr)
            raw[name].append(bench(run, roundtrips, items))
    results = {name: {key: statistics.median(r[key] for r in runs) for key, _, _ in METRICS}
               for name, runs in raw.items()}
    print(json.dumps({"runs": args.runs, "medians": results}, indent=2) if args.json else table(results))
    return 0
