"""Mean and p99 response against load for every scheme at hwm 0, 1 and 2, light to heavy tails.

Cases (20 engines, Poisson arrivals at per-engine load, mean task length 1): exponential,
lognormal σ=1.5 (c²≈8.5), bounded Pareto α=1.1 (p=1e10; c²≈1e7: look at p50/p99, not the mean)
and α=2.5 (p=1e6; c²≈0.8), and exponential tasks on heterogeneous engines (16 at speed 1, 4 at
speed 4; load is relative to the total capacity 32). Every scheme at one (case, load, seed) sees
the identical workload. Writes `points.csv`, `summary.csv` (mean over seeds with 95% CI),
`spread.csv` (best vs worst scheme at each load) and one `response_vs_load_<case>.png` per case.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Where the schemes differ, and by how much: mean and p99 response vs load, hwm 0/1/2."

CASES = (  # (case name, distribution text, speeds or None)
    ("exp", "exp", None),
    ("lognormal_s1.5", "lognormal:sigma=1.5", None),
    ("bpareto_a1.1", "bpareto:a=1.1,p=1e10", None),
    ("bpareto_a2.5", "bpareto:a=2.5,p=1e6", None),
    ("hetero_exp", "exp", "1x16,4x4"),
)
STABLE_LIMIT = 50.0   # a mean response above this many mean task lengths is reported as overloaded


def plan(quick: bool, seed0: int, schemes: Sequence[str] | None = None,
         modules: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """(case, config) for every point; `schemes` default to every registered scheme."""
    from sched_lab.core import SCHEMES
    from sched_lab.sim import SimConfig, parse_dist, parse_speeds

    loads = (0.5, 0.9) if quick else (0.5, 0.7, 0.9, 0.95)
    seeds = range(seed0, seed0 + (1 if quick else 3))
    base = SimConfig(engines=20, tasks=2_000 if quick else 20_000, warmup=0.1, scheme_modules=modules)
    out = []
    for case, dist, speeds in CASES:
        cfg = replace(base, length=parse_dist(dist), speeds=parse_speeds(speeds) if speeds else None)
        for hwm in (0, 1, 2):
            for load in loads:
                for scheme in schemes or sorted(SCHEMES):
                    for s in seeds:
                        out.append((case, replace(cfg, scheme=scheme, hwm=hwm, load=load, seed=s)))
    return out


def spread(summary: Any) -> Any:
    """Per (case, hwm, load): the best and worst scheme by mean and by p99, and the ratio worst/best."""
    rows = []
    for (case, hwm, load), g in summary.groupby(["case", "hwm", "load"], sort=False):
        row: dict[str, Any] = {"case": case, "hwm": hwm, "load": load}
        for metric in ("mean_response", "p99_response"):
            best, worst = g.loc[g[metric].idxmin()], g.loc[g[metric].idxmax()]
            short = metric.split("_")[0]
            row[f"best_{short}"] = f"{best['scheme']} {best[metric]:.3g}"
            row[f"worst_{short}"] = f"{worst['scheme']} {worst[metric]:.3g}"
            row[f"{short}_ratio"] = worst[metric] / best[metric]
        rows.append(row)
    import pandas as pd

    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("scheme_comparison", DESCRIPTION, argv, uses_sweep=True, takes_schemes=True, extra=lambda p: p.add_argument(
        "--replot", action="store_true", help="redraw the tables and figures from the points.csv already in --out"))
    import pandas as pd

    from sched_lab.apps.plots import response_vs_load_grid
    from sched_lab.records import confidence_halfwidth

    if args.replot:
        points = pd.read_csv(args.out / "points.csv")
    else:
        runs = plan(args.quick, args.seed, args.schemes, args.scheme_modules)
        C.log(f"scheme_comparison: {len(runs)} simulation runs")
        points = C.sweep([cfg for _, cfg in runs], args)
        points.insert(0, "case", [case for case, _ in runs])
        C.save_csv(points, args, "points.csv")
    g = points.groupby(["case", "hwm", "load", "scheme"], sort=False)
    summary = g[["mean_response", "p50_response", "p99_response", "utilization"]].mean()
    summary["mean_ci"] = g["mean_response"].agg(lambda v: confidence_halfwidth(list(v)))
    summary["p99_ci"] = g["p99_response"].agg(lambda v: confidence_halfwidth(list(v)))
    summary = summary.reset_index()
    summary["overloaded"] = summary["mean_response"] > STABLE_LIMIT
    C.save_csv(summary, args, "summary.csv")
    sp = spread(summary)
    C.save_csv(sp, args, "spread.csv")
    for case, dist, speeds in CASES:
        part = points[points["case"] == case]
        what = f"{dist} tasks" + (f", engine speeds {speeds}" if speeds else ", identical engines")
        fig = response_vs_load_grid(part, rows="hwm", title=f"Response vs load by scheme: {what} (20 engines)")
        C.save_fig(fig, args, f"response_vs_load_{case}.png")
    key_load = max(summary["load"])
    key_load = 0.9 if 0.9 in set(summary["load"]) else key_load
    at = summary[summary["load"] == key_load]
    for metric in ("mean_response", "p99_response"):
        pivot = at.pivot_table(index=["case", "hwm"], columns="scheme", values=metric, sort=False).reset_index()
        C.print_table(pivot, f"{metric.replace('_', ' ')} at load {key_load} (mean task length = 1)")
    C.print_table(sp[sp["load"] == key_load], f"best vs worst scheme at load {key_load}")
    pd.set_option("display.width", 200)
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
