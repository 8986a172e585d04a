"""Simulator throughput: simulated tasks per wall second at 10^4 engines, load 0.9, exp lengths.

For every scheme at hwm 0 and 1, runs sched_lab.sim (decisions by sched_lab.core) and, in the same
process, the peer: an idiomatic SimPy process-per-task model of the same system — a central
`simpy.Resource(capacity=n)` queue (= any scheme at hwm 1, M/M/c) and random dispatch to n
single-server Resources (= plainrandom at hwm 0, n x M/M/1). Ours is timed over the whole
`sched_lab.sim.run` call (workload generation, engine set-up, the run, the records; these plain runs take
the simulator's fast path, sim/fastpath.py, which gives the general driver's records), the peer over
its whole model (its arrivals are drawn inside it). Prints medians of --repeats runs (wall and CPU
time: CPU is steadier on a shared machine), the ratio ours/peer, the mean response of both (a
sanity check: the models agree), the process's peak RSS, and with --split the share of wall time
spent inside the core's `handle`. `--json FILE` also writes every figure.

    python benchmarks/bench_sim.py                 # 2x10^5 tasks (fits 2 cores in a few minutes)
    python benchmarks/bench_sim.py --full          # 10^6 tasks, the DESIGN §7 goal
    python benchmarks/bench_sim.py --schemes leastload,weighted --hwm 0 --repeats 1 --split

Not a test: never part of the pass/fail run.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import resource
import statistics
import sys
import time
from typing import Any

GOAL_TASKS_PER_S = 150_000
GOAL_RSS_MB = 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------------- the peer

def peer_run(engines: int, tasks: int, load: float, seed: int, central: bool) -> tuple[float, float, float]:
    """Idiomatic SimPy: a source process and one process per task. Returns (wall s, CPU s, mean response)."""
    import simpy

    t0, c0 = time.perf_counter(), time.process_time()
    rng = random.Random(seed)
    env = simpy.Environment()
    done: list[tuple[float, float]] = []
    if central:
        pool = simpy.Resource(env, capacity=engines)
    else:
        servers = [simpy.Resource(env, capacity=1) for _ in range(engines)]

    def task(env, server, service):
        submitted = env.now
        with server.request() as req:
            yield req
            yield env.timeout(service)
        done.append((submitted, env.now))

    def source(env):
        rate = load * engines
        for _ in range(tasks):
            yield env.timeout(rng.expovariate(rate))
            server = pool if central else servers[rng.randrange(engines)]
            env.process(task(env, server, rng.expovariate(1.0)))

    env.process(source(env))
    env.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    cut = done[len(done) // 10:]
    return wall, cpu, statistics.fmean(f - s for s, f in cut)


# ---------------------------------------------------------------------------------- ours

def ours_run(scheme: str, hwm: int, engines: int, tasks: int, load: float, seed: int) -> tuple[float, float, float]:
    """One whole `sim.run` (workload generation included). Returns (wall s, CPU s, mean response)."""
    from sched_lab.sim import SimConfig, run

    t0, c0 = time.perf_counter(), time.process_time()
    res = run(SimConfig(scheme=scheme, hwm=hwm, engines=engines, tasks=tasks, load=load, seed=seed, warmup=0.1))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, res.summary().mean_response


def core_share(scheme: str, hwm: int, engines: int, tasks: int, load: float, seed: int) -> float:
    """Fraction of the run's wall time spent inside the core (TaskScheduler.handle on the general path,
    PlainLane.submit/finish on the fast path; one extra, instrumented run)."""
    from sched_lab.core.lane import PlainLane
    from sched_lab.core.scheduler import TaskScheduler
    from sched_lab.sim import SimConfig, run

    spent = [0.0]
    lanes = [PlainLane, *PlainLane.__subclasses__()]        # (leastload has a lane of its own)
    originals = [(TaskScheduler, "handle")] + [(cls, name) for cls in lanes for name in ("submit", "finish")]
    saved = [getattr(cls, name) for cls, name in originals]

    def timed(fn: Any) -> Any:
        def wrapper(self: Any, *args: Any, _clock: Any = time.perf_counter) -> Any:
            t = _clock()
            out = fn(self, *args)
            spent[0] += _clock() - t
            return out
        return wrapper

    for (cls, name), fn in zip(originals, saved):
        setattr(cls, name, timed(fn))
    try:
        res = run(SimConfig(scheme=scheme, hwm=hwm, engines=engines, tasks=tasks, load=load, seed=seed))
    finally:
        for (cls, name), fn in zip(originals, saved):
            setattr(cls, name, fn)
    return spent[0] / res.wall_s


def main(argv: list[str] | None = None) -> int:
    from sched_lab.core import SCHEMES

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", type=int, default=10_000)
    p.add_argument("--tasks", type=int, default=200_000)
    p.add_argument("--full", action="store_true", help="10^6 tasks (the DESIGN §7 goal)")
    p.add_argument("--load", type=float, default=0.9)
    p.add_argument("--schemes", default=",".join(SCHEMES))
    p.add_argument("--hwm", default="0,1")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--split", action="store_true", help="also measure the core's share of the wall time")
    p.add_argument("--no-peer", action="store_true")
    p.add_argument("--json", metavar="FILE", help="also write every figure to FILE (JSON)")
    args = p.parse_args(argv)
    tasks = 1_000_000 if args.full else args.tasks
    n, load = args.engines, args.load
    schemes = [s for s in args.schemes.split(",") if s]
    hwms = [int(h) for h in args.hwm.split(",")]
    print(f"# bench_sim: {n} engines, {tasks} tasks, load {load}, exp lengths, medians of {args.repeats} runs; "
          "tasks/s over the whole run (workload generation included), by wall and by CPU time", flush=True)
    load_before = os.getloadavg()[0]
    report: dict[str, Any] = {"load_average_before": load_before, "engines": n, "tasks": tasks, "load": load, "repeats": args.repeats, "seed": args.seed,
                              "goal_tasks_per_s": GOAL_TASKS_PER_S, "goal_rss_mb": GOAL_RSS_MB, "peer": {}, "ours": []}

    peers: dict[bool, tuple[float, float]] = {}
    if not args.no_peer:
        for central in sorted({h != 0 for h in hwms}):
            gc.collect()
            runs = [peer_run(n, tasks, load, args.seed + r, central) for r in range(args.repeats)]
            wall = statistics.median(w for w, _, _ in runs)
            cpu = statistics.median(c for _, c, _ in runs)
            peers[central] = (tasks / wall, statistics.fmean(m for _, _, m in runs))
            name = "central Resource (M/M/c)" if central else "random dispatch (n x M/M/1)"
            report["peer"][name] = {"tasks_per_s": tasks / wall, "tasks_per_cpu_s": tasks / cpu, "wall_s": wall,
                                    "cpu_s": cpu, "mean_response": peers[central][1], "walls": [r[0] for r in runs]}
            print(f"peer  {name:<28} {tasks / wall:>10,.0f} tasks/s  wall {wall:6.2f}s  "
                  f"({tasks / cpu:,.0f} per CPU s)  mean response {peers[central][1]:.3f}", flush=True)
        print(f"peak RSS after the peer runs: {peak_rss_mb():,.0f} MB", flush=True)

    header = f"{'scheme':<12}{'hwm':>4}{'ours tasks/s':>14}{'wall s':>8}{'per CPU s':>11}{'peer tasks/s':>14}" \
             f"{'ratio':>7}{'T ours':>8}{'T peer':>8}" + ("  core share" if args.split else "")
    print(header)
    rates = []
    for scheme in schemes:
        for hwm in hwms:
            gc.collect()
            runs = [ours_run(scheme, hwm, n, tasks, load, args.seed + r) for r in range(args.repeats)]
            wall = statistics.median(w for w, _, _ in runs)
            cpu = statistics.median(c for _, c, _ in runs)
            rate = tasks / wall
            rates.append(rate)
            peer = peers.get(hwm != 0)
            mean_t = statistics.fmean(m for _, _, m in runs)
            line = (f"{scheme:<12}{hwm:>4}{rate:>14,.0f}{wall:>8.2f}{tasks / cpu:>11,.0f}"
                    + (f"{peer[0]:>14,.0f}{rate / peer[0]:>7.2f}" if peer else f"{'-':>14}{'-':>7}")
                    + f"{mean_t:>8.3f}" + (f"{peer[1]:>8.3f}" if peer else f"{'-':>8}"))
            row: dict[str, Any] = {"scheme": scheme, "hwm": hwm, "tasks_per_s": rate, "tasks_per_cpu_s": tasks / cpu,
                                   "wall_s": wall, "cpu_s": cpu, "walls": [r[0] for r in runs],
                                   "mean_response": mean_t, "ratio_to_peer": rate / peer[0] if peer else None}
            if args.split:
                row["core_share"] = share = core_share(scheme, hwm, n, tasks, load, args.seed)
                line += f"  {share:>10.0%}"
            report["ours"].append(row)
            print(line, flush=True)
    rss = peak_rss_mb()
    report["peak_rss_mb"] = rss
    report["load_average_after"] = os.getloadavg()[0]
    print(f"load average (1 min) before {load_before:.1f}, after {report['load_average_after']:.1f}")
    print(f"peak RSS of the whole benchmark process: {rss:,.0f} MB (goal <= {GOAL_RSS_MB} MB)")
    print(f"ours: min {min(rates):,.0f}, median {statistics.median(rates):,.0f} tasks/s "
          f"(goal >= {GOAL_TASKS_PER_S:,}: {'met' if min(rates) >= GOAL_TASKS_PER_S else 'not met'} by the slowest)")
    if args.json:
        import json
        import platform

        report["python"] = platform.python_version()
        report["when"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
