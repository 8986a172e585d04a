"""Sweeps: run schemes × loads × hwm × workloads × seeds (in parallel processes) into a tidy table."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from .config import SimConfig
from .distributions import Dist

METRICS = ("mean_wait", "mean_response", "p50_response", "p99_response", "makespan", "throughput",
           "utilization", "imbalance")


def sweep_configs(base: SimConfig, schemes: Sequence[str], loads: Sequence[float], hwms: Sequence[int],
                  workloads: Sequence[Dist], seeds: Sequence[int]) -> list[SimConfig]:
    """Every point of the grid; all schemes at one (load, workload, seed) see the identical workload."""
    return [replace(base, scheme=s, load=load, hwm=h, length=w, seed=seed, progress=False)
            for w in workloads for h in hwms for load in loads for s in schemes for seed in seeds]


def run_point(config: SimConfig) -> dict[str, Any]:
    """One grid point -> one tidy row (picklable; runs in a worker process)."""
    from .runner import run

    result = run(config)
    row: dict[str, Any] = {"scheme": config.scheme, "hwm": config.hwm, "workload": str(config.length),
                           "load": config.load, "seed": config.seed, "engines": config.engines,
                           "tasks": result.n_tasks}
    row.update({k: v for k, v in result.summary().as_dict().items() if k in METRICS})
    row["wall_s"] = result.wall_s
    return row


def run_sweep(configs: Sequence[SimConfig], jobs: int | None = None,
              on_done: Callable[[int], None] | None = None) -> Any:
    """Run the points (across `jobs` processes; default: all cores) and return the tidy DataFrame."""
    import pandas as pd

    jobs = jobs or os.cpu_count() or 1
    rows: list[dict[str, Any]] = []
    if jobs == 1 or len(configs) == 1:
        for i, cfg in enumerate(configs):
            rows.append(run_point(cfg))
            if on_done:
                on_done(i + 1)
    else:
        with ProcessPoolExecutor(max_workers=min(jobs, len(configs))) as pool:
            for i, row in enumerate(pool.map(run_point, configs)):
                rows.append(row)
                if on_done:
                    on_done(i + 1)
    return pd.DataFrame(rows)


def aggregate(tidy: Any) -> Any:
    """Mean and 95% CI half-width over seeds of mean and p99 response, per (workload, hwm, scheme, load)."""
    from ..plots import confidence_halfwidth

    keys = ["workload", "hwm", "scheme", "load"]
    g = tidy.groupby(keys, sort=False)
    out = g[["mean_response", "p99_response", "utilization"]].mean()
    out["mean_ci"] = g["mean_response"].agg(lambda v: confidence_halfwidth(list(v)))
    out["p99_ci"] = g["p99_response"].agg(lambda v: confidence_halfwidth(list(v)))
    out["seeds"] = g.size()
    return out.reset_index()[[*keys, "mean_response", "mean_ci", "p99_response", "p99_ci", "utilization", "seeds"]]
