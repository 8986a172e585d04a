"""Sweeps: run schemes × loads × hwm × workloads × seeds (in parallel processes) into a tidy table.

A sweep runs in local worker processes, or — with `executor="dask:ADDRESS"` / `"ray[:ADDRESS]"`
(sched_lab.apps.executors) — on a Dask or Ray cluster, or — with `cluster=` — as tasks on a running
sched-lab cluster: each point is one `run_point(config)` task (workers import this module, so they
need sched-lab installed), and the rows are identical to a local sweep's except for `wall_s`.
`map_points` does the same for any point function (experiments with their own per-point metrics).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

from ..sim.config import SimConfig
from ..sim.distributions import Dist

# Responses are end to end (client submit to client receipt); sched_* are the scheduler's view.
METRICS = ("mean_wait", "mean_response", "p50_response", "p99_response", "makespan", "throughput",
           "utilization", "imbalance", "sched_mean_response", "sched_p50_response", "sched_p99_response")


def sweep_configs(base: SimConfig, schemes: Sequence[str], loads: Sequence[float], hwms: Sequence[int],
                  workloads: Sequence[Dist], seeds: Sequence[int]) -> list[SimConfig]:
    """Every point of the grid; all schemes at one (load, workload, seed) see the identical workload."""
    return [replace(base, scheme=s, load=load, hwm=h, length=w, seed=seed, progress=False)
            for w in workloads for h in hwms for load in loads for s in schemes for seed in seeds]


def run_point(config: SimConfig) -> dict[str, Any]:
    """One grid point -> one tidy row (picklable; runs in a worker process)."""
    from ..sim.runner import run

    result = run(config)
    row: dict[str, Any] = {"scheme": config.scheme, "hwm": config.hwm, "workload": str(config.length),
                           "load": config.load, "seed": config.seed, "engines": config.engines,
                           "tasks": result.n_tasks}
    row.update({k: v for k, v in result.summary().as_dict().items() if k in METRICS})
    row["wall_s"] = result.wall_s
    return row


def run_sweep(configs: Sequence[SimConfig], jobs: int | None = None,
              on_done: Callable[[int], None] | None = None, cluster: Any = None,
              executor: str | None = None) -> Any:
    """Run the points (across `jobs` processes; default: all cores) and return the tidy DataFrame.

    `cluster`: a profile name, a client connection file (.json) or a connected `real_cluster.Client`:
    run every point as a task on that cluster's engines instead (`jobs` is then ignored). A point
    that fails there raises its RemoteError; a missing cluster raises ClusterUnavailable.
    `executor`: `local` (default), `dask:ADDRESS` or `ray[:ADDRESS]` (see `executors`); a missing
    extra or an unreachable scheduler raises ExecutorUnavailable, a malformed spec ValueError.
    """
    import pandas as pd

    return pd.DataFrame(map_points(run_point, configs, jobs=jobs, on_done=on_done, cluster=cluster,
                                   executor=executor))


def map_points(fn: Callable[[Any], Any], points: Sequence[Any], jobs: int | None = None,
               on_done: Callable[[int], None] | None = None, cluster: Any = None,
               executor: str | None = None) -> list[Any]:
    """`fn(point)` for every point, in point order, wherever `executor`/`cluster` say (see `run_sweep`).

    `fn` must be a module-level function; one defined outside sched-lab is shipped by value to
    Dask, Ray and sched-lab cluster workers. `cluster` and a non-local `executor` exclude each other.
    """
    from .executors import ExecutorSpec, gather, map_remote

    spec = ExecutorSpec.parse(executor)
    if cluster is not None and spec.kind != "local":
        raise ValueError(f"choose --cluster or --executor {spec}, not both")
    if cluster is not None:
        return run_on_cluster(points, cluster, on_done, fn=fn)
    if spec.kind != "local":
        return map_remote(fn, points, spec, on_done)
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(points) <= 1:
        return gather((fn(point) for point in points), on_done)
    with ProcessPoolExecutor(max_workers=min(jobs, len(points))) as pool:
        return gather(pool.map(fn, points), on_done)


class ClusterUnavailable(RuntimeError):
    """Raised when a sweep is sent to a cluster that is not running or has no engines."""


def connect(cluster: str | os.PathLike[str], engine_timeout_s: float = 30.0) -> Any:
    """A Client for a profile name or a client connection file; waits for at least one engine."""
    from pathlib import Path

    from real_cluster import Client
    from real_cluster.profile import client_file

    path = Path(cluster)
    if str(cluster).endswith(".json"):
        if not path.is_file():
            raise ClusterUnavailable(f"no connection file {str(path)!r}")
    else:
        path = client_file(str(cluster))
        if not path.is_file():
            raise ClusterUnavailable(f"no running cluster for profile {str(cluster)!r} (no {path}); start one with "
                                     f"`sched-lab cluster start -n 4 --profile {cluster} --daemonize`")
    try:
        client = Client(path)
    except Exception as exc:
        raise ClusterUnavailable(f"cannot connect to the cluster of {str(cluster)!r}: {exc}") from exc
    try:
        client.wait_for_engines(1, engine_timeout_s)
    except Exception as exc:
        client.close()
        raise ClusterUnavailable(f"the cluster of {str(cluster)!r} has no engines: {exc}") from exc
    return client


def run_on_cluster(configs: Sequence[Any], cluster: Any, on_done: Callable[[int], None] | None = None,
                   fn: Callable[[Any], Any] = run_point) -> list[Any]:
    """`fn` (default: `run_point`) of every config, each run as one task on a live cluster (see `run_sweep`)."""
    from .executors import gather, portable

    own = not hasattr(cluster, "load_balanced_view")
    client = connect(cluster) if own else cluster
    try:
        view = client.load_balanced_view(label="sched-lab compare")
        shipped = portable(fn)
        pending = [view.apply_async(shipped, cfg) for cfg in configs]
        return gather((ar.get() for ar in pending), on_done)
    finally:
        if own:
            client.close()


def aggregate(tidy: Any) -> Any:
    """Mean and 95% CI half-width over seeds of mean and p99 response, per (workload, hwm, scheme, load)."""
    from ..records.stats import confidence_halfwidth

    keys = ["workload", "hwm", "scheme", "load"]
    g = tidy.groupby(keys, sort=False)
    out = g[["mean_response", "p99_response", "utilization"]].mean()
    out["mean_ci"] = g["mean_response"].agg(lambda v: confidence_halfwidth(list(v)))
    out["p99_ci"] = g["p99_response"].agg(lambda v: confidence_halfwidth(list(v)))
    out["seeds"] = g.size()
    return out.reset_index()[[*keys, "mean_response", "mean_ci", "p99_response", "p99_ci", "utilization", "seeds"]]
