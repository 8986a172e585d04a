"""`sched-lab demo` and `sched-lab bench`: the tour of the lab and the live-cluster benchmark.

Each command has its own `_register_<name>(subparsers)`; `register` calls them all. Light to import:
the benchmark is loaded only when the command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

def register(subparsers: Any) -> None:
    """Add this module's subcommands to the sched-lab command line."""
    _register_demo(subparsers)
    _register_bench(subparsers)


# ------------------------------------------------------------------------------------- demo

def _demo(args: argparse.Namespace) -> int:
    from .demo import main as demo_main

    return demo_main(args)


def _register_demo(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo", help="live cluster vs simulator: two schemes, a report with figures (under a minute)",
        description="Start a local cluster, replay a short Poisson workload of sleep tasks under two schemes, "
        "simulate the same schemes at 100x the scale, and write a Markdown report with CDF figures and a table.")
    parser.add_argument("--out", default="sched-lab-demo", metavar="DIR", help="report directory (default ./sched-lab-demo)")
    parser.add_argument("--schemes", default="leastload,plainrandom", metavar="S,..", help="schemes (default leastload,plainrandom)")
    parser.add_argument("--engines", type=int, default=4, metavar="N", help="live engines (default 4)")
    parser.add_argument("--tasks", type=int, default=200, metavar="M", help="live tasks per scheme (default 200)")
    parser.add_argument("--hwm", type=int, default=0, help="high-water mark (default 0: dispatch at once, schemes differ)")
    parser.add_argument("--load", type=float, default=0.7, help="per-engine load (default 0.7)")
    parser.add_argument("--seed", type=int, default=1, help="workload seed (default 1)")
    parser.set_defaults(func=_demo)


# ------------------------------------------------------------------------------------ bench

def _bench(args: argparse.Namespace) -> int:
    from .bench import live as bench
    try:
        return bench.run(args)
    except Exception as exc:   # a failed run is exit 1 with a message, not a traceback
        print(f"bench: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _register_bench(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="live-cluster benchmark vs ProcessPoolExecutor and ipyparallel",
                                   description="Live-cluster benchmark (benchmarks/bench_live.py): sched-lab vs "
                                   "ProcessPoolExecutor(2) and ipyparallel, medians of runs, ratios.")
    bench_options(parser)
    parser.set_defaults(func=_bench)


def bench_options(parser: argparse.ArgumentParser) -> None:
    """The options of `sched-lab bench` (the same as benchmarks/bench_live.py's)."""
    parser.add_argument("--quick", action="store_true", help="small workloads, 1 run, no ipyparallel (a smoke run)")
    parser.add_argument("--runs", type=int, default=None, help="runs per peer (median taken; default 3, quick 1)")
    parser.add_argument("--peers", default=None,
                        help="comma-separated: ppe, mp, ipyparallel, dask, ray (default: all that are installed; "
                             "quick: ppe)")
    parser.add_argument("--by-value", action="store_true",
                        help="also run every peer with the task functions defined in __main__ (shipped by value)")
    parser.add_argument("--db", choices=("sqlite", "memory"), default="sqlite", help="sched-lab task database")
    parser.add_argument("--hwm", type=int, default=1, help="sched-lab high-water mark (default 1, the default)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the lognormal durations")
    parser.add_argument("--cpus", default=None, metavar="LIST",
                        help="pin the run to these CPUs, every peer's processes included (e.g. 0: the client, the "
                             "controller, the engines and the pool's workers share one core); default: not pinned")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--markdown", action="store_true", help="print a README table")
