"""Heterogeneous engines at hwm=1: does it pay to send a task to the fastest idle engine?

Ten engines, five at speed 1 and five at speed 4 (`--speeds 1x5,4x5`), Poisson arrivals at a load
relative to the total capacity (25), exponential tasks of mean length 1 at speed 1, hwm=1 (the
central FIFO queue). Every scheme here places a task only on an idle engine; they differ in *which*
idle engine: `leastload`, `lru`, `plainrandom` and `jiq` ignore speed (leastload takes the least
recently assigned idle engine), `fastest` takes the idle engine with the lowest (load+1)/speed,
i.e. the fastest. Every scheme at one (load, seed) sees the identical workload.
Writes `points.csv`, `summary.csv` (mean over seeds, 95% CI), `penalty.csv` (how much slower each
scheme's mean response is than fastest's, with a CI over seeds of the paired ratio) and
`response_vs_load.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Speed-aware placement on heterogeneous engines (speeds 1x5,4x5) at hwm=1: fastest vs the rest."
SPEEDS = "1x5,4x5"
SCHEMES = ("fastest", "leastload", "lru", "plainrandom", "jiq")
KEY_LOAD = 0.5


def plan(quick: bool, seed0: int, schemes: Sequence[str] = SCHEMES, modules: tuple[str, ...] = ()) -> list[Any]:
    """`schemes` always include fastest (the reference of the penalty table)."""
    from sched_lab.sim import SimConfig, parse_speeds

    loads = (KEY_LOAD,) if quick else (0.3, 0.5, 0.7, 0.9)
    seeds = range(seed0, seed0 + (3 if quick else 8))
    base = SimConfig(speeds=parse_speeds(SPEEDS), hwm=1, tasks=4_000 if quick else 40_000, warmup=0.1,
                     scheme_modules=modules)
    schemes = ["fastest", *[s for s in schemes if s != "fastest"]]
    return [replace(base, scheme=s, load=load, seed=seed) for load in loads for s in schemes for seed in seeds]


def penalty(points: Any) -> Any:
    """Per (load, scheme): mean over seeds of the paired ratio mean_response / fastest's, minus 1, with a 95% CI."""
    import pandas as pd

    from sched_lab.records import confidence_halfwidth

    fast = points[points["scheme"] == "fastest"].set_index(["load", "seed"])["mean_response"]
    rows = []
    for (load, scheme), g in points.groupby(["load", "scheme"], sort=False):
        ratios = [r["mean_response"] / fast[(load, r["seed"])] - 1 for _, r in g.iterrows()]
        rows.append({"load": load, "scheme": scheme, "slower_than_fastest": sum(ratios) / len(ratios),
                     "ci": confidence_halfwidth(ratios), "seeds": len(ratios)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("speed_aware", DESCRIPTION, argv, uses_sweep=True, takes_schemes=True)
    from sched_lab.apps.plots import response_vs_load
    from sched_lab.records import confidence_halfwidth

    configs = plan(args.quick, args.seed, args.schemes or SCHEMES, args.scheme_modules)
    C.log(f"speed_aware: {len(configs)} simulation runs")
    points = C.sweep(configs, args)
    C.save_csv(points, args, "points.csv")
    g = points.groupby(["load", "scheme"], sort=False)
    summary = g[["mean_response", "p50_response", "p99_response", "utilization"]].mean()
    summary["mean_ci"] = g["mean_response"].agg(lambda v: confidence_halfwidth(list(v)))
    summary = summary.reset_index()
    C.save_csv(summary, args, "summary.csv")
    pen = penalty(points)
    C.save_csv(pen, args, "penalty.csv")
    fig = response_vs_load(points, group=("scheme",),
                           title=f"hwm=1, engine speeds {SPEEDS}: mean response vs load (relative to capacity 25)")
    C.save_fig(fig, args, "response_vs_load.png")
    C.print_table(summary, "mean / p50 / p99 response by load and scheme (task length 1 at speed 1)")
    C.print_table(pen[pen["load"] == KEY_LOAD], f"mean response relative to fastest at load {KEY_LOAD} "
                  "(0.48 = 48% slower)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
