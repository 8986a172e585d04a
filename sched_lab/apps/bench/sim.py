"""Simulator throughput: simulated tasks per wall second at 10^4 engines, load 0.9, exp lengths.

For every scheme at hwm 0 and 1, runs sched_lab.sim (decisions by sched_lab.core) and, in the same
process, the peer: an idiomatic SimPy process-per-task model of the same system — a central
`simpy.Resource(capacity=n)` queue (= any scheme at hwm 1, M/M/c) and random dispatch to n
single-server Resources (= plainrandom at hwm 0, n x M/M/1). Prints medians of --repeats runs,
the ratio ours/peer, the mean response of both (a sanity check: the models agree), the process's
peak RSS, and with --split the share of wall time spent inside the core's `handle`.

    python benchmarks/bench_sim.py                 # 2x10^5 tasks (fits 2 cores in a few minutes)
    python benchmarks/bench_sim.py --full          # 10^6 tasks, the DESIGN §7 goal
    python benchmarks/bench_sim.py --schemes leastload,weighted --hwm 0 --repeats 1 --split

Not a test: never part of the pass/fail run.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time

GOAL_TASKS_PER_S = 100_000
GOAL_RSS_MB = 1024


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# --------------------------------------------------------------------------------- the peer

def peer_run(engines: int, tasks: int, load: float, seed: int, central: bool) -> tuple[float, float]:
    """Idiomatic SimPy: a source process and one process per task. Returns (wall s, mean response)."""
    import simpy

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
    t0 = time.perf_counter()
    env.run()
    wall = time.perf_counter() - t0
    cut = done[len(done) // 10:]
    return wall, statistics.fmean(f - s for s, f in cut)


# ---------------------------------------------------------------------------------- ours

def ours_run(scheme: str, hwm: int, engines: int, tasks: int, load: float, seed: int) -> tuple[float, float]:
    from sched_lab.sim import SimConfig, run

    res = run(SimConfig(scheme=scheme, hwm=hwm, engines=engines, tasks=tasks, load=load, seed=seed, warmup=0.1))
    return res.wall_s, res.summary().mean_response


def core_share(scheme: str, hwm: int, engines: int, tasks: int, load: float, seed: int) -> float:
    """Fraction of the run's wall time spent inside TaskScheduler.handle (one extra, instrumented run)."""
    from sched_lab.core.scheduler import TaskScheduler
    from sched_lab.sim import SimConfig, run

    spent = [0.0]
    original = TaskScheduler.handle

    def timed(self, event, _clock=time.perf_counter):
        t = _clock()
        out = original(self, event)
        spent[0] += _clock() - t
        return out

    TaskScheduler.handle = timed
    try:
        res = run(SimConfig(scheme=scheme, hwm=hwm, engines=engines, tasks=tasks, load=load, seed=seed))
    finally:
        TaskScheduler.handle = original
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
    args = p.parse_args(argv)
    tasks = 1_000_000 if args.full else args.tasks
    n, load = args.engines, args.load
    schemes = [s for s in args.schemes.split(",") if s]
    hwms = [int(h) for h in args.hwm.split(",")]
    print(f"# bench_sim: {n} engines, {tasks} tasks, load {load}, exp lengths, medians of {args.repeats} runs",
          flush=True)

    peers: dict[bool, tuple[float, float]] = {}
    if not args.no_peer:
        for central in sorted({h != 0 for h in hwms}):
            gc.collect()
            runs = [peer_run(n, tasks, load, args.seed + r, central) for r in range(args.repeats)]
            wall = statistics.median(w for w, _ in runs)
            peers[central] = (tasks / wall, statistics.fmean(m for _, m in runs))
            name = "central Resource (M/M/c)" if central else "random dispatch (n x M/M/1)"
            print(f"peer  {name:<28} {tasks / wall:>10,.0f} tasks/s  wall {wall:6.2f}s  "
                  f"mean response {peers[central][1]:.3f}", flush=True)
        print(f"peak RSS after the peer runs: {peak_rss_mb():,.0f} MB", flush=True)

    header = f"{'scheme':<12}{'hwm':>4}{'ours tasks/s':>14}{'wall s':>8}{'peer tasks/s':>14}{'ratio':>7}" \
             f"{'T ours':>8}{'T peer':>8}" + ("  core share" if args.split else "")
    print(header)
    rates = []
    for scheme in schemes:
        for hwm in hwms:
            gc.collect()
            runs = [ours_run(scheme, hwm, n, tasks, load, args.seed + r) for r in range(args.repeats)]
            wall = statistics.median(w for w, _ in runs)
            rate = tasks / wall
            rates.append(rate)
            peer = peers.get(hwm != 0)
            line = (f"{scheme:<12}{hwm:>4}{rate:>14,.0f}{wall:>8.2f}"
                    + (f"{peer[0]:>14,.0f}{rate / peer[0]:>7.2f}" if peer else f"{'-':>14}{'-':>7}")
                    + f"{statistics.fmean(m for _, m in runs):>8.3f}" + (f"{peer[1]:>8.3f}" if peer else f"{'-':>8}"))
            if args.split:
                line += f"  {core_share(scheme, hwm, n, tasks, load, args.seed):>10.0%}"
            print(line, flush=True)
    rss = peak_rss_mb()
    print(f"peak RSS of the whole benchmark process: {rss:,.0f} MB (goal <= {GOAL_RSS_MB} MB)")
    print(f"ours: min {min(rates):,.0f}, median {statistics.median(rates):,.0f} tasks/s "
          f"(goal >= {GOAL_TASKS_PER_S:,}: {'met' if min(rates) >= GOAL_TASKS_PER_S else 'not met'} by the slowest)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
