"""Actors live vs simulated: the same workload of actor calls and stateless tasks on a live 4-engine
cluster and in the simulator, compared by response-time distribution (KS), per kind of task.

How this works. One workload is drawn from the simulator's seeded streams (sim/actors.py): stateless
tasks as Poisson arrivals at per-engine load `--load` over `--engines` engines, `--actors` actors
created at t=0, each called as a Poisson process at `--call-rate` calls/s; tasks and calls are
exponential with mean `--mean-ms`. For each scheme a fresh local cluster (in-memory database) runs
it in real time: the actors are created first (`view.actor`), then every task (`time.sleep(length)`)
and call (`actor.work(length)`, which sleeps) is submitted at its arrival time. The controller's
per-attempt records give each task's response (its final finish minus its submission, both stamped
by the controller). The simulator then runs the same tasks: the live submission times, the same
lengths plus an overhead drawn from the live runs (each task's time on its engine beyond its length),
and a constant hop latency (the median live dispatch-to-start of tasks sent to an idle engine),
pooled over `SIM_SEEDS` seeds; the actors are placed by the simulated scheme.
Writes `summary.csv` (per scheme and kind: live and simulated mean and p99, KS distance, the 5%
critical value, and how far simulated seeds stray from each other), `responses.csv` and
`actor_live_vs_sim_cdf.png`.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from typing import Any

import numpy as np

import _common as C

SIM_SEEDS = 10
DESCRIPTION = "Actor calls and stateless tasks, live 4-engine cluster vs simulator: KS per kind of task."


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=int, default=None, help="stateless tasks (default 1500, 250 with --quick)")
    p.add_argument("--schemes", default=None, help="comma-separated (default leastload,jiq,lru; leastload with --quick)")
    p.add_argument("--engines", type=int, default=4)
    p.add_argument("--hwm", type=int, default=2, help="high-water mark (default 2: one slot beside each actor)")
    p.add_argument("--actors", type=int, default=2)
    p.add_argument("--load", type=float, default=0.4, help="per-engine load of the stateless tasks")
    p.add_argument("--call-rate", type=float, default=15.0, help="calls per second per actor")
    p.add_argument("--mean-ms", type=float, default=20.0, help="mean task and call length in ms")


class Sleeper:
    """The actor of the experiment: each call sleeps for its length."""

    def work(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


def draw_workload(args: argparse.Namespace) -> Any:
    from sched_lab.sim import Dist, SimConfig, build_workload, streams

    length = Dist("exp", (), args.mean_ms / 1000.0)
    cfg = SimConfig(engines=args.engines, tasks=args.tasks, load=args.load, length=length, actors=args.actors,
                    actor_call_rate=args.call_rate, actor_call_length=length, seed=args.seed)
    return build_workload(cfg, streams(cfg.seed))


def run_live(scheme: str, wl: Any, args: argparse.Namespace) -> Any:
    """The workload on a fresh cluster; the controller's records of its tasks, with `task` (workload index)."""
    from real_cluster import Cluster
    from real_cluster.profile import profile_dir
    from sched_lab.records.summary import to_dataframe

    profile = f"exp-alvs-{os.getpid()}-{scheme}"
    handles: dict[str, Any] = {}
    ars: dict[int, Any] = {}
    try:
        with Cluster(n=args.engines, profile=profile, scheme=scheme, hwm=args.hwm, db="memory") as rc:
            view = rc.load_balanced_view()
            view.map_sync(time.sleep, [0.001] * (2 * args.engines))     # engines warm: imports, connections
            t0 = time.perf_counter()
            for i, (at, work) in enumerate(zip(wl.submit_at.tolist(), wl.work.tolist())):
                delay = t0 + at - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                ex = wl.extras.get(i)
                if ex is not None and ex.creates:
                    handles[ex.creates] = view.actor(Sleeper)
                    ars[i] = handles[ex.creates].creation          # the constructor's AsyncResult
                elif ex is not None and ex.actor:
                    ars[i] = handles[ex.actor].work(work)
                else:
                    ars[i] = view.apply_async(time.sleep, work)
            for ar in ars.values():
                if ar is not None:
                    ar.get(timeout=120)
            index = {ar.msg_ids[0]: i for i, ar in ars.items() if ar is not None}
            df = to_dataframe([r for r in rc.records() if r.task_id in index])
    finally:
        shutil.rmtree(profile_dir(profile, create=False), ignore_errors=True)
    df["task"] = df["task_id"].map(index)
    df["work"] = wl.work[df["task"].to_numpy()]
    return df.sort_values(["task", "attempt"]).reset_index(drop=True)


def calibrate(live: Any) -> tuple[float, np.ndarray]:
    """(hop latency s, per-task overheads s): the median dispatch-to-start of tasks sent to an idle engine, and
    each finished task's time beyond its length and two hops."""
    ok = live[live["outcome"].astype(str) == "ok"]
    idle = ok[ok["engine_load"].astype(float) == 0]
    hop = (idle["started_at"] - idle["dispatched_at"]).to_numpy(float)
    latency = float(np.median(hop)) if len(hop) else 0.0
    extra = (ok["finished_at"] - ok["started_at"] - ok["work"]).to_numpy(float) - latency
    return latency, np.maximum(extra[np.isfinite(extra)], 0.0)


def run_sim(scheme: str, wl: Any, live: Any, cal: tuple[float, np.ndarray], args: argparse.Namespace,
            seed: int) -> Any:
    """The live run's tasks (their live submission times, lengths plus live overheads) in the simulator."""
    from sched_lab.sim import Dist, SimConfig, Workload, run

    first = live.drop_duplicates("task", keep="first").set_index("task")
    sub = first["submitted_at"].astype(float)
    submit = np.array([sub.get(i, np.nan) for i in range(len(wl))])
    known = np.isfinite(submit)
    submit[~known] = np.interp(np.nonzero(~known)[0], np.nonzero(known)[0], submit[known])  # creations: none
    submit = np.maximum.accumulate(submit - np.nanmin(submit))
    rng = np.random.default_rng([args.seed, seed])
    latency, overheads = cal
    work = wl.work + (rng.choice(overheads, size=len(wl)) if len(overheads) else 0.0)
    config = SimConfig(scheme=scheme, hwm=args.hwm, engines=args.engines, tasks=len(wl), seed=seed, warmup=0.0,
                       client_latency=False, latency=Dist("const", (), latency) if latency > 0 else None)
    result = run(config, Workload(submit, work, wl.extras, name="actor live replay"))
    df = result.dataframe()
    df["task"] = df["task_id"]
    return df


def responses(df: Any, kinds: np.ndarray, source: str, scheme: str) -> Any:
    last = df.drop_duplicates("task", keep="last")
    last = last[last["outcome"].astype(str) == "ok"].copy()
    last["kind"] = kinds[last["task"].to_numpy(int)]
    last = last[last["kind"] != "actor-create"]
    out = last[["task", "kind", "engine_id"]].copy()
    out["response_s"] = (last["finished_at"].astype(float) - last["submitted_at"].astype(float)).to_numpy()
    out.insert(0, "scheme", scheme)
    out.insert(0, "source", source)
    return out


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("actor_live_vs_sim", DESCRIPTION, argv, extra=options)
    C.stop_on_sigterm()
    import matplotlib.pyplot as plt
    import pandas as pd

    from sched_lab.records import ks_distance
    from sched_lab.sim.actors import task_kinds

    args.tasks = args.tasks or (250 if args.quick else 1500)
    schemes = args.schemes.split(",") if args.schemes else (["leastload"] if args.quick else ["leastload", "jiq", "lru"])
    wl = draw_workload(args)
    kinds = task_kinds(wl)
    rows, tidy = [], []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for scheme in schemes:
        C.log(f"actor_live_vs_sim: {scheme}: {len(wl)} tasks ({args.actors} actors) on a live {args.engines}-engine "
              f"cluster (hwm={args.hwm})")
        live = run_live(scheme, wl, args)
        cal = calibrate(live)
        lr = responses(live, kinds, "live", scheme)
        sims = [responses(run_sim(scheme, wl, live, cal, args, args.seed + k), kinds, "sim", scheme).assign(sim_seed=k)
                for k in range(SIM_SEEDS)]
        sr = pd.concat(sims, ignore_index=True)
        tidy += [lr, sr[sr["sim_seed"] == 0]]
        for ax, kind in zip(axes, ("actor-call", "task")):
            lv = np.sort(lr.loc[lr["kind"] == kind, "response_s"].to_numpy()) * 1e3
            sv = np.sort(sr.loc[sr["kind"] == kind, "response_s"].to_numpy()) * 1e3
            n = len(lv)
            by_seed = [g.loc[g["kind"] == kind, "response_s"].to_numpy() for g in sims]
            stray = [ks_distance(v, np.concatenate([w for j, w in enumerate(by_seed) if j != k]))
                     for k, v in enumerate(by_seed)]
            rows.append({"scheme": scheme, "kind": kind, "n": n, "live_mean_ms": lv.mean(), "sim_mean_ms": sv.mean(),
                         "mean_err": sv.mean() / lv.mean() - 1, "live_p99_ms": np.percentile(lv, 99),
                         "sim_p99_ms": np.percentile(sv, 99), "ks": ks_distance(lv, sv),
                         "ks_crit_5pct": 1.358 * math.sqrt(2 / n), "ks_sim_p95": float(np.percentile(stray, 95)),
                         "latency_ms": 1e3 * cal[0], "overhead_mean_ms": 1e3 * float(cal[1].mean())})
            line = ax.plot(lv, np.linspace(0, 1, n, endpoint=False), label=f"{scheme} live")[0]
            ax.plot(sv, np.linspace(0, 1, len(sv), endpoint=False), "--", color=line.get_color(), label=f"{scheme} sim")
    for ax, kind in zip(axes, ("actor calls", "stateless tasks")):
        ax.set(title=kind, xlabel="response (ms)", ylabel="CDF", xscale="log")
        ax.legend(fontsize=8)
    fig.suptitle(f"{args.engines} engines, hwm={args.hwm}, {args.actors} actors at {args.call_rate:g} calls/s, "
                 f"stateless load {args.load:g}: live vs simulated")
    fig.tight_layout()
    summary = pd.DataFrame(rows)
    C.save_csv(pd.concat(tidy, ignore_index=True), args, "responses.csv")
    C.save_csv(summary, args, "summary.csv")
    C.save_fig(fig, args, "actor_live_vs_sim_cdf.png")
    C.print_table(summary, "live vs simulated response by kind (KS below ks_crit_5pct = not distinguishable at 5%)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
