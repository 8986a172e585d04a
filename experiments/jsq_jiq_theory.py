"""The new built-in schemes against theory: JSQ(3) (`powerofd:d=3`) and join-idle-queue (`jiq`).

hwm=0 (placement is the scheme's alone), exponential tasks of mean 1, Poisson arrivals at per-engine
load λ, n engines, 200 tasks per engine, 10% warm-up cut, seeds SEED.. (3; 2 with --quick, which
also uses n=200 and 100 tasks per engine).
- JSQ(3) against Mitzenmacher's supermarket model T_3 = Σ_i λ^((3^i−3)/2) (2.0279 at λ=0.9;
  reference/queueing-anchors.md §1.3), with JSQ(2) against T_2 beside it.
- JIQ with one dispatcher that knows every idle engine (Lu et al., Perf. Eval. 68(11) 2011; the PULL
  algorithm of Stolyar, Queueing Syst. 80(4) 2015, proved asymptotically optimal for λ<1): as n→∞
  the probability that a task finds no idle engine vanishes, so the mean response → 1 (the task
  length). Reported: the fraction of tasks dispatched to an idle engine, and the mean response;
  plainrandom (M/M/1 per engine: 1−λ and 1/(1−λ) in steady state) beside it.
Writes `table.csv` (one row per scheme and load, mean over seeds with a 95% CI) and prints it.
"""

from __future__ import annotations

from typing import Any

import _common as C

DESCRIPTION = "JSQ(3) vs the supermarket model and JIQ vs its many-server limit (hwm=0, exponential tasks)."
SCHEMES = ("powerofd:d=3", "powerofd", "jiq", "plainrandom")


def point(cfg: Any) -> dict[str, Any]:
    """One run -> its scheme, load, seed, mean response and fraction of tasks that found an idle engine."""
    from sched_lab.sim import run

    result = run(cfg)
    df = result.dataframe()
    df = df[df["submitted_at"] >= df["submitted_at"].quantile(cfg.warmup)]
    return {"scheme": cfg.scheme, "load": cfg.load, "seed": cfg.seed, "engines": cfg.engines,
            "mean_response": result.summary().mean_response, "found_idle": float((df["engine_load"] == 0).mean())}


def theory(scheme: str, load: float) -> tuple[float, float]:
    """(mean response, fraction finding an idle engine) in the n→∞ limit."""
    from sched_lab.theory import supermarket_response

    if scheme.startswith("powerofd"):
        d = 3 if scheme.endswith("d=3") else 2
        return supermarket_response(load, d), 1 - load ** d     # s_1 = λ: some of the d draws is idle w.p. 1-λ^d
    if scheme == "jiq":
        return 1.0, 1.0
    return 1 / (1 - load), 1 - load


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("jsq_jiq_theory", DESCRIPTION, argv, uses_sweep=True)
    import pandas as pd

    from sched_lab.records import confidence_halfwidth
    from sched_lab.sim import SimConfig

    n, per_engine = (200, 100) if args.quick else (1000, 200)
    loads = (0.9,) if args.quick else (0.7, 0.9)
    seeds = range(args.seed, args.seed + (2 if args.quick else 3))
    configs = [SimConfig(scheme=s, hwm=0, engines=n, tasks=n * per_engine, load=load, seed=seed, warmup=0.1)
               for load in loads for s in SCHEMES for seed in seeds]
    C.log(f"jsq_jiq_theory: {len(configs)} runs of {n} engines")
    points = C.map_points(point, configs, args)
    rows = []
    for (scheme, load), g in points.groupby(["scheme", "load"], sort=False):
        t_mean, t_idle = theory(scheme, load)
        mean = float(g["mean_response"].mean())
        rows.append({"scheme": scheme, "load": load, "engines": n, "seeds": len(g), "mean_response": mean,
                     "mean_ci": confidence_halfwidth(list(g["mean_response"])), "theory_mean": t_mean,
                     "rel_err": mean / t_mean - 1, "found_idle": float(g["found_idle"].mean()), "theory_idle": t_idle})
    table = pd.DataFrame(rows)
    C.save_csv(points, args, "points.csv")
    C.save_csv(table, args, "table.csv")
    C.print_table(table, f"simulated vs theory, {n} engines, hwm=0 (mean task length 1)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
