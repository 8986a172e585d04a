"""Actor placement by scheme: where do the schemes put actors, and what does it cost actor calls and
the stateless tasks that share the engines?

Eight identical engines at hwm=2; four actors are created at t=0 (each pins one of its engine's two
slots), then stateless tasks arrive as Poisson at a per-engine load and each actor is called as a
Poisson process at 0.3 calls per time unit (exponential tasks and calls of mean length 1; one call
of an actor out at a time, the default). Every scheme at one (load, seed) sees the identical
workload. Per point: mean and p99 end-to-end response of actor calls and of stateless tasks, how
many actors the busiest engine got, and the makespan.
Writes `points.csv`, `summary.csv` (mean over seeds, 95% CI) and `calls_vs_load.png`; then the same
setup at load 0.5 under worker crashes (`worker_mtbf` 2000, restart 0.5) and engine failures (`mtbf` 4000,
`mttr` 5) with 3 restarts per actor and 1 retry per call: `failures_points.csv`, `failures.csv`
(restarts, share of calls that failed ActorDiedError, responses).

Finding (the committed full run, experiments/results/actor_placement/; README section
"actor_placement"): the schemes that count an actor's pinned slot as load keep stateless tasks off
the actors' engines, and both kinds of work gain: at load 0.3 actor calls average 1.55 (jiq) and
1.62 (leastload) task lengths against 2.34 for lru, which ignores loads (+51%; stateless tasks +17%).
plainrandom, powerofd and twobin sometimes stack two actors on one engine at t=0 (no slot left
for stateless tasks there). Calls pay 1.4-2.2x the stateless mean for sharing an engine: with one
call out at a time a call reaches the engine only when its predecessor is done, behind every
stateless task that arrived meanwhile. Under worker crashes (worker_mtbf 2000) the four actors
restart 7-9 times and 13-23% of calls fail ActorDiedError once an actor has used its 3 restarts;
engine failures (mtbf 4000) cost 3.5-6 restarts and at most 2% of calls; the ranking holds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Actor placement by scheme (8 engines, hwm=2, 4 actors): actor-call vs stateless response."
SCHEMES = ("leastload", "lru", "jiq", "powerofd", "twobin", "plainrandom")
CALL_RATE = 0.3


def plan(quick: bool, seed0: int, schemes: Sequence[str] = SCHEMES, modules: tuple[str, ...] = ()) -> list[Any]:
    from sched_lab.sim import SimConfig

    loads = (0.5,) if quick else (0.3, 0.5, 0.7)
    seeds = range(seed0, seed0 + (2 if quick else 6))
    base = SimConfig(engines=8, hwm=2, tasks=3_000 if quick else 30_000, warmup=0.1, actors=4,
                     actor_call_rate=CALL_RATE, scheme_modules=modules)
    return [replace(base, scheme=s, load=load, seed=seed) for load in loads for s in schemes for seed in seeds]


FAILURES = {"none": {}, "worker crashes": {"worker_mtbf": 2000.0, "worker_restart_s": 0.5},
            "engine failures": {"mtbf": 4000.0, "mttr": 5.0}}


def plan_failures(quick: bool, seed0: int, schemes: Sequence[str] = SCHEMES, modules: tuple[str, ...] = ()) -> list[Any]:
    """Load 0.5, actors with 3 restarts and 1 retry per call, under each failure mode of FAILURES."""
    from sched_lab.sim import SimConfig

    seeds = range(seed0, seed0 + (1 if quick else 4))
    base = SimConfig(engines=8, hwm=2, tasks=3_000 if quick else 20_000, warmup=0.1, actors=4, load=0.5,
                     actor_call_rate=CALL_RATE, actor_max_restarts=3, actor_max_task_retries=1, retries=1,
                     scheme_modules=modules)
    modes = ("worker crashes",) if quick else tuple(FAILURES)
    return [replace(base, scheme=s, seed=seed, **FAILURES[m]) for m in modes for s in schemes for seed in seeds]


def failure_point(cfg: Any) -> dict[str, Any]:
    """One run under failures -> its row: restarts, calls that failed ActorDiedError, responses."""
    from sched_lab.sim.actors import ACTOR_CALL_LABEL, TASK_LABEL, actor_restarts, response_by_kind
    from sched_lab.sim import run

    result = run(cfg)
    kinds = response_by_kind(result)
    mode = next((m for m, kw in FAILURES.items() if kw and all(getattr(cfg, k) == v for k, v in kw.items())), "none")
    calls = kinds[ACTOR_CALL_LABEL]
    return {"failure": mode, "scheme": cfg.scheme, "seed": cfg.seed, "restarts": actor_restarts(result),
            "calls_failed_share": calls["failed"] / calls["n"] if calls["n"] else 0.0,
            "call_mean": calls["mean"], "task_mean": kinds[TASK_LABEL]["mean"]}


def point(cfg: Any) -> dict[str, Any]:
    """One run -> its row (module level: shipped by value to remote workers)."""
    from sched_lab.sim import run
    from sched_lab.sim.actors import ACTOR_CALL_LABEL, TASK_LABEL, actor_engines, response_by_kind

    result = run(cfg)
    kinds = response_by_kind(result)
    placed = actor_engines(result)
    return {"scheme": cfg.scheme, "load": cfg.load, "seed": cfg.seed,
            "call_mean": kinds[ACTOR_CALL_LABEL]["mean"], "call_p99": kinds[ACTOR_CALL_LABEL]["p99"],
            "task_mean": kinds[TASK_LABEL]["mean"], "task_p99": kinds[TASK_LABEL]["p99"],
            "calls": kinds[ACTOR_CALL_LABEL]["n"], "tasks": kinds[TASK_LABEL]["n"],
            "max_actors_per_engine": max(placed.values(), default=0),
            "stacked": int(max(placed.values(), default=0) > 1), "makespan": result.sim_time}


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("actor_placement", DESCRIPTION, argv, uses_sweep=True, takes_schemes=True)
    import matplotlib.pyplot as plt

    from sched_lab.records import confidence_halfwidth

    configs = plan(args.quick, args.seed, args.schemes or SCHEMES, args.scheme_modules)
    C.log(f"actor_placement: {len(configs)} simulation runs")
    points = C.map_points(point, configs, args)
    C.save_csv(points, args, "points.csv")
    g = points.groupby(["load", "scheme"], sort=False)
    summary = g[["call_mean", "call_p99", "task_mean", "task_p99", "max_actors_per_engine"]].mean()
    summary["stacked_share"] = g["stacked"].mean()
    summary["call_ci"] = g["call_mean"].agg(lambda v: confidence_halfwidth(list(v)))
    summary["task_ci"] = g["task_mean"].agg(lambda v: confidence_halfwidth(list(v)))
    summary = summary.reset_index()
    C.save_csv(summary, args, "summary.csv")
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True)
    for scheme, s in summary.groupby("scheme", sort=False):
        axes[0].errorbar(s["load"], s["call_mean"], yerr=s["call_ci"], marker="o", capsize=3, label=scheme)
        axes[1].errorbar(s["load"], s["task_mean"], yerr=s["task_ci"], marker="o", capsize=3, label=scheme)
    axes[0].set(title=f"actor calls ({CALL_RATE} /time unit per actor)", xlabel="stateless load per engine",
                ylabel="mean response (task lengths)")
    axes[1].set(title="stateless tasks", xlabel="stateless load per engine")
    axes[0].legend(fontsize=8)
    fig.suptitle("8 engines, hwm=2, 4 actors created at t=0: response by placement scheme")
    fig.tight_layout()
    C.save_fig(fig, args, "calls_vs_load.png")
    C.print_table(summary, "actor calls and stateless tasks by load and scheme (mean over seeds)")
    fconfigs = plan_failures(args.quick, args.seed, args.schemes or SCHEMES, args.scheme_modules)
    C.log(f"actor_placement: {len(fconfigs)} runs with failures")
    fpoints = C.map_points(failure_point, fconfigs, args)
    C.save_csv(fpoints, args, "failures_points.csv")
    fsummary = fpoints.groupby(["failure", "scheme"], sort=False)[
        ["restarts", "calls_failed_share", "call_mean", "task_mean"]].mean().reset_index()
    C.save_csv(fsummary, args, "failures.csv")
    C.print_table(fsummary, "load 0.5 under failures (3 restarts per actor, 1 retry per call): mean over seeds")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
