"""Core throughput: full submit -> dispatch -> finish cycles per second through TaskScheduler.handle.

For every scheme, at 100, 1,000 and 10,000 engines, hwm 0 and 1, a steady state is held: about
0.9 x engines x max(hwm, 1) tasks outstanding; one cycle finishes a random running task
(TaskFinished) and submits a new one (TaskSubmitted, placed at once). Beside it, the peer: the same
workload decided by the scheme's *reference* function (the O(n) list form, as ipyparallel does it)
in a thin loop — engines and loads kept as two lists in least-recently-assigned order, the candidates
(below hwm) filtered per decision, the chosen engine moved to the end, `list.index` to find an engine
on finish. Prints ours, the reference, and the ratio (median of --runs runs). Goal: >= 200,000
cycles/s at 10,000 engines for every scheme (DESIGN §7 needs that headroom for the simulator).

    python benchmarks/bench_core.py            # full table (about 1-2 minutes)
    python benchmarks/bench_core.py --quick    # smoke run (a few seconds)
    python benchmarks/bench_core.py --clock cpu   # rates from CPU time (a busy shared machine)
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from typing import Any

from sched_lab.core import SCHEMES, EngineJoined, Outcome, TaskFinished, TaskScheduler, TaskSpec, TaskSubmitted

GOAL = 200_000
CLOCK = time.perf_counter      # --clock cpu: time.process_time (steadier on a shared, loaded machine)


class NullSink:
    """Discards records (the peer keeps none either)."""

    def add(self, *fields: Any) -> None:
        pass


def _outstanding(engines: int, hwm: int) -> int:
    return max(1, int(0.9 * engines * max(hwm, 1)))


def bench_ours(scheme: str, engines: int, hwm: int, cycles: int, seed: int) -> float:
    """Cycles per second through TaskScheduler.handle."""
    s = TaskScheduler(scheme=scheme, hwm=hwm, rng=random.Random(seed), records=NullSink())
    handle = s.handle
    OK = Outcome.OK
    for e in range(engines):
        handle(EngineJoined(0.0, e))
    pick = random.Random(seed + 1)
    running_ids: list[int] = []
    running_eng: list[Any] = []
    next_id = 0
    for _ in range(_outstanding(engines, hwm)):
        (d,) = handle(TaskSubmitted(0.0, TaskSpec(next_id)))
        running_ids.append(next_id)
        running_eng.append(d.engine_id)
        next_id += 1

    def run(n: int) -> None:
        nonlocal next_id
        rnd = pick.random
        k = len(running_ids)
        now = 0.0
        for _ in range(n):
            i = int(rnd() * k)
            now += 1e-6
            handle(TaskFinished(now, running_ids[i], running_eng[i], 0, OK))
            (d,) = handle(TaskSubmitted(now, TaskSpec(next_id)))
            running_ids[i] = next_id
            running_eng[i] = d.engine_id
            next_id += 1

    run(min(2000, cycles))            # warm up into the steady state
    gc.collect()
    t0 = CLOCK()
    run(cycles)
    return cycles / (CLOCK() - t0)


def bench_reference(scheme: str, engines: int, hwm: int, budget_s: float, seed: int) -> float:
    """Cycles per second of the same workload decided by the reference function over lists."""
    ref = SCHEMES[scheme].reference
    rng = random.Random(seed)
    targets: list[int] = []
    loads: list[int] = []
    for e in range(engines):          # a new engine goes to the head of the line (ipyparallel)
        targets.insert(0, e)
        loads.insert(0, 0)

    def decide() -> int:
        if hwm:
            idx = [i for i, load in enumerate(loads) if load < hwm]
            i = idx[ref([loads[j] for j in idx], rng)]
        else:
            i = ref(loads, rng)
        e = targets.pop(i)
        load = loads.pop(i) + 1
        targets.append(e)             # assignment: most recently used
        loads.append(load)
        return e

    def finish(e: int) -> None:
        loads[targets.index(e)] -= 1  # finishing does not reorder

    k = _outstanding(engines, hwm)
    if k <= engines:
        # the state k decisions from fresh engines reach under leastload/lru: the first k engines of
        # the line take one task each and move to its end (built directly: deciding k times is O(k n))
        running = targets[:k]
        targets[:] = targets[k:] + running
        loads[:] = [0] * (engines - k) + [1] * k
    else:
        running = [decide() for _ in range(k)]
    pick = random.Random(seed + 1)
    k = len(running)

    def run_for(seconds: float, at_least: int) -> tuple[int, float]:
        n = 0
        t0 = CLOCK()
        while True:
            for _ in range(25):
                i = int(pick.random() * k)
                finish(running[i])
                running[i] = decide()
            n += 25
            dt = CLOCK() - t0
            if dt >= seconds and n >= at_least:
                return n, dt

    run_for(0.0, 200)                 # warm up: the scheme's own steady state
    gc.collect()
    n, dt = run_for(budget_s, 50)
    return n / dt


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="a fast smoke run (fewer cycles, one run, 100 and 1,000 engines)")
    ap.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    ap.add_argument("--engines", nargs="*", type=int, default=None)
    ap.add_argument("--hwm", nargs="*", type=int, default=[0, 1])
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--cycles", type=int, default=None, help="timed cycles per run of ours")
    ap.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall (perf_counter, default) or this process's CPU time (process_time)")
    args = ap.parse_args(argv)
    global CLOCK
    CLOCK = time.perf_counter if args.clock == "wall" else time.process_time
    engines = args.engines or ([100, 1_000] if args.quick else [100, 1_000, 10_000])
    runs = args.runs or (1 if args.quick else 3)
    cycles = args.cycles or (3_000 if args.quick else 20_000)
    budget = 0.03 if args.quick else 0.2

    rows = []
    if not args.json:
        print(f"{'scheme':<12} {'engines':>7} {'hwm':>3} {'ours cyc/s':>12} {'ref cyc/s':>11} {'ratio':>8}  goal", flush=True)
    for scheme in args.schemes:
        for n in engines:
            for hwm in args.hwm:
                ours = statistics.median(bench_ours(scheme, n, hwm, cycles, seed=r) for r in range(runs))
                peer = statistics.median(bench_reference(scheme, n, hwm, budget, seed=r) for r in range(runs))
                row = {"scheme": scheme, "engines": n, "hwm": hwm, "ours_cycles_per_s": round(ours),
                       "reference_cycles_per_s": round(peer), "ratio": round(ours / peer, 2)}
                rows.append(row)
                if args.json:
                    continue
                goal = ("ok" if ours >= GOAL else "BELOW") if n >= 10_000 else ""
                print(f"{scheme:<12} {n:>7} {hwm:>3} {ours:>12,.0f} {peer:>11,.0f} {ours / peer:>7.1f}x  {goal}",
                      flush=True)
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
