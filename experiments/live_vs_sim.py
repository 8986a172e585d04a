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
- in every model, the engine's pickup delay (`SimConfig.pickup_trace`): a task already queued at
  its engine starts only this long after the previous one ends, because the previous result goes
  back through the engine's nanny, which then hands the next task to its worker. Measured live as
  started − the previous task's completion on the same engine, for tasks dispatched before that
  completion (`_live_vs_sim_model.pickups`); ~1 ms median under contention. Before it was modelled,
  the simulator started a queued task the instant the previous one ended and was optimistic on
  the mean for every scheme. `iid` takes the median as a constant; `replay` and `modulated` draw
  from the trace by when the previous task ended. `mean_err_nopickup`/`ks_nopickup`/
  `agrees_nopickup` report the chosen model without it; `*_heldout` a simulation whose every hop,
  engine time and pickup is an independent draw from what another scheme's live run measured
  (`heldout_from`, the next scheme in the list; time ignored, since that run's bursts came at other
  times): a check that the calibration is not fitted to the run it is judged on. It assumes the
  contention is stationary (a steady hog on an otherwise idle host); other jobs' bursts are not.

The live runs come first, back to back, and their per-attempt records (submitted, dispatched,
started, the engine's completion, finished, engine id, ...) are saved in `live_records.csv`;
`--resimulate DIR` re-runs only the simulation and the statistics from a saved one.

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
seed only), `decomposition.csv` (where the response time goes, live, simulated and simulated
without the pickup delay: the share of tasks queued at their engine, their wait there, the hop to
an idle engine, finished − started; first seed), `summary.csv` (mean
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
from _live_vs_sim_model import calibrate, decompose, pickups, responses, run_sim  # noqa: F401 (pickups: the tests)
from _live_vs_sim_stats import _in_order, _ks_between_seeds, _lag1, effective_n, ks_tests  # noqa: F401

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


def check_columns(lr: Any, checks: dict[str, list[Any]], scheme: str, other: str) -> dict[str, Any]:
    """Summary columns of the extra simulations (`nopickup`, `heldout`): mean error, KS distance and verdict
    against the live responses `lr`; the held-out ones NaN when there is no other scheme."""
    import pandas as pd

    from sched_lab.records import ks_distance

    lv = lr["response_s"].to_numpy()
    out: dict[str, Any] = {"heldout_from": other if "heldout" in checks else None}
    for name in ("nopickup", "heldout"):
        if name not in checks:
            out |= {f"mean_err_{name}": math.nan, f"ks_{name}": math.nan, f"agrees_{name}": None}
            continue
        rs = [responses(d, "sim", scheme) for d in checks[name]]
        sv = pd.concat(rs)["response_s"].to_numpy()
        out |= {f"mean_err_{name}": sv.mean() / lv.mean() - 1, f"ks_{name}": ks_distance(lv, sv),
                f"agrees_{name}": ks_tests(_in_order(lr), [_in_order(r) for r in rs])["agrees_5pct"]}
    return out


def main(argv: list[str] | None = None) -> int:
    args = C.parse_args("live_vs_sim", DESCRIPTION, argv, extra=options)
    C.stop_on_sigterm()
    import pandas as pd

    from sched_lab.core import SCHEMES
    from sched_lab.apps.plots import engine_utilisation, gantt, live_vs_sim_cdf
    from sched_lab.records import ks_distance

    args.tasks = args.tasks or (300 if args.quick else 2000)
    schemes = (args.schemes.split(",") if args.schemes else
               ["leastload", "plainrandom"] if args.quick else sorted(SCHEMES))
    workload = draw_workload(args)
    pairs, rows, cal_rows, tidy, parts = {}, [], [], [], []
    first: tuple[Any, Any] | None = None
    models = ("iid", "replay", "modulated")
    live_records: list[Any] = []
    saved = pd.read_csv(args.resimulate / "live_records.csv") if args.resimulate else None
    lives, meta = {}, {}
    for scheme in schemes:                  # the live runs first, back to back: alike host conditions
        load_before = os.getloadavg()[0]
        t = time.perf_counter()
        if saved is not None:
            live = saved[saved["scheme"] == scheme].drop(columns="scheme").reset_index(drop=True)
            if live.empty:
                raise SystemExit(f"live_vs_sim: no live records of {scheme!r} in {args.resimulate}")
            hog_cpu_s = math.nan
        else:
            C.log(f"live_vs_sim: {scheme}: {args.tasks} tasks on a live {args.engines}-engine cluster "
                  f"(hwm={args.hwm})" + (", CPU hog on CPU 0" if args.hog else ""))
            with cpu_hog(args.hog) as hog:
                live = run_live(scheme, workload, args)
                hog_cpu_s = cpu_seconds(hog.pid) if hog is not None else math.nan
            live_records.append(live.assign(scheme=scheme))
        live_wall = time.perf_counter() - t if saved is None else math.nan
        lives[scheme] = live
        meta[scheme] = (hog_cpu_s, live_wall, load_before, os.getloadavg()[0])
    if live_records:
        # full precision: the stamps are epoch seconds (save_csv keeps 6 significant digits)
        args.out.mkdir(parents=True, exist_ok=True)
        pd.concat(live_records, ignore_index=True).to_csv(args.out / "live_records.csv", index=False)
    cals = {scheme: calibrate(live) for scheme, live in lives.items()}
    for i, scheme in enumerate(schemes):
        C.log(f"live_vs_sim: {scheme}: simulating {args.sim_seeds} realisations per model")
        live, cal = lives[scheme], cals[scheme]
        hog_cpu_s, live_wall, load_before, load_after = meta[scheme]
        seeds = [args.seed + k for k in range(args.sim_seeds)]
        by_model = {m: [run_sim(scheme, live, cal, args, k, m) for k in seeds] for m in models}
        sims = by_model[args.overhead_model]
        raws = [run_sim(scheme, live, None, args, k) for k in seeds]
        # the same model without the engine's pickup delay; and every overhead drawn from another scheme's
        # live run (the same workload, other times: time ignored): a held-out check of the calibration
        checks = {"nopickup": [run_sim(scheme, live, cal, args, k, args.overhead_model, pickup=False) for k in seeds]}
        other = schemes[(i + 1) % len(schemes)]
        if other != scheme:
            checks["heldout"] = [run_sim(scheme, live, cals[other], args, k, "shuffled") for k in seeds]
        parts += [{"scheme": scheme, "source": source, **decompose(d)}
                  for source, d in (("live", live), ("sim", sims[0]), ("sim_nopickup", checks["nopickup"][0]))]
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
                     **check_columns(lr, checks, scheme, other),
                     "uncal_mean_err": rv.mean() / lv.mean() - 1, "uncal_ks": ks_distance(lv, rv),
                     "live_wall_s": live_wall})
        figures = {k: v for k, v in cal.items() if k not in ("overhead_samples", "hop_trace", "engine_trace", "pickup_trace")}
        cal_rows.append({"scheme": scheme, **figures,
                         "overhead_s": float(cal["overhead_samples"].mean()),
                         "overhead_p99_s": float(np.percentile(cal["overhead_samples"], 99)),
                         "hop_lag1_corr": _lag1(cal["hop_trace"].overhead_s),
                         "hog": bool(args.hog) if saved is None else math.nan,
                         "hog_cpu_share": hog_cpu_s / live_wall if args.hog and saved is None else math.nan,
                         "loadavg_before": load_before, "loadavg_after": load_after})
    summary = pd.DataFrame(rows)
    C.save_csv(pd.concat(tidy, ignore_index=True), args, "responses.csv")
    C.save_csv(summary, args, "summary.csv")
    C.save_csv(pd.DataFrame(cal_rows), args, "calibration.csv")
    C.save_csv(pd.DataFrame(parts), args, "decomposition.csv")
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
          "run_extra_median_s": "run_extra_median_ms", "run_extra_p99_s": "run_extra_p99_ms",
          "pickup_median_s": "pickup_median_ms", "pickup_mean_s": "pickup_mean_ms", "pickup_p99_s": "pickup_p99_ms"}
    cal_ms = pd.DataFrame(cal_rows)
    cal_ms[list(ms)] = cal_ms[list(ms)] * 1e3
    C.print_table(cal_ms.rename(columns=ms), "calibration from the live run (run_extra = finished − started − length)")
    C.print_table(pd.DataFrame(parts), "where the response time goes (ms; live, simulated, simulated without the "
                                       "pickup delay; first seed)")
    C.print_table(summary, "live vs simulated response times (agrees_5pct: the Monte Carlo test's p > 0.05, or "
                           "KS below the effective-sample critical value; ks_crit_5pct is the iid one, see "
                           "null_reject_iid)")
    return C.done(args)


if __name__ == "__main__":
    raise SystemExit(main())
