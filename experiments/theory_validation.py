"""Every scheme against its closed-form queueing model across loads (reference/queueing-anchors.md §1).

Models (mean task length 1, Poisson arrivals at per-engine load λ, 10% warm-up cut):
- hwm=1, every scheme, 10 identical exponential engines  -> Erlang-C M/M/10 (a central FIFO queue);
- plainrandom, hwm=0                                     -> M/M/1 per engine;
- lru, hwm=0 (round robin)                               -> E_10/M/1 per engine;
- powerofd (JSQ(2)), hwm=0, many engines                 -> Mitzenmacher's supermarket model T_2;
- plainrandom, hwm=0, const / erlang4 / lognormal(σ=1)   -> Pollaczek–Khinchine M/G/1.
Writes `points.csv` (one row per run), `table.csv` (mean over seeds, 95% CI, theory, relative
error) and `theory_validation.png`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import _common as C

DESCRIPTION = "Simulated mean response of every scheme against its closed-form queueing model."


def plan(quick: bool, seed0: int) -> tuple[list[tuple[str, str, Any, float]], dict[str, Callable[[float], float]]]:
    """(model, series label, SimConfig, theory) for every run, and each model's theory as a function of load."""
    from sched_lab.core import SCHEMES
    from sched_lab.sim import SimConfig, parse_dist
    from sched_lab.theory import mm1_response, mmc_response, pk_response, rr_response, supermarket_response

    loads = (0.5, 0.8) if quick else (0.5, 0.7, 0.8, 0.9)
    seeds = range(seed0, seed0 + (3 if quick else 4))
    tasks = 8_000 if quick else 30_000
    sm_engines, sm_tasks = (200, 12_000) if quick else (1000, 100_000)
    base = SimConfig(engines=10, tasks=tasks, warmup=0.1)
    out: list[tuple[str, str, Any, float]] = []
    theory: dict[str, Callable[[float], float]] = {}

    def add(model: str, label: str, cfg: Any, fn: Callable[[float], float]) -> None:
        theory[model] = fn
        out.append((model, label, cfg, fn(cfg.load)))

    for load in loads:
        for s in seeds:
            for scheme in sorted(SCHEMES):
                add("M/M/10 Erlang-C (hwm=1, every scheme)", scheme,
                    replace(base, scheme=scheme, hwm=1, load=load, seed=s), lambda x: mmc_response(10, x))
            add("M/M/1 (plainrandom, hwm=0)", "plainrandom",
                replace(base, scheme="plainrandom", hwm=0, load=load, seed=s), mm1_response)
            add("E_10/M/1 round robin (lru, hwm=0)", "lru",
                replace(base, scheme="lru", hwm=0, load=load, seed=s), lambda x: rr_response(x, 10))
            add(f"supermarket T_2 (powerofd, hwm=0, n={sm_engines})", "powerofd",
                replace(base, scheme="powerofd", hwm=0, load=load, seed=s, engines=sm_engines, tasks=sm_tasks),
                lambda x: supermarket_response(x, 2))
            for text in ("const", "erlang4", "lognormal:sigma=1"):
                dist = parse_dist(text)
                add(f"P-K M/G/1, {text} (c²={dist.scv:.2f})", "plainrandom",
                    replace(base, scheme="plainrandom", hwm=0, load=load, seed=s, length=dist),
                    lambda x, c2=dist.scv: pk_response(x, c2))
    return out, theory


def summarize(points: Any) -> Any:
    from sched_lab.records import confidence_halfwidth

    g = points.groupby(["model", "label", "load"], sort=False)
    table = g.agg(sim_mean=("mean_response", "mean"), theory=("theory", "first"), seeds=("seed", "size"),
                  tasks=("tasks", "first")).reset_index()
    table["sim_ci"] = g["mean_response"].agg(lambda v: confidence_halfwidth(list(v))).to_numpy()
    table["rel_err"] = table["sim_mean"] / table["theory"] - 1
    table["within_ci"] = (table["sim_mean"] - table["theory"]).abs() <= table["sim_ci"]
    return table[["model", "label", "load", "theory", "sim_mean", "sim_ci", "rel_err", "within_ci", "seeds", "tasks"]]


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("theory_validation", DESCRIPTION, argv, uses_sweep=True)
    from sched_lab.apps.plots import sim_vs_theory

    runs, theory = plan(args.quick, args.seed)
    C.log(f"theory_validation: {len(runs)} simulation runs")
    points = C.sweep([cfg for _, _, cfg, _ in runs], args)
    points.insert(0, "model", [m for m, _, _, _ in runs])
    points.insert(1, "label", [lab for _, lab, _, _ in runs])
    points["theory"] = [t for _, _, _, t in runs]
    C.save_csv(points, args, "points.csv")
    table = summarize(points)
    C.save_csv(table, args, "table.csv")
    lo, hi = float(table["load"].min()), float(table["load"].max())
    grid = [lo + (hi - lo) * i / 40 for i in range(41)]
    curves = {m: [(x, fn(x)) for x in grid] for m, fn in theory.items()}
    C.save_fig(sim_vs_theory(table, curves=curves), args, "theory_validation.png")
    C.print_table(table.drop(columns=["tasks"]), "Simulated vs closed-form mean response (95% CI over seeds)")
    worst = table.loc[table["rel_err"].abs().idxmax()]
    print(f"\nlargest |relative error|: {worst['rel_err']:+.2%} ({worst['model']}, {worst['label']}, load {worst['load']}); "
          f"{int(table['within_ci'].sum())}/{len(table)} theory values inside the 95% CI")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
