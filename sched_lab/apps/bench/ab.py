"""Two source trees side by side on one host (issue 15): is a change faster, measured so the VM's drift cancels.

How this works. This VM's speed drifts 1.5-2.5x within minutes, so two benchmark runs minutes apart cannot
tell a 5-10 % change from noise. Here the two trees each run a 2-engine cluster (hwm=1, SQLite, module
functions) at the same time — each cluster's controller, nannies and workers import their own tree (started
from it, with it on PYTHONPATH: `python -m` puts the working directory first; checked before each cluster
starts); the client is this process, the checkout's — and the clusters take turns in short blocks, the
order alternating: `--round-trips` sequential `apply_sync` (the block's median round trip) and the CPU of that
cluster's processes per round trip (client excluded), then, if asked, a burst of `--burst` no-op `apply_async`
(tasks/s, cluster CPU per task) and `--sleep-tasks` tasks sleeping 1 ms (efficiency: n x measured sleep / 2 /
makespan). A figure is the median over blocks; a ratio (new / base) is the median of the blocks' ratios, printed
with its quartiles (the spread says how far to trust it). `--base REV` is checked out into a temporary git
worktree, removed at the end; the new tree is `--new` (default: this checkout's working tree, uncommitted
changes included).

    python benchmarks/bench_ab.py --base REV [--new DIR] [--blocks 16] [--round-trips 400] [--burst 0]
                                  [--sleep-tasks 0] [--json FILE] [--base-args ARGS] [--new-args ARGS]

`--base-args` / `--new-args` add controller options to one side (e.g. `--base HEAD --new-args=--pull`: the same
code with and without pulling).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .live import descendants_cpu_s, measured_sleep_s, sleep_efficiency, time_round_trips
from .live_peers import task_functions

REPO = Path(__file__).resolve().parents[3]
METRICS = {"rt_us": "apply_sync round trip, block median (µs)", "cpu_rt_us": "cluster CPU per round trip (µs)",
           "burst_per_s": "no-op burst (tasks/s)", "cpu_burst_us": "cluster CPU per burst task (µs)",
           "efficiency": "1 ms tasks: efficiency"}


@contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """`rev` checked out (detached) in a temporary git worktree of this repository; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="sched-lab-ab-"))
    path = tmp / "base"
    res = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(path), rev],
                         capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        tmp.rmdir()
        raise SystemExit(f"bench_ab: cannot check out {rev!r}: {res.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(path)], capture_output=True,
                       timeout=120)
        subprocess.run(["git", "-C", str(REPO), "worktree", "prune"], capture_output=True, timeout=120)
        if tmp.exists() and not any(tmp.iterdir()):
            tmp.rmdir()


class Side:
    """One tree's running cluster (its processes import `tree`)."""

    def __init__(self, name: str, tree: Path, controller_args: list[str] | None = None):
        self.name, self.tree = name, tree
        self.controller_args = controller_args or []
        self.cluster: Any = None
        self.view: Any = None
        self.imports: str | None = None                    # the tree a process started like the cluster's imports

    def start(self) -> None:
        from real_cluster import Cluster

        old, cwd = os.environ.get("PYTHONPATH"), os.getcwd()
        os.environ["PYTHONPATH"] = str(self.tree)          # what the cluster's processes import; and their working
        os.chdir(self.tree)                                 # directory, which `python -m` puts before PYTHONPATH
        try:
            found = subprocess.run([sys.executable, "-c", "import real_cluster, sys; sys.stdout.write("
                                    "real_cluster.__file__)"], capture_output=True, text=True, timeout=60)
            self.imports = str(Path(found.stdout).resolve().parents[1]) if found.returncode == 0 else None
            if self.imports != str(self.tree.resolve()):
                raise SystemExit(f"bench_ab: a process given PYTHONPATH={self.tree} imports real_cluster from "
                                 f"{found.stdout or found.stderr.strip()!r}, not from that tree")
            self.cluster = Cluster(n=2, profile=f"ab-{self.name}-{os.getpid()}", db="sqlite", hwm=1, detach=True,
                                   controller_args=self.controller_args)  # (detach: no --owner-pid, which an older
                                                                          # tree's controller lacks; `stop`)
            self.view = self.cluster.start().load_balanced_view()
        finally:
            os.chdir(cwd)
            if old is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = old

    def pull_stats(self) -> dict[str, int] | None:
        """The controller's pulling counts (`--pull`; empty without it); None from a tree that has none."""
        try:
            return self.cluster.client.pull_stats()
        except Exception:                       # (an older tree's controller does not know the request)
            return None

    def pids(self) -> set[int]:
        procs = [self.cluster.controller, *self.cluster.engines] if self.cluster is not None else []
        return {p.pid for p in procs if p is not None}

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def _cpu_s(other: Side) -> float:
    """CPU seconds of this process's descendants but `other`'s cluster: the side being timed."""
    return sum(descendants_cpu_s(other.pids()).values())


def _wait_all(results: list[Any]) -> None:
    for ar in results:
        ar.get(120)


def block(side: Side, other: Side, args: argparse.Namespace, sleep_s: float, fns: Any) -> dict[str, float]:
    """One turn of `side`: every asked-for workload once (live.py's timing helpers; CPU: the cluster's alone)."""
    v = side.view
    out: dict[str, float] = {}
    cpu0 = _cpu_s(other)
    rts = time_round_trips(v.apply_sync, fns.noop, args.round_trips, warm_up=0)
    out["cpu_rt_us"] = (_cpu_s(other) - cpu0) / args.round_trips * 1e6
    out["rt_us"] = statistics.median(rts) * 1e6
    if args.burst:
        cpu0, t = _cpu_s(other), time.perf_counter()
        _wait_all([v.apply_async(fns.noop) for _ in range(args.burst)])
        out["burst_per_s"] = args.burst / (time.perf_counter() - t)
        out["cpu_burst_us"] = (_cpu_s(other) - cpu0) / args.burst * 1e6
    if args.sleep_tasks:
        out["efficiency"] = sleep_efficiency(v.apply_async, _wait_all, fns.sleep_s, args.sleep_tasks, sleep_s)
    return out


def summarize(blocks: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Per metric: the median of each side and the median and quartiles of the blocks' new/base ratios (None when no
    block's base figure is above 0: CPU is counted in clock ticks, and a short block may take none)."""
    out: dict[str, dict[str, Any]] = {}
    for k in METRICS:
        pairs = [(b["base"][k], b["new"][k]) for b in blocks if k in b["base"]]
        if not pairs:
            continue
        ratios = [n / b for b, n in pairs if b > 0]
        quartiles = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else ratios * 3
        out[k] = {"base": statistics.median(b for b, _ in pairs), "new": statistics.median(n for _, n in pairs),
                  "ratio": statistics.median(ratios) if ratios else None,
                  "quartiles": [quartiles[0], quartiles[2]] if ratios else None}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_ab", description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, metavar="REV", help="the git revision to compare against")
    parser.add_argument("--new", default=str(REPO), metavar="DIR", help="the new tree (default: this checkout)")
    parser.add_argument("--blocks", type=int, default=16, help="turns per side (default 16)")
    parser.add_argument("--round-trips", type=int, default=400, help="apply_sync per block (default 400)")
    parser.add_argument("--burst", type=int, default=0, help="no-op tasks per block's burst (default 0: none)")
    parser.add_argument("--sleep-tasks", type=int, default=0, help="1 ms tasks per block (default 0: none)")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the blocks and the summary here")
    parser.add_argument("--base-args", default="", metavar="ARGS",
                        help="extra controller options for the base side, e.g. --base-args=--no-pull (split on spaces)")
    parser.add_argument("--new-args", default="", metavar="ARGS",
                        help="extra controller options for the new side, e.g. --new-args=--pull (split on spaces)")
    args = parser.parse_args(argv)
    if args.blocks < 1 or args.round_trips < 1 or args.burst < 0 or args.sleep_tasks < 0:
        parser.error("--blocks and --round-trips must be at least 1; --burst and --sleep-tasks at least 0")
    new = Path(args.new).resolve()
    if not (new / "real_cluster" / "__init__.py").is_file():
        parser.error(f"--new {args.new!r} is not a sched-lab source tree (no real_cluster/ in it)")
    sleep_s = measured_sleep_s() if args.sleep_tasks else 0.001
    blocks: list[dict[str, dict[str, float]]] = []
    with worktree(args.base) as base_tree, tempfile.TemporaryDirectory(prefix="sched-lab-ab-lab-") as lab:
        os.environ["SCHED_LAB_DIR"] = lab
        sides = {"base": Side("base", base_tree, args.base_args.split()),
                 "new": Side("new", new, args.new_args.split())}
        fns = task_functions("module")
        try:
            for side in sides.values():
                side.start()
                time_round_trips(side.view.apply_sync, fns.noop, 0, warm_up=100)   # imports, caches, the function
            for i in range(args.blocks):
                order = ("base", "new") if i % 2 == 0 else ("new", "base")
                row = {}
                for name in order:
                    other = sides["new" if name == "base" else "base"]
                    row[name] = block(sides[name], other, args, sleep_s, fns)
                blocks.append(row)
                print(f"[ab] block {i + 1}/{args.blocks}: " + "; ".join(
                    f"{name} " + ", ".join(f"{k} {v:.4g}" for k, v in row[name].items()) for name in ("base", "new")),
                    file=sys.stderr, flush=True)
            pulled = {name: side.pull_stats() for name, side in sides.items()}
        finally:
            for side in sides.values():
                side.stop()
    summary = summarize(blocks)
    print(f"base {args.base} vs new {args.new}: {args.blocks} blocks, medians; ratio = new / base (quartiles)")
    print(f"{'':42} {'base':>10} {'new':>10} {'ratio':>7}  quartiles")
    for k, s in summary.items():
        spread = "" if s["ratio"] is None else f"{s['quartiles'][0]:.3f}-{s['quartiles'][1]:.3f}"
        ratio = "n/a" if s["ratio"] is None else f"{s['ratio']:.3f}"
        print(f"{METRICS[k]:42} {s['base']:10.4g} {s['new']:10.4g} {ratio:>7}  {spread}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"blocks": blocks, "summary": summary, "argv": sys.argv[1:] if argv is None else argv,
                       "base": args.base, "pull_stats": pulled,
                       "imports": {name: side.imports for name, side in sides.items()},
                       "when": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, fh, indent=1)
    return 0
