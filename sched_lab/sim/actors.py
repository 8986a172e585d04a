"""Actors in the simulator: actor workloads, the TaskSpecs of their tasks, and per-kind response times.

How this works. An actor workload is an ordinary columnar Workload whose extras mark some tasks as
creating an actor (`TaskExtras.creates`) or calling one (`TaskExtras.actor`); the driver turns them
into TaskSpecs with `creates_actor` / `actor_id` (`actor_spec`), and the core does the rest (placement
by the scheme, the pinned slot, FIFO calls, deaths and restarts). `with_actors` overlays N actors on
any workload: their creations at t=0, then each actor's calls as a Poisson process at `actor_call_rate`
over the workload's horizon, lengths from `actor_call_length` (stream "actors"). In the engine model
a call is a task like any other: it waits in its engine's FIFO behind stateless tasks, which is the
interference an experiment measures. Worker crashes (`SimConfig.worker_mtbf`) kill the running
task's worker and every actor instance on that engine; the driver reports WorkerDied and
WorkerRestarted, the worker comes back after `worker_restart_s`.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.model import ActorSpec, TaskSpec
from ..core.dependency import Dependency
from .workloads import TaskExtras, Workload

if TYPE_CHECKING:
    from .config import SimConfig
    from .runner import SimResult

ACTOR_CREATE_LABEL = "actor-create"
ACTOR_CALL_LABEL = "actor-call"
TASK_LABEL = "task"


def check_actor_options(cfg: SimConfig) -> None:
    """Validate SimConfig's actor fields (ValueError naming the field)."""
    for name in ("actors", "actor_max_restarts", "actor_max_task_retries"):
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    if isinstance(cfg.actor_max_concurrency, bool) or not isinstance(cfg.actor_max_concurrency, int) \
            or cfg.actor_max_concurrency < 1:
        raise ValueError(f"actor_max_concurrency must be an integer >= 1, got {cfg.actor_max_concurrency!r}")
    rate = cfg.actor_call_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (rate >= 0 and math.isfinite(rate)):
        raise ValueError(f"actor_call_rate must be a number >= 0 (calls per time unit per actor), got {rate!r}")
    if cfg.worker_mtbf is not None and not (cfg.worker_mtbf > 0 and math.isfinite(cfg.worker_mtbf)):
        raise ValueError(f"worker_mtbf must be > 0 (or None for no worker crashes), got {cfg.worker_mtbf!r}")
    if cfg.actors and cfg.hwm and cfg.actors >= cfg.engines * cfg.hwm:
        raise ValueError(f"{cfg.actors} actors would pin every slot of {cfg.engines} engines at hwm={cfg.hwm}: "
                         "the stateless tasks could never run (use fewer actors, more engines or a higher hwm)")


def actor_name(i: int) -> str:
    return f"actor{i}"


def with_actors(wl: Workload, cfg: SimConfig, rng: np.random.Generator) -> Workload:
    """`wl` with `cfg.actors` actors overlaid: creations at t=0 (before anything else at t=0, no work),
    then each actor's calls, Poisson at `cfg.actor_call_rate` over the horizon (the last submission,
    or for a batch the work divided by the engines' capacity). Task ids are renumbered in time order;
    the workload's own dependencies follow their tasks."""
    n_act = cfg.actors
    if n_act == 0:
        return wl
    last = float(wl.submit_at[-1])
    horizon = last if last > 0 else float(wl.work.sum()) / sum(cfg.engine_speeds)
    owners: list[np.ndarray] = []
    times: list[np.ndarray] = []
    for i in range(n_act):
        k = int(rng.poisson(cfg.actor_call_rate * horizon)) if cfg.actor_call_rate > 0 else 0
        times.append(np.sort(rng.uniform(0.0, horizon, k)))
        owners.append(np.full(k, i))
    call_t = np.concatenate(times) if times else np.zeros(0)
    call_owner = np.concatenate(owners) if owners else np.zeros(0, dtype=int)
    call_work = cfg.actor_call_length.sample(rng, len(call_t)) if len(call_t) else np.zeros(0)
    n_base = len(wl)
    # rows: creations (group 0), the workload's tasks (group 1), calls (group 2); sorted by (time, group, index)
    t_all = np.concatenate([np.zeros(n_act), wl.submit_at, call_t])
    group = np.concatenate([np.zeros(n_act, dtype=int), np.ones(n_base, dtype=int), np.full(len(call_t), 2)])
    index = np.arange(len(t_all))
    order = np.lexsort((index, group, t_all))
    new_id = np.empty(len(order), dtype=np.int64)
    new_id[order] = np.arange(len(order))
    base_new = new_id[n_act:n_act + n_base].tolist()
    extras: dict[int, TaskExtras] = {}
    for i in range(n_act):
        extras[int(new_id[i])] = TaskExtras(creates=actor_name(i))
    for tid, ex in wl.extras.items():
        extras[base_new[tid]] = TaskExtras(tuple(sorted(base_new[x] for x in ex.after)),
                                           tuple(sorted(base_new[x] for x in ex.follow)), ex.targets, ex.requires,
                                           ex.creates, ex.actor)
    first_call = n_act + n_base
    for j, owner in enumerate(call_owner.tolist()):
        extras[int(new_id[first_call + j])] = TaskExtras(actor=actor_name(owner))
    work = np.concatenate([np.zeros(n_act), wl.work, call_work])
    return Workload(t_all[order], work[order], extras,
                    name=f"{wl.name}+actors({n_act},calls={cfg.actor_call_rate:g},{cfg.actor_call_length})")


def actor_spec(tid: int, ex: TaskExtras, cfg: SimConfig, spec_kw: dict[str, Any]) -> TaskSpec:
    """The TaskSpec of a task that creates or calls an actor (the driver's `_spec` for such tasks)."""
    if ex.actor is not None:                          # a call: no retries/time limit (the actor's options rule)
        return TaskSpec(tid, actor_id=ex.actor, timeout_s=spec_kw.get("timeout_s"), label=ACTOR_CALL_LABEL)
    actor = ActorSpec(ex.creates, cfg.actor_max_restarts, cfg.actor_max_task_retries, cfg.actor_max_concurrency)
    return TaskSpec(tid, targets=frozenset(ex.targets) if ex.targets else None,
                    after=Dependency(ex.after) if ex.after else None,
                    follow=Dependency(ex.follow) if ex.follow else None, creates_actor=actor,
                    label=ACTOR_CREATE_LABEL, **spec_kw)


def task_kinds(wl: Workload) -> np.ndarray:
    """Each task's kind by id: TASK_LABEL, ACTOR_CREATE_LABEL or ACTOR_CALL_LABEL."""
    kinds = np.full(len(wl), TASK_LABEL, dtype=object)
    for tid, ex in wl.extras.items():
        if ex.creates:
            kinds[tid] = ACTOR_CREATE_LABEL
        elif ex.actor:
            kinds[tid] = ACTOR_CALL_LABEL
    return kinds


def response_by_kind(result: SimResult) -> dict[str, dict[str, float]]:
    """End-to-end response (client submit to client receipt) of stateless tasks and actor calls after the
    warm-up cut (the config's fraction of tasks by submission): n, mean, p50, p99, and how many failed."""
    wl = result.workload
    kinds = task_kinds(wl)
    resp = result.received_at - wl.submit_at
    cut = int(result.config.warmup * len(wl))
    df = result.dataframe()
    final = df.sort_values("attempt").groupby("task_id").tail(1)
    failed_ids = set(final.loc[final["outcome"] != "ok", "task_id"].tolist())
    out: dict[str, dict[str, float]] = {}
    for kind in (TASK_LABEL, ACTOR_CALL_LABEL):
        ids = np.nonzero(kinds == kind)[0]
        ids = ids[ids >= cut]
        ok = np.array([i for i in ids.tolist() if i not in failed_ids], dtype=np.int64)
        r = resp[ok] if len(ok) else np.zeros(0)
        out[kind] = {"n": float(len(ids)), "failed": float(len(ids) - len(ok)),
                     "mean": float(r.mean()) if len(r) else math.nan,
                     "p50": float(np.percentile(r, 50)) if len(r) else math.nan,
                     "p99": float(np.percentile(r, 99)) if len(r) else math.nan}
    return out


def actor_restarts(result: SimResult) -> int:
    """Re-creations that succeeded: OK records of creation tasks beyond each actor's first instance."""
    df = result.dataframe()
    ok = df[(df["label"] == ACTOR_CREATE_LABEL) & (df["outcome"] == "ok")]
    return int(len(ok) - ok["task_id"].nunique())


def actor_engines(result: SimResult) -> dict[int, int]:
    """How many actors each engine got at first placement (engine id -> count)."""
    df = result.dataframe()
    ok = df[(df["label"] == ACTOR_CREATE_LABEL) & (df["outcome"] == "ok")].sort_values("attempt")
    first = ok.groupby("task_id").head(1)
    return {int(e): int(c) for e, c in first["engine_id"].value_counts().items()}


__all__ = ["ACTOR_CREATE_LABEL", "ACTOR_CALL_LABEL", "TASK_LABEL", "check_actor_options", "with_actors",
           "actor_spec", "task_kinds", "response_by_kind", "actor_restarts", "actor_engines", "actor_name"]
