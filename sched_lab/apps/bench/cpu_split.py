"""Where the CPU of a no-op task goes, process by process (issues 10 and 15).

One sched-lab cluster (2 engines, the defaults: hwm=1, SQLite; `--hwm N` another high-water mark) runs bursts
of no-op `apply_async` (with `--round-trip`: the same number of sequential `apply_sync`, each waiting for its answer);
each burst reads the user+system CPU of every process of the tree from /proc before and after (after a request to
the controller, which waits for the burst's records to commit) and prints µs per task by role: the client (this
process), the controller, the nannies, the workers.
ProcessPoolExecutor (2 workers) runs the same bursts beside it, split into its parent and workers.
Per-process CPU is far less sensitive to a loaded host than wall time, so this is the figure to
steer by when the machine is shared; medians over rounds.

    python -m sched_lab.apps.bench.cpu_split [--tasks 10000] [--rounds 3] [--by-value [--doc-kb K]] [--round-trip]
        [--hwm N] [--json]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any, Callable

from .live import descendants_cpu_s
from .live_peers import task_functions

ROLES = ("client", "controller", "nanny", "worker")


def _role(cmdline: str) -> str:
    if "controller_app" in cmdline:
        return "controller"
    if "real_cluster.engine" in cmdline:
        return "nanny"
    return "worker"             # real_cluster.worker, or a forked ProcessPoolExecutor worker


def tree_cpu_by_role() -> dict[str, float]:
    """User+system CPU seconds of this process ("client") and its live descendants, summed by role."""
    t = os.times()
    out = dict.fromkeys(ROLES, 0.0)
    out["client"] = t.user + t.system
    for pid, cpu_s in descendants_cpu_s().items():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            cmd = ""
        out[_role(cmd)] += cpu_s
    return out


def _cpu_of_tasks(submit: Callable[[], Any], n: int, sequential: bool = False,
                  settle: Callable[[], Any] | None = None) -> tuple[float, dict[str, float]]:
    """(tasks/s, µs of CPU per task by role) of `n` tasks: submitted at once, or one at a time (`sequential`).
    `settle` is called before the CPU is read the second time (not timed): the cluster's commit of the tasks' records
    counts among their CPU, not in the next peer's window (it used to land there: 10-20 ms of the idle controller)."""
    before, t = tree_cpu_by_role(), time.perf_counter()
    if sequential:
        for _ in range(n):
            submit().result(60)
    else:
        for fut in [submit() for _ in range(n)]:
            fut.result(60)
    dt = time.perf_counter() - t
    if settle is not None:
        settle()
    after = tree_cpu_by_role()
    return n / dt, {r: (after[r] - before[r]) / n * 1e6 for r in ROLES}


def padded_noop(kb: int) -> Callable[[], None]:
    """A no-op defined in `__main__` whose docstring is `kb` KiB (cloudpickle ships it: a function that big)."""
    main = sys.modules["__main__"].__dict__
    exec(compile("def noop_padded():\n    return None\n", "<__main__ padded no-op>", "exec"), main)
    f = main["noop_padded"]
    f.__doc__ = "x" * (kb << 10)
    return f


def measure(tasks: int, rounds: int, mode: str, sequential: bool = False, hwm: int = 1,
            doc_kb: int = 0) -> dict[str, Any]:
    """Per round and peer: tasks/s and µs of CPU per task by role; medians over rounds."""
    from real_cluster import Cluster
    fns = task_functions(mode)
    if doc_kb:
        fns.noop = padded_noop(doc_kb)
    rows: dict[str, list[tuple[float, dict[str, float]]]] = {"sched-lab": [], "ProcessPoolExecutor": []}
    with tempfile.TemporaryDirectory(prefix="sched-lab-cpu-split-") as lab:
        os.environ.setdefault("SCHED_LAB_DIR", lab)
        cluster = Cluster(n=2, profile=f"cpu-split-{os.getpid()}", db="sqlite", hwm=hwm)
        try:
            rc = cluster.start()
            view = rc.load_balanced_view()
            with cf.ProcessPoolExecutor(2) as pool:
                for _ in range(200):                     # warm both: imports, caches, the function once
                    view.apply_sync(fns.noop)
                pool.submit(fns.noop).result()
                for _ in range(rounds):
                    rows["sched-lab"].append(_cpu_of_tasks(lambda: view.apply_async(fns.noop), tasks, sequential,
                                                           rc.queue_status))   # (a request waits for the commit)
                    rows["ProcessPoolExecutor"].append(_cpu_of_tasks(lambda: pool.submit(fns.noop), tasks, sequential))
        finally:
            cluster.stop()
    return {peer: {"tasks_per_s": statistics.median(r[0] for r in runs),
                   "cpu_us_per_task": {role: statistics.median(r[1][role] for r in runs) for role in ROLES}}
            for peer, runs in rows.items()}


def _print(result: dict[str, Any], sequential: bool = False) -> None:
    ours, theirs = result["sched-lab"], result["ProcessPoolExecutor"]
    print(f"{'CPU µs per round trip' if sequential else 'CPU µs per no-op task':<22}{'sched-lab':>12}{'PPE':>12}")
    for role in ROLES:
        print(f"{role:<22}{ours['cpu_us_per_task'][role]:>12.1f}{theirs['cpu_us_per_task'][role]:>12.1f}")
    tot_o, tot_t = sum(ours["cpu_us_per_task"].values()), sum(theirs["cpu_us_per_task"].values())
    print(f"{'total':<22}{tot_o:>12.1f}{tot_t:>12.1f}   ratio {tot_o / tot_t:.2f}")
    print(f"{'tasks/s':<22}{ours['tasks_per_s']:>12,.0f}{theirs['tasks_per_s']:>12,.0f}   "
          f"ratio {ours['tasks_per_s'] / theirs['tasks_per_s']:.2f}")
    if sequential:
        print(f"{'round trip µs':<22}{1e6 / ours['tasks_per_s']:>12.0f}{1e6 / theirs['tasks_per_s']:>12.0f}   "
              f"ratio {theirs['tasks_per_s'] / ours['tasks_per_s']:.2f}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_cpu_split", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=10_000, help="no-op tasks per burst (default 10000)")
    p.add_argument("--rounds", type=int, default=3, help="bursts per peer; medians are printed (default 3)")
    p.add_argument("--by-value", action="store_true", help="the task function defined in __main__ (shipped by value)")
    p.add_argument("--round-trip", action="store_true",
                   help="sequential apply_sync (each waits for its answer) instead of a burst")
    p.add_argument("--hwm", type=int, default=1, help="sched-lab's high-water mark (default 1; 0 = unlimited)")
    p.add_argument("--doc-kb", type=int, default=0, metavar="K",
                   help="with --by-value: give the no-op a K KiB docstring (a function K KiB bigger to ship)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.tasks < 1 or args.rounds < 1:
        p.error("--tasks and --rounds must be at least 1")
    if args.hwm < 0:
        p.error("--hwm must be 0 (unlimited) or more")
    if args.doc_kb < 0 or (args.doc_kb and not args.by_value):
        p.error("--doc-kb is a size in KiB (0 or more) and needs --by-value")
    result = measure(args.tasks, args.rounds, "by-value" if args.by_value else "module", args.round_trip, args.hwm,
                     args.doc_kb)
    if args.json:
        json.dump(result | {"round_trip": args.round_trip, "hwm": args.hwm, "doc_kb": args.doc_kb}, sys.stdout,
                  indent=2)
        print()
    else:
        _print(result, args.round_trip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
