"""The same workload on the live cluster and in the simulator, calibrated from the live run.

How this works. One workload is drawn from the simulator's seeded streams: Poisson arrivals at
per-engine load `--load` on 4 engines, lognormal task lengths (σ=`--sigma`) with mean 20 ms. For
each scheme a fresh local cluster (`real_cluster.Cluster`, in-memory task database) runs it: the
client submits each task at its arrival time and the task is `time.sleep(length)`. The cluster is
stopped when the scheme is done (context manager), even on error. The controller's per-attempt
TaskRecords then calibrate a simulation of the *same* tasks:

- arrivals: the controller's own submission times (so client pacing jitter is replayed exactly);
- network latency per hop: the median of started_at − dispatched_at over tasks sent to an idle
  engine (dispatch hop plus unpickling on the engine);
- per-task overhead: (finished_at − started_at − length) − latency (sleep overshoot, result
  pickling, the host's CPU contention), resampled from the live run's values and added to each
  task's work; the report hop costs the latency again.

The random schemes draw different random numbers live and simulated, so one live run is one
realisation: the simulation is repeated over `SIM_SEEDS` seeds (scheduler stream and overhead
resampling) and pooled, and the spread of the per-seed means is reported beside the live mean.

Response = final finish − submission, both stamped by the controller, in both drivers. An
uncalibrated simulation (zero latency and overhead) is kept for comparison. Writes
`responses.csv` (one row per task and source: live / sim / sim_uncalibrated, the first simulation
seed only), `summary.csv` (mean
error and KS distance per scheme), `calibration.csv`, `live_vs_sim_cdf.png`, and Gantt charts and
per-engine utilisation of the first scheme, live and simulated.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import time
from typing import Any

import numpy as np

import _common as C

SIM_SEEDS = 20
DESCRIPTION = "Live cluster vs calibrated simulator on the same workload: mean error, KS distance, CDFs."


def options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", type=int, default=None, help="tasks per scheme (default 2000, 300 with --quick)")
    p.add_argument("--schemes", default=None,
                   help="comma-separated schemes (default: every registered scheme; leastload,plainrandom with --quick)")
    p.add_argument("--engines", type=int, default=4)
    p.add_argument("--hwm", type=int, default=0, help="high-water mark (default 0: the schemes decide placement)")
    p.add_argument("--load", type=float, default=0.7, help="per-engine load of the Poisson arrivals")
    p.add_argument("--sigma", type=float, default=1.0, help="lognormal sigma of the task lengths")
    p.add_argument("--mean-ms", type=float, default=20.0, help="mean task length in ms")


def draw_workload(args: argparse.Namespace) -> Any:
    from sched_lab.sim import Dist
    from sched_lab.sim.workloads import poisson_workload, streams

    length = Dist("lognormal", (("sigma", args.sigma),), args.mean_ms / 1000.0)
    return poisson_workload(streams(args.seed), args.tasks, args.load, float(args.engines), length)


def run_live(scheme: str, workload: Any, args: argparse.Namespace) -> Any:
    """Run the workload on a fresh local cluster; returns the records of its tasks as a DataFrame."""
    from real_cluster import Cluster
    from real_cluster.profile import profile_dir
    from sched_lab.records.summary import to_dataframe
    from sched_lab.apps.replay import replay_live

    profile = f"exp-lvs-{os.getpid()}-{scheme}"
    try:
        with Cluster(n=args.engines, profile=profile, scheme=scheme, hwm=args.hwm, db="memory") as rc:
            view = rc.load_balanced_view()
            view.map_sync(time.sleep, [0.001] * (2 * args.engines))     # engines warm: imports, connections
            ars = replay_live(view, workload, time.sleep)
            index = {ar.msg_ids[0]: i for i, ar in enumerate(ars)}
            df = to_dataframe([r for r in rc.records() if r.task_id in index])
    finally:
        shutil.rmtree(profile_dir(profile, create=False), ignore_errors=True)
    df["task"] = df["task_id"].map(index)
    df["work"] = workload.work[df["task"].to_numpy()]
    return df.sort_values(["task", "attempt"]).reset_index(drop=True)


def calibrate(live: Any) -> dict[str, float]:
    """Per-hop latency and per-task overhead (seconds) measured from the live records."""
    ok = live[live["outcome"].astype(str) == "ok"]
    idle = ok[ok["engine_load"].astype(float) == 0]
    hop = (idle["started_at"] - idle["dispatched_at"]).to_numpy(float)
    run_extra = (ok["finished_at"] - ok["started_at"] - ok["work"]).to_numpy(float)
    latency = float(np.median(hop)) if len(hop) else 0.0
    return {"latency_s": latency, "overhead_samples": np.maximum(run_extra - latency, 0.0), "hop_mean_s": float(hop.mean()) if len(hop) else math.nan,
            "hop_p99_s": float(np.percentile(hop, 99)) if len(hop) else math.nan,
            "run_extra_median_s": float(np.median(run_extra)), "run_extra_p99_s": float(np.percentile(run_extra, 99)),
            "idle_dispatches": int(len(hop))}


def run_sim(scheme: str, live: Any, cal: dict[str, Any] | None, args: argparse.Namespace, seed: int) -> Any:
    """Simulate the live run's tasks (its submission times, its lengths) under `scheme`; DataFrame of records.

    With `cal`, each task's work gains an overhead resampled from the live ones and every hop costs the
    measured latency; without, the simulation has no overheads at all."""
    from sched_lab.sim import Dist, SimConfig, Workload, run

    final = live.drop_duplicates("task", keep="first").sort_values("task")
    sub = final["submitted_at"].to_numpy(float)
    order = np.argsort(sub, kind="stable")
    submit_at = np.maximum.accumulate(sub[order] - sub.min())
    work = final["work"].to_numpy(float)[order]
    if cal is not None:
        rng = np.random.default_rng([args.seed, seed])
        work = work + rng.choice(cal["overhead_samples"], size=len(work))
    config = SimConfig(scheme=scheme, hwm=args.hwm, engines=args.engines, tasks=len(work), seed=seed,
                       warmup=0.0, latency=Dist("const", (), cal["latency_s"]) if cal and cal["latency_s"] > 0 else None)
    result = run(config, Workload(submit_at, work, name="live replay"))
    df = result.dataframe()
    df["task"] = final["task"].to_numpy()[order][df["task_id"].to_numpy()]
    return df


def responses(df: Any, source: str, scheme: str) -> Any:
    last = df.drop_duplicates("task", keep="last")
    last = last[last["outcome"].astype(str) == "ok"]
    out = last[["task", "engine_id", "submitted_at", "started_at", "finished_at"]].copy()
    t0 = float(df["submitted_at"].astype(float).min())
    for col in ("submitted_at", "started_at", "finished_at"):
        out[col] = out[col].astype(float) - t0
    out["response_s"] = out["finished_at"] - out["submitted_at"]
    out.insert(0, "scheme", scheme)
    out.insert(0, "source", source)
    return out


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)        # unwinds through `with Cluster(...)`, which stops the cluster


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("live_vs_sim", DESCRIPTION, argv, extra=options)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    import pandas as pd

    from sched_lab.core import SCHEMES
    from sched_lab.apps.plots import engine_utilisation, gantt, live_vs_sim_cdf
    from sched_lab.records import ks_distance

    args.tasks = args.tasks or (300 if args.quick else 2000)
    schemes = (args.schemes.split(",") if args.schemes else
               ["leastload", "plainrandom"] if args.quick else sorted(SCHEMES))
    workload = draw_workload(args)
    pairs, rows, cal_rows, tidy = {}, [], [], []
    first: tuple[Any, Any] | None = None
    for scheme in schemes:
        C.log(f"live_vs_sim: {scheme}: {args.tasks} tasks on a live {args.engines}-engine cluster (hwm={args.hwm})")
        t = time.perf_counter()
        live = run_live(scheme, workload, args)
        live_wall = time.perf_counter() - t
        cal = calibrate(live)
        sims = [run_sim(scheme, live, cal, args, args.seed + k) for k in range(SIM_SEEDS)]
        raws = [run_sim(scheme, live, None, args, args.seed + k) for k in range(SIM_SEEDS)]
        first = first or (live, sims[0])
        pairs[scheme] = (live, pd.concat(sims, ignore_index=True).assign(task_id=lambda d: np.arange(len(d))))
        lr = responses(live, "live", scheme)
        sr = pd.concat([responses(d, "sim", scheme).assign(sim_seed=k) for k, d in enumerate(sims)], ignore_index=True)
        rr = pd.concat([responses(d, "sim_uncalibrated", scheme).assign(sim_seed=k) for k, d in enumerate(raws)],
                       ignore_index=True)
        tidy += [lr, sr[sr["sim_seed"] == 0], rr[rr["sim_seed"] == 0]]      # one simulated realisation each
        lv, sv, rv = lr["response_s"].to_numpy(), sr["response_s"].to_numpy(), rr["response_s"].to_numpy()
        seed_means = sr.groupby("sim_seed")["response_s"].mean().to_numpy()
        n, m = len(lv), len(lv)      # the pooled simulation is SIM_SEEDS copies of n tasks: n is the honest size
        rows.append({"scheme": scheme, "tasks": n, "live_mean_ms": 1e3 * lv.mean(), "sim_mean_ms": 1e3 * sv.mean(),
                     "sim_mean_lo_ms": 1e3 * np.percentile(seed_means, 2.5),
                     "sim_mean_hi_ms": 1e3 * np.percentile(seed_means, 97.5),
                     "mean_err": sv.mean() / lv.mean() - 1, "live_p50_ms": 1e3 * np.median(lv),
                     "sim_p50_ms": 1e3 * np.median(sv), "live_p99_ms": 1e3 * np.percentile(lv, 99),
                     "sim_p99_ms": 1e3 * np.percentile(sv, 99), "ks": ks_distance(lv, sv),
                     "ks_crit_5pct": 1.358 * math.sqrt((n + m) / (n * m)),
                     "uncal_mean_err": rv.mean() / lv.mean() - 1, "uncal_ks": ks_distance(lv, rv),
                     "live_wall_s": live_wall})
        cal_rows.append({"scheme": scheme, **{k: v for k, v in cal.items() if k != "overhead_samples"},
                         "overhead_s": float(cal["overhead_samples"].mean())})
    summary = pd.DataFrame(rows)
    C.save_csv(pd.concat(tidy, ignore_index=True), args, "responses.csv")
    C.save_csv(summary, args, "summary.csv")
    C.save_csv(pd.DataFrame(cal_rows), args, "calibration.csv")
    C.save_fig(live_vs_sim_cdf(pairs, title=f"Live cluster vs calibrated simulation\n{args.tasks} lognormal "
                                            f"(σ={args.sigma:g}) tasks, mean {args.mean_ms:g} ms, {args.engines} engines, "
                                            f"load {args.load:g}, hwm={args.hwm}"), args, "live_vs_sim_cdf.png")
    assert first is not None
    window = (0.0, 1000.0 * min(0.6, float(workload.submit_at[-1])))
    for source, df in zip(("live", "sim"), first):
        C.save_fig(gantt(df, title=f"{schemes[0]}, {source}: task placement (first 600 ms)", unit="ms", scale=1000.0,
                         t_window=window), args, f"gantt_{source}_{schemes[0]}.png")
        C.save_fig(engine_utilisation(df, title=f"{schemes[0]}, {source}: per-engine utilisation"), args,
                   f"utilisation_{source}_{schemes[0]}.png")
    ms = {"latency_s": "latency_ms", "hop_mean_s": "hop_mean_ms", "hop_p99_s": "hop_p99_ms", "overhead_s": "overhead_ms",
          "run_extra_median_s": "run_extra_median_ms", "run_extra_p99_s": "run_extra_p99_ms"}
    cal_ms = pd.DataFrame(cal_rows)
    cal_ms[list(ms)] = cal_ms[list(ms)] * 1e3
    C.print_table(cal_ms.rename(columns=ms), "calibration from the live run (run_extra = finished − started − length)")
    C.print_table(summary, "live vs simulated response times (KS below ks_crit_5pct = not distinguishable at 5%)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
