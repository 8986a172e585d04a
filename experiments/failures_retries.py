"""Engine failures against retries: completion, wasted work and the response tail.

20 engines, Poisson arrivals at load 0.7, exponential tasks (mean 1). Each engine fails after
Exp(MTBF) of up-time and is back after Exp(MTTR=1); the tasks it held (running, and with hwm=0
also queued on it) are lost and, with retries left, run again elsewhere. Grid: MTBF (in mean task
lengths; inf = no failures) × retries 0/1/3 × (leastload hwm=1, leastload hwm=0). Per run:
completion (tasks whose final attempt succeeded / tasks), wasted work (engine time spent on
attempts that did not succeed / all engine time; the core does not learn when a lost attempt
started, so it is reconstructed: max(dispatch, the end of the previous attempt on that engine) —
exact here, where there is no network latency and an engine runs its tasks in dispatch order), attempts per task, mean and p99 response of
the completed tasks. Writes `points.csv`, `summary.csv` and `failures_retries.png`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Engine MTBF vs retries: completion, wasted work, response tail."
MTTR = 1.0


def plan(quick: bool, seed0: int) -> list[Any]:
    from sched_lab.sim import SimConfig

    mtbfs = (math.inf, 100.0, 10.0) if quick else (math.inf, 1000.0, 300.0, 100.0, 30.0, 10.0)
    seeds = range(seed0, seed0 + (1 if quick else 3))
    base = SimConfig(scheme="leastload", engines=20, tasks=2_000 if quick else 20_000, load=0.7, mttr=MTTR,
                     warmup=0.1)
    return [replace(base, hwm=hwm, mtbf=None if math.isinf(m) else m, retries=r, seed=s)
            for hwm in (1, 0) for m in mtbfs for r in (0, 1, 3) for s in seeds]


def point(config: Any) -> dict[str, Any]:
    """One run -> completion, wasted work, attempts and response figures (runs in a worker process)."""
    import numpy as np

    from sched_lab.sim import run

    result = run(config)
    df = result.dataframe()
    df = df[df["dispatched_at"].notna() & df["engine_id"].notna()].sort_values(["engine_id", "dispatched_at"])
    started = df["started_at"].to_numpy(float)
    previous_end = df.groupby("engine_id")["finished_at"].shift(1).to_numpy(float)
    guess = np.fmax(df["dispatched_at"].to_numpy(float), np.nan_to_num(previous_end, nan=-np.inf))
    started = np.where(np.isnan(started), np.minimum(guess, df["finished_at"].to_numpy(float)), started)
    busy = df["finished_at"].to_numpy(float) - started
    wasted = busy[(df["outcome"].astype(str) != "ok").to_numpy()].sum() / busy.sum()
    s = result.summary()
    return {"scheme": config.scheme, "hwm": config.hwm, "mtbf": config.mtbf if config.mtbf else math.inf,
            "retries": config.retries, "seed": config.seed, "tasks": result.n_tasks,
            "completion": result.n_ok / result.n_tasks, "wasted_work": float(wasted),
            "attempts_per_task": len(df) / result.n_tasks, "mean_response": s.mean_response,
            "p99_response": s.p99_response, "wall_s": result.wall_s}


def figure(summary: Any) -> Any:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 3.9), layout="constrained")
    axes = fig.subplots(1, 3)
    for (hwm, retries), g in summary.groupby(["hwm", "retries"], sort=True):
        g = g.sort_values("mtbf")
        x = g["mtbf"].replace(math.inf, 3e4)
        style = dict(marker="o", ms=3, ls="-" if hwm == 1 else "--", color=f"C{[0, 1, 3].index(retries)}",
                     label=f"retries={retries}, hwm={hwm}")
        axes[0].plot(x, 1 - g["completion"], **style)
        axes[1].plot(x, g["wasted_work"], **style)
        axes[2].plot(x, g["p99_response"], **style)
    titles = ("Tasks lost (1 − completion)", "Wasted engine time (fraction)", "p99 response of completed tasks")
    ylabels = ("fraction of tasks failed", "fraction of busy time", "p99 response (mean task lengths)")
    for ax, t, yl in zip(axes, titles, ylabels):
        ax.set(xscale="log", xlabel="engine MTBF (mean task lengths; right end = no failures)", ylabel=yl, title=t)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_yscale("symlog", linthresh=1e-4)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Failures vs retries: 20 engines, load 0.7, exp tasks, MTTR={MTTR:g}, leastload")
    return fig


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("failures_retries", DESCRIPTION, argv, uses_sweep=True)
    configs = plan(args.quick, args.seed)
    C.log(f"failures_retries: {len(configs)} simulation runs")
    points = C.map_points(point, configs, args)
    C.save_csv(points, args, "points.csv")
    keys = ["scheme", "hwm", "mtbf", "retries"]
    summary = points.groupby(keys, sort=False)[["completion", "wasted_work", "attempts_per_task", "mean_response",
                                                 "p99_response"]].mean().reset_index()
    C.save_csv(summary, args, "summary.csv")
    C.save_fig(figure(summary), args, "failures_retries.png")
    C.print_table(summary, "completion, wasted work and response by MTBF and retries (mean over seeds)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
