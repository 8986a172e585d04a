"""Quick live-cluster figures (issue 4's closing note; the full benchmark is issue 5's bench_live.py).

2 engines on this host, leastload, hwm=1: the median and p99 of 200 sequential `apply_sync` round trips of
a no-op, and tasks/s for a burst of N no-op `apply_async` (submit all, then wait for all); the same
workloads on `concurrent.futures.ProcessPoolExecutor(2)` in the same run, with the ratios.

    python benchmarks/bench_live_quick.py [--tasks 5000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor


def noop():
    return None


def measure(submit_sync, submit_async, wait_all, n_rt: int, n_burst: int) -> tuple[float, float, float]:
    for _ in range(20):
        submit_sync()
    rts = []
    for _ in range(n_rt):
        t = time.perf_counter()
        submit_sync()
        rts.append(time.perf_counter() - t)
    rts.sort()
    t = time.perf_counter()
    futures = [submit_async() for _ in range(n_burst)]
    wait_all(futures)
    rate = n_burst / (time.perf_counter() - t)
    return statistics.median(rts) * 1e3, rts[int(0.99 * len(rts))] * 1e3, rate


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=5000)
    parser.add_argument("--roundtrips", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("SCHED_LAB_DIR", tempfile.mkdtemp(prefix="bench-live-"))
    from real_cluster import Cluster

    ours, peer = [], []
    with Cluster(n=2, profile="bench-quick", db="memory") as rc:
        view = rc.load_balanced_view()
        for _ in range(args.runs):
            ours.append(measure(lambda: view.apply_sync(noop), lambda: view.apply_async(noop),
                                lambda fs: [f.get() for f in fs], args.roundtrips, args.tasks))
    with ProcessPoolExecutor(2) as pool:
        for _ in range(args.runs):
            peer.append(measure(lambda: pool.submit(noop).result(), lambda: pool.submit(noop),
                                lambda fs: [f.result() for f in fs], args.roundtrips, args.tasks))
    med = lambda rows, i: statistics.median(r[i] for r in rows)  # noqa: E731
    print(f"{'metric':<34} {'sched-lab':>10} {'ProcessPool':>12} {'ratio':>7}")
    for i, name in enumerate(("apply_sync round trip, median ms", "apply_sync round trip, p99 ms",
                              f"no-op tasks/s, burst of {args.tasks}")):
        a, b = med(ours, i), med(peer, i)
        print(f"{name:<34} {a:>10.3f} {b:>12.3f} {a / b:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
