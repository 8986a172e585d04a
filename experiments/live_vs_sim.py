"""The same workload on the live cluster and in the simulator, calibrated from the live run.

How this works. One workload is drawn from the simulator's seeded streams: Poisson arrivals at
per-engine load `--load` on 4 engines, lognormal task lengths (σ=`--sigma`) with mean 20 ms. For
each scheme a fresh local cluster (`real_cluster.Cluster`, in-memory task database) runs it: the
client submits each task at its arrival time and the task is `time.sleep(length)`. The cluster is
stopped when the scheme is done (context manager), even on error. The controller's per-attempt
TaskRecords then calibrate a simulation of the *same* tasks:

- arrivals: the controller's own submission times (so client pacing jitter is replayed exactly);
- then one of three overhead models (`--overhead-model`; all three are simulated and reported as
  `ks_iid`, `ks_replay`, `ks_modulated`, and `ks` is the chosen one's):
  - `iid` (the idle-host calibration): every hop costs a constant latency, the median of
    started_at − dispatched_at over tasks sent to an idle engine, and each task's work gains an
    independent draw from the live (finished_at − started_at − length) − latency. It cannot
    reproduce bursts of host contention, and it charges the result's trip back to the engine;
  - `modulated`: two traces measured live (sched_lab.sim.overheads.OverheadTrace). The
    hop trace holds every controller<->engine hop by when it was sent: idle dispatches
    (started − dispatched) and result reports (finished_at − the engine's own completion stamp).
    Each simulated hop draws from the hops measured within ±`--overhead-window-ms` of its time
    (`SimConfig.latency_trace`), so a stall delays the messages sent during it, live and
    simulated, without blocking the engine. The engine trace holds what each task occupied its
    engine beyond its length (completed − started − length: sleep overshoot, call overhead), by
    submission time; each simulated task's work gains a draw from that window;
  - `replay` (default): the same traces, but the value measured nearest in time (trace-driven;
    no free parameter).

`--hog` runs a CPU hog (`python -c 'while 1: pass'`, pinned to CPU 0) during each live run: the
contention case. The hog is started before and killed after each live run, whatever happens; its
CPU time and the host's load average are recorded in `calibration.csv` (other jobs on a shared
host add their own contention: the load average says how much).

The random schemes draw different random numbers live and simulated, so one live run is one
realisation: the simulation is repeated over `--sim-seeds` seeds (scheduler, network and overhead
draws) and pooled, and the spread of the per-seed means is reported beside the live mean.

Is the KS distance small enough? The iid two-sample critical value (`ks_crit_5pct`, with n = m =
the live count) is the wrong yardstick: response times of one run are strongly autocorrelated (a
busy period delays a run of consecutive tasks; a random scheme's unlucky placements do the same),
and the pooled simulation is not n independent draws either. The experiment measures how wrong it
is: `null_reject_iid` is the fraction of simulated realisations whose KS distance to the other
realisations (the same model: the null is true) exceeds it — 20-25% for plainrandom and twobin
at 2,000 tasks instead of 5%. Two sound replacements, both reported:
- `ks_mc_p`, a Monte Carlo test against the model's own spread: the live run and the S simulated
  realisations are S + 1 realisations of one model under the null, hence exchangeable; each one's KS
  distance to the other S pooled is computed, and p = (number of them at least as far as the live
  run's) / (S + 1). Exact at any level ≥ 1/(S + 1), whatever the autocorrelation. It needs a model
  with realisation spread: a deterministic scheme under the `replay` model simulates the same run
  for every seed, so there it is NaN;
- `ks_crit_eff`, the KS critical value at effective sample sizes n / τ, τ the integrated
  autocorrelation time of the indicators 1{response ≤ q} at the quartiles and the 90th percentile
  (batch means over 20 batches in submission order, the largest τ): valid for every scheme, and
  conservative (`null_reject_eff`, the same null check, is ~0).
`agrees_5pct`: p > 0.05 where the Monte Carlo test applies, else KS ≤ ks_crit_eff.

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
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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
    p.add_argument("--overhead-model", choices=("iid", "replay", "modulated"), default="replay",
                   help="how simulated tasks draw the live overheads (default replay; all three are reported)")
    p.add_argument("--overhead-window-ms", type=float, default=200.0,
                   help="half-width of the modulated model's time window (default 200 ms)")
    p.add_argument("--hog", action="store_true", help="run a CPU hog pinned to CPU 0 during each live run")
    p.add_argument("--sim-seeds", type=int, default=SIM_SEEDS,
                   help=f"simulated realisations per scheme and model (default {SIM_SEEDS}; the Monte Carlo KS test's "
                        "smallest p-value is 1/(S+1))")
    p.add_argument("--resimulate", metavar="DIR", type=Path, default=None,
                   help="no live runs: re-simulate the live records an earlier run saved in DIR/live_records.csv")


def _pin_and_tie_to_parent() -> None:
    """In the hog's child before exec: run on CPU 0 only, and get SIGKILL if this script dies
    (Linux PR_SET_PDEATHSIG), so even a `kill -9` of the script leaves no hog behind."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)     # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass                                                                        # not Linux: the finally still stops it


@contextmanager
def cpu_hog(enabled: bool = True) -> Iterator[subprocess.Popen[bytes] | None]:
    """A `python -c 'while 1: pass'` process pinned to CPU 0 for the block; killed (and reaped) on
    exit, whatever happens, and killed by the kernel if this process dies first. Yields the process
    (None when not enabled)."""
    if not enabled:
        yield None
        return
    proc = subprocess.Popen([sys.executable, "-c", "while 1: pass"], preexec_fn=_pin_and_tie_to_parent,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used (Linux /proc); NaN when unreadable."""
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


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
            completed = {mid: _epoch_s(rc.metadata_of(mid).get("completed")) for mid in index}
    finally:
        shutil.rmtree(profile_dir(profile, create=False), ignore_errors=True)
    df["task"] = df["task_id"].map(index)
    df["work"] = workload.work[df["task"].to_numpy()]
    # the engine's own completion stamp (same host clock): finished_at − completed_at is the report hop
    df["completed_at"] = df["task_id"].map(completed).astype(float)
    return df.sort_values(["task", "attempt"]).reset_index(drop=True)


def _epoch_s(stamp: Any) -> float:
    """A metadata time (a datetime, as in ipyparallel, or epoch seconds) as epoch seconds; NaN if unknown."""
    if stamp is None:
        return math.nan
    return float(stamp.timestamp()) if hasattr(stamp, "timestamp") else float(stamp)


def calibrate(live: Any) -> dict[str, Any]:
    """Latencies and per-task overheads (seconds) measured from the live records (see the module doc).

    `latency_s`/`overhead_samples`: the independent (iid) model's constant hop and per-task extras.
    `hop_trace`: every measured controller<->engine hop by when it was sent (idle dispatches:
    started − dispatched; reports: finished − the engine's completion); `engine_trace`: the time
    each task occupied its engine beyond its length (completed − started − length), by submission.
    Times are seconds from the first submission."""
    from sched_lab.sim.overheads import OverheadTrace

    ok = live[live["outcome"].astype(str) == "ok"]
    t0 = float(live["submitted_at"].astype(float).min())
    idle = ok[ok["engine_load"].astype(float) == 0]
    hop = (idle["started_at"] - idle["dispatched_at"]).to_numpy(float)
    run_extra = (ok["finished_at"] - ok["started_at"] - ok["work"]).to_numpy(float)
    latency = float(np.median(hop)) if len(hop) else 0.0
    completed = ok["completed_at"].to_numpy(float)
    has = np.isfinite(completed)
    report = (ok["finished_at"].to_numpy(float) - completed)[has]
    engine_extra = np.maximum((completed - ok["started_at"].to_numpy(float) - ok["work"].to_numpy(float))[has], 0.0)
    hop_at = np.concatenate([idle["dispatched_at"].to_numpy(float), completed[has]]) - t0
    hops = np.maximum(np.concatenate([hop, report]), 0.0)
    pick_at, pick = pickups(ok)
    return {"pickup_trace": OverheadTrace(pick_at - t0, pick) if len(pick) else None,
            "pickup_median_s": float(np.median(pick)) if len(pick) else math.nan,
            "pickup_mean_s": float(pick.mean()) if len(pick) else math.nan,
            "pickup_p99_s": float(np.percentile(pick, 99)) if len(pick) else math.nan, "pickups": int(len(pick)),
            "latency_s": latency, "overhead_samples": np.maximum(run_extra - latency, 0.0),
            "hop_trace": OverheadTrace(hop_at, hops),
            "engine_trace": OverheadTrace(ok["submitted_at"].to_numpy(float)[has] - t0, engine_extra),
            "hop_mean_s": float(hop.mean()) if len(hop) else math.nan,
            "hop_p99_s": float(np.percentile(hop, 99)) if len(hop) else math.nan,
            "report_hop_median_s": float(np.median(report)), "report_hop_p99_s": float(np.percentile(report, 99)),
            "engine_extra_mean_s": float(engine_extra.mean()),
            "engine_extra_p99_s": float(np.percentile(engine_extra, 99)),
            "run_extra_median_s": float(np.median(run_extra)), "run_extra_p99_s": float(np.percentile(run_extra, 99)),
            "idle_dispatches": int(len(hop))}


def pickups(ok: Any) -> tuple[np.ndarray, np.ndarray]:
    """Each engine's delay between ending a task and starting the next one already queued at it
    (dispatched before the previous one completed), by when the previous one ended (epoch seconds):
    started − the previous task's completion, both stamped by the engine."""
    at, gap = [], []
    for _, h in ok.sort_values("started_at").groupby("engine_id"):
        start, done, sent = (h[c].to_numpy(float) for c in ("started_at", "completed_at", "dispatched_at"))
        queued = (sent[1:] < done[:-1]) & np.isfinite(done[:-1])
        at.append(done[:-1][queued])
        gap.append(np.maximum(start[1:] - done[:-1], 0.0)[queued])
    return (np.concatenate(at), np.concatenate(gap)) if at else (np.zeros(0), np.zeros(0))


def run_sim(scheme: str, live: Any, cal: dict[str, Any] | None, args: argparse.Namespace, seed: int,
            model: str = "modulated", pickup: bool = True) -> Any:
    """Simulate the live run's tasks (its submission times, its lengths) under `scheme`; DataFrame of records.

    With `cal`, each task's work gains an overhead drawn from the live ones under `model` (see the
    module doc) and every hop costs the measured latency; without, the simulation has no overheads."""
    from sched_lab.sim import Dist, SimConfig, Workload, run

    final = live.drop_duplicates("task", keep="first").sort_values("task")
    sub = final["submitted_at"].to_numpy(float)
    order = np.argsort(sub, kind="stable")
    submit_at = np.maximum.accumulate(sub[order] - sub.min())
    work = final["work"].to_numpy(float)[order]
    window = args.overhead_window_ms / 1000.0
    net: dict[str, Any] = {}
    if cal is not None and model == "iid":
        rng = np.random.default_rng([args.seed, seed])
        work = work + rng.choice(cal["overhead_samples"], size=len(work))
        net = {"latency": Dist("const", (), cal["latency_s"])} if cal["latency_s"] > 0 else {}
        net |= {"pickup_trace": cal["pickup_trace"], "latency_model": "iid"} if pickup else {}
    elif cal is not None:
        rng = np.random.default_rng([args.seed, seed])
        work = work + cal["engine_trace"].sample(model, submit_at, rng, window_s=window)
        net = {"latency_trace": cal["hop_trace"], "latency_model": model, "latency_window_s": window,
               "pickup_trace": cal["pickup_trace"] if pickup else None}
    # the client's hop is not part of the live response (the controller stamps submission on arrival
    # and the arrivals replay those stamps): the simulated client sits next to the scheduler
    config = SimConfig(scheme=scheme, hwm=args.hwm, engines=args.engines, tasks=len(work), seed=seed,
                       warmup=0.0, client_latency=False, **net)
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


def _ks_between_seeds(pooled: Any) -> float:
    """95th percentile over seeds of the KS distance between one simulated realisation and the
    others pooled: how far one run of the same model strays by chance. One live run is one
    realisation too (the random schemes' placements differ from seed to seed), so a live KS below
    this is as close as the simulation gets to itself."""
    from sched_lab.records import ks_distance

    by_seed = {k: g["response_s"].to_numpy() for k, g in pooled.groupby("sim_seed")}
    return float(np.percentile([ks_distance(v, np.concatenate([w for j, w in by_seed.items() if j != k]))
                                for k, v in by_seed.items()], 95))


def effective_n(x: np.ndarray, batches: int = 20, quantiles: tuple[float, ...] = (0.25, 0.5, 0.75, 0.9)) -> float:
    """Effective sample size of a series (in time order) for its empirical CDF: n / τ, τ >= 1 the largest
    integrated autocorrelation time of the indicators 1{x <= q} at `quantiles`, by batch means."""
    x = np.asarray(x, float)
    n = len(x)
    b = n // batches
    if b < 2:
        return float(n)
    taus = [1.0]
    for q in np.quantile(x, quantiles):
        ind = (x[: b * batches] <= q).astype(float)
        var = ind.mean() * (1 - ind.mean())
        if var > 0:
            taus.append(b * float(ind.reshape(batches, b).mean(axis=1).var(ddof=1)) / var)
    return n / max(taus)


def ks_tests(live_r: np.ndarray, sim_rs: list[np.ndarray]) -> dict[str, float]:
    """The KS distance of the live run to the pooled realisations, judged three ways (module doc):
    the iid critical value's own false-rejection rate on the simulated realisations (`null_reject_iid`),
    the Monte Carlo rank p-value (`ks_mc_p`, NaN when every realisation is the same) and the critical
    value at effective sample sizes (`ks_crit_eff`, with its own null check `null_reject_eff`).
    `live_r` and each of `sim_rs`: response times in submission order."""
    from sched_lab.records import ks_distance

    k = len(sim_rs)
    t_live = ks_distance(live_r, np.concatenate(sim_rs))
    n_eff = [effective_n(r) for r in sim_rs]
    t_sim, t_null, crit_null = [], [], []
    for i, r in enumerate(sim_rs):
        others = [o for j, o in enumerate(sim_rs) if j != i]
        t_sim.append(ks_distance(r, np.concatenate([live_r, *others])))
        t_null.append(ks_distance(r, np.concatenate(others)))        # the null is true: same model
        n_o = sum(n_eff) - n_eff[i]
        crit_null.append(1.358 * math.sqrt(1 / n_eff[i] + 1 / n_o))
    n = len(live_r)
    degenerate = all(len(r) == len(sim_rs[0]) and np.array_equal(r, sim_rs[0]) for r in sim_rs[1:])
    n_eff_live = effective_n(live_r)
    crit_eff = 1.358 * math.sqrt(1 / n_eff_live + 1 / sum(n_eff))
    p = (1 + sum(t >= t_live for t in t_sim)) / (k + 1)
    return {"ks_mc_p": math.nan if degenerate else p, "n_eff_live": n_eff_live, "ks_crit_eff": crit_eff,
            "null_reject_iid": float(np.mean([t > 1.358 * math.sqrt(2 / n) for t in t_null])),
            "null_reject_eff": float(np.mean([t > c for t, c in zip(t_null, crit_null)])),
            "agrees_5pct": bool(t_live <= crit_eff if degenerate else p > 0.05)}


def _in_order(r: Any) -> np.ndarray:
    """Response times of a `responses()` frame in submission order."""
    return r.sort_values(["submitted_at", "task"])["response_s"].to_numpy()


def _lag1(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of the overheads in time order (bursts: > 0; independent: ~0)."""
    return float(np.corrcoef(x[:-1], x[1:])[0, 1]) if len(x) > 2 and x.std() > 0 else math.nan


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
    models = ("iid", "replay", "modulated")
    live_records: list[Any] = []
    saved = pd.read_csv(args.resimulate / "live_records.csv") if args.resimulate else None
    for scheme in schemes:
        C.log(f"live_vs_sim: {scheme}: {args.tasks} tasks on a live {args.engines}-engine cluster (hwm={args.hwm})"
              + (", CPU hog on CPU 0" if args.hog else ""))
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        if saved is not None:
            live = saved[saved["scheme"] == scheme].drop(columns="scheme").reset_index(drop=True)
            if live.empty:
                raise SystemExit(f"live_vs_sim: no live records of {scheme!r} in {args.resimulate}")
            hog_cpu_s = math.nan
        else:
            with cpu_hog(args.hog) as hog:
                live = run_live(scheme, workload, args)
                hog_cpu_s = cpu_seconds(hog.pid) if hog is not None else math.nan
            live_records.append(live.assign(scheme=scheme))
        live_wall = time.perf_counter() - t if saved is None else math.nan
        cal = calibrate(live)
        by_model = {m: [run_sim(scheme, live, cal, args, args.seed + k, m) for k in range(args.sim_seeds)]
                    for m in models}
        sims = by_model[args.overhead_model]
        raws = [run_sim(scheme, live, None, args, args.seed + k) for k in range(args.sim_seeds)]
        first = first or (live, sims[0])
        pairs[scheme] = (live, pd.concat(sims, ignore_index=True).assign(task_id=lambda d: np.arange(len(d))))
        lr = responses(live, "live", scheme)
        pooled = {m: pd.concat([responses(d, "sim", scheme).assign(sim_seed=k) for k, d in enumerate(runs)],
                               ignore_index=True) for m, runs in by_model.items()}
        sr = pooled[args.overhead_model]
        rr = pd.concat([responses(d, "sim_uncalibrated", scheme).assign(sim_seed=k) for k, d in enumerate(raws)],
                       ignore_index=True)
        tidy += [lr, sr[sr["sim_seed"] == 0], rr[rr["sim_seed"] == 0]]      # one simulated realisation each
        lv, sv, rv = lr["response_s"].to_numpy(), sr["response_s"].to_numpy(), rr["response_s"].to_numpy()
        seed_means = sr.groupby("sim_seed")["response_s"].mean().to_numpy()
        n, m = len(lv), len(lv)      # the pooled simulation is SIM_SEEDS copies of n tasks: n is the honest size
        rows.append({"scheme": scheme, "tasks": n, "overhead_model": args.overhead_model,
                     "live_mean_ms": 1e3 * lv.mean(), "sim_mean_ms": 1e3 * sv.mean(),
                     "sim_mean_lo_ms": 1e3 * np.percentile(seed_means, 2.5),
                     "sim_mean_hi_ms": 1e3 * np.percentile(seed_means, 97.5),
                     "mean_err": sv.mean() / lv.mean() - 1, "live_p50_ms": 1e3 * np.median(lv),
                     "sim_p50_ms": 1e3 * np.median(sv), "live_p99_ms": 1e3 * np.percentile(lv, 99),
                     "sim_p99_ms": 1e3 * np.percentile(sv, 99), "ks": ks_distance(lv, sv),
                     "ks_crit_5pct": 1.358 * math.sqrt((n + m) / (n * m)),
                     "ks_sim_p95": _ks_between_seeds(sr),
                     **ks_tests(_in_order(lr), [_in_order(g) for _, g in sr.groupby("sim_seed")]),
                     **{f"ks_mc_p_{k}": ks_tests(_in_order(lr), [_in_order(g) for _, g in v.groupby("sim_seed")])["ks_mc_p"]
                        for k, v in pooled.items() if k != args.overhead_model},
                     **{f"ks_{k}": ks_distance(lv, v["response_s"].to_numpy()) for k, v in pooled.items()},
                     **{f"mean_err_{k}": v["response_s"].mean() / lv.mean() - 1 for k, v in pooled.items()},
                     "uncal_mean_err": rv.mean() / lv.mean() - 1, "uncal_ks": ks_distance(lv, rv),
                     "live_wall_s": live_wall})
        figures = {k: v for k, v in cal.items() if k not in ("overhead_samples", "hop_trace", "engine_trace", "pickup_trace")}
        cal_rows.append({"scheme": scheme, **figures,
                         "overhead_s": float(cal["overhead_samples"].mean()),
                         "overhead_p99_s": float(np.percentile(cal["overhead_samples"], 99)),
                         "hop_lag1_corr": _lag1(cal["hop_trace"].overhead_s),
                         "hog": bool(args.hog) if saved is None else math.nan,
                         "hog_cpu_share": hog_cpu_s / live_wall if args.hog and saved is None else math.nan,
                         "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]})
    summary = pd.DataFrame(rows)
    C.save_csv(pd.concat(tidy, ignore_index=True), args, "responses.csv")
    if live_records:
        # full precision: the stamps are epoch seconds (save_csv keeps 6 significant digits)
        pd.concat(live_records, ignore_index=True).to_csv(args.out / "live_records.csv", index=False)
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
          "overhead_p99_s": "overhead_p99_ms", "report_hop_median_s": "report_hop_median_ms",
          "report_hop_p99_s": "report_hop_p99_ms", "engine_extra_mean_s": "engine_extra_mean_ms",
          "engine_extra_p99_s": "engine_extra_p99_ms",
          "run_extra_median_s": "run_extra_median_ms", "run_extra_p99_s": "run_extra_p99_ms"}
    cal_ms = pd.DataFrame(cal_rows)
    cal_ms[list(ms)] = cal_ms[list(ms)] * 1e3
    C.print_table(cal_ms.rename(columns=ms), "calibration from the live run (run_extra = finished − started − length)")
    C.print_table(summary, "live vs simulated response times (agrees_5pct: the Monte Carlo test's p > 0.05, or "
                           "KS below the effective-sample critical value; ks_crit_5pct is the iid one, see "
                           "null_reject_iid)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
