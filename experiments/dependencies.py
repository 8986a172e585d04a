"""DAG workloads under each scheme: makespan against the critical-path bound.

A batch of tasks (all submitted at t=0; exponential lengths, mean 1) wired as chains (length 5),
fork-join (width 8) or random DAGs (each task, with probability 0.5, depends on 2 of the 20 tasks
before it; the full run adds a variant where half the edges are also `follow` location
dependencies), on 8 engines, every scheme at hwm 0 and 1. Lower bound on the makespan:
max(total work / engines, critical path), the critical path computed from the same task lengths.
Writes `points.csv`, `summary.csv` and `dependencies.png`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Chains, fork-join and random DAGs under each scheme: makespan vs the critical-path bound."
ENGINES = 8


def plan(quick: bool, seed0: int) -> list[Any]:
    from sched_lab.core import SCHEMES
    from sched_lab.sim import DagSpec, SimConfig

    dags = ["chains:length=5", "forkjoin:width=8", "random:parents=2,window=20,p=0.5"]
    if not quick:
        dags.append("random:parents=2,window=20,p=0.5,follow=0.5")
    seeds = range(seed0, seed0 + (1 if quick else 3))
    base = SimConfig(engines=ENGINES, tasks=300 if quick else 2_000, batch=True, load=None, warmup=0.0)
    return [replace(base, dag=DagSpec.parse(d), scheme=s, hwm=h, seed=seed)
            for d in dags for h in (0, 1) for s in sorted(SCHEMES) for seed in seeds]


def critical_path(workload: Any) -> float:
    """Longest chain of task lengths through the after/follow edges (tasks depend only on earlier ones)."""
    work = workload.work.tolist()
    finish = [0.0] * len(work)
    for i, w in enumerate(work):
        ex = workload.extras.get(i)
        start = max((finish[p] for p in (*ex.after, *ex.follow)), default=0.0) if ex else 0.0
        finish[i] = start + w
    return max(finish)


def point(config: Any) -> dict[str, Any]:
    from sched_lab.sim import run

    result = run(config)
    s = result.summary()
    cp = critical_path(result.workload)
    work_bound = float(result.workload.work.sum()) / config.engines
    bound = max(cp, work_bound)
    return {"dag": f"{config.dag.kind}" + (":follow" if dict(config.dag.params)["follow"] else ""),
            "scheme": config.scheme, "hwm": config.hwm, "seed": config.seed, "tasks": result.n_tasks,
            "ok": result.n_ok, "makespan": s.makespan, "critical_path": cp, "work_bound": work_bound,
            "ratio": s.makespan / bound, "utilization": s.utilization, "mean_response": s.mean_response}


def figure(summary: Any) -> Any:
    import numpy as np
    from matplotlib.figure import Figure

    dags = list(dict.fromkeys(summary["dag"]))
    schemes = sorted(summary["scheme"].unique())
    fig = Figure(figsize=(3.6 * len(dags) + 1, 3.8), layout="constrained")
    axes = fig.subplots(1, len(dags), squeeze=False)[0]
    for ax, dag in zip(axes, dags):
        part = summary[summary["dag"] == dag]
        x = np.arange(len(schemes))
        for j, hwm in enumerate((0, 1)):
            sub = part[part["hwm"] == hwm].set_index("scheme").reindex(schemes)
            ax.bar(x + (j - 0.5) * 0.38, sub["ratio"], width=0.38, label=f"hwm={hwm}", color=f"C{j}")
        ax.axhline(1.0, color="0.2", lw=1, ls="--")
        ax.set_xticks(x)
        ax.set_xticklabels(schemes, rotation=35, ha="right", fontsize=8)
        ax.set_title(dag, fontsize=9)
        ax.set_ylabel("makespan / lower bound")
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"DAG workloads on {ENGINES} engines: makespan over max(critical path, work/engines)")
    return fig


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("dependencies", DESCRIPTION, argv, uses_sweep=True)
    configs = plan(args.quick, args.seed)
    C.log(f"dependencies: {len(configs)} simulation runs")
    points = C.map_points(point, configs, args)
    C.save_csv(points, args, "points.csv")
    summary = points.groupby(["dag", "hwm", "scheme"], sort=False)[
        ["makespan", "critical_path", "work_bound", "ratio", "utilization", "ok", "tasks"]].mean().reset_index()
    C.save_csv(summary, args, "summary.csv")
    C.save_fig(figure(summary), args, "dependencies.png")
    pivot = summary.pivot_table(index=["dag", "hwm"], columns="scheme", values="ratio", sort=False).reset_index()
    C.print_table(pivot, "makespan / max(critical path, work / engines), mean over seeds")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
