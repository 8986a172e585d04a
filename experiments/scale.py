"""How each scheme's response and the simulator's own cost grow from 10 to 10,000 engines.

Poisson arrivals at per-engine load 0.9, exponential tasks (mean 1), every scheme at hwm 0 and 1,
engines 10 → 10,000 (10 → 1,000 with --quick). Tasks per run: max(20,000, 30 per engine). Records
the mean and p99 response and the wall time of each run (simulated tasks per wall second). Note:
with 30 tasks per engine the slow-relaxing hwm=0 schemes (plainrandom, lru, twobin at load 0.9)
are still warming up at 10,000 engines, so their large-n means are below steady state.
Writes `points.csv` and `scale.png`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import _common as C

DESCRIPTION = "Response and simulator cost of every scheme from 10 to 10,000 engines."


def plan(quick: bool, seed: int, schemes: Sequence[str] | None = None, modules: tuple[str, ...] = ()) -> list[Any]:
    """Every size x hwm x scheme (`schemes`, default every registered scheme)."""
    from sched_lab.core import SCHEMES
    from sched_lab.sim import SimConfig

    sizes = (10, 100, 1000) if quick else (10, 100, 1000, 10_000)
    out = []
    for n in sizes:
        tasks = max(3_000, 5 * n) if quick else max(20_000, 30 * n)
        for hwm in (0, 1):
            for scheme in schemes or sorted(SCHEMES):
                out.append(SimConfig(scheme=scheme, hwm=hwm, engines=n, tasks=tasks, load=0.9, seed=seed, warmup=0.1,
                                     scheme_modules=modules))
    return out


def figure(points: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, (scheme, g) in enumerate(points.groupby("scheme", sort=True)):
        for hwm, ls in ((0, "-"), (1, "--")):
            sub = g[g["hwm"] == hwm].sort_values("engines")
            ax1.plot(sub["engines"], sub["mean_response"], ls=ls, marker="o", ms=3, color=f"C{i}",
                     label=f"{scheme} hwm={hwm}")
            ax2.plot(sub["engines"], sub["sim_tasks_per_s"], ls=ls, marker="o", ms=3, color=f"C{i}")
    ax1.set(xscale="log", yscale="log", xlabel="engines", ylabel="mean response (mean task lengths)",
            title="Mean response at load 0.9")
    ax2.set(xscale="log", yscale="log", xlabel="engines", ylabel="simulated tasks per wall second",
            title="Simulator cost (one core per run)")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
    ax1.legend(fontsize=6, ncol=2)
    fig.suptitle("Scale: 10 → 10,000 engines (solid hwm=0, dashed hwm=1)")
    return fig


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("scale", DESCRIPTION, argv, uses_sweep=True, takes_schemes=True)
    configs = plan(args.quick, args.seed, args.schemes, args.scheme_modules)
    C.log(f"scale: {len(configs)} simulation runs")
    points = C.sweep(configs, args)
    points["sim_tasks_per_s"] = points["tasks"] / points["wall_s"]
    C.save_csv(points, args, "points.csv")
    C.save_fig(figure(points), args, "scale.png")
    for metric in ("mean_response", "p99_response", "sim_tasks_per_s"):
        pivot = points.pivot_table(index=["hwm", "scheme"], columns="engines", values=metric).reset_index()
        pivot.columns = [str(c) if not isinstance(c, int) else f"n={c}" for c in pivot.columns]
        C.print_table(pivot, f"{metric.replace('_', ' ')} by engine count (load 0.9)", "{:.4g}" if metric != "sim_tasks_per_s" else "{:.0f}")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
