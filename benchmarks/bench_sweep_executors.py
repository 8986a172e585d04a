"""One sweep run locally and on a Dask LocalCluster: wall time of each, the ratio, identical rows.

The sweep: 6 schemes x loads 0.5/0.7/0.8/0.9 x 3 seeds, 10 engines, --tasks tasks each, hwm 0
(`sched_lab.apps.sweep.run_sweep`). Local = `--jobs` worker processes (ProcessPoolExecutor);
Dask = a `distributed.LocalCluster` with the same number of single-threaded worker processes,
started here and closed at the end, points sent with `executor="dask:ADDRESS"`. Prints the wall
time of each (medians of --repeats), the ratio dask/local, and checks the rows are identical but
for wall_s. Needs the dask extra (`pip install 'sched-lab[dask]'`).

    python benchmarks/bench_sweep_executors.py [--tasks 10000] [--workers 2] [--repeats 3]

Not a test: never part of the pass/fail run.
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", type=int, default=10_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--ray", action="store_true", help="also run the sweep with executor='ray'")
    args = p.parse_args()

    from distributed import LocalCluster

    from sched_lab.apps.sweep import run_sweep, sweep_configs
    from sched_lab.sim import SimConfig
    from sched_lab.sim.distributions import Dist

    schemes = ["leastload", "lru", "plainrandom", "powerofd", "twobin", "weighted"]
    configs = sweep_configs(SimConfig(engines=10, tasks=args.tasks), schemes, [0.5, 0.7, 0.8, 0.9], [0],
                            [Dist("exp")], [0, 1, 2])
    print(f"sweep: {len(configs)} points x {args.tasks} tasks, {args.workers} workers, median of {args.repeats}")
    local_s: list[float] = []
    dask_s: list[float] = []
    ray_s: list[float] = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        executor = f"dask:{cluster.scheduler_address}"
        for _ in range(args.repeats):
            t = time.perf_counter()
            local = run_sweep(configs, jobs=args.workers)
            local_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            remote = run_sweep(configs, executor=executor)
            dask_s.append(time.perf_counter() - t)
            same = local.drop(columns="wall_s").equals(remote.drop(columns="wall_s"))
            if args.ray:
                t = time.perf_counter()
                on_ray = run_sweep(configs, executor="ray")
                ray_s.append(time.perf_counter() - t)
                same = same and local.drop(columns="wall_s").equals(on_ray.drop(columns="wall_s"))
            if not same:
                print("ROWS DIFFER")
                return 1
    lo, da = statistics.median(local_s), statistics.median(dask_s)
    print(f"{'executor':<10} {'wall_s':>8}  runs")
    print(f"{'local':<10} {lo:>8.2f}  {', '.join(f'{v:.2f}' for v in local_s)}")
    print(f"{'dask':<10} {da:>8.2f}  {', '.join(f'{v:.2f}' for v in dask_s)}")
    if ray_s:
        ra = statistics.median(ray_s)
        print(f"{'ray':<10} {ra:>8.2f}  {', '.join(f'{v:.2f}' for v in ray_s)}")
        print(f"ratio ray/local = {ra / lo:.2f}")
    print(f"ratio dask/local = {da / lo:.2f}; rows identical (but wall_s): yes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
