"""live_vs_sim's model side: calibrate the simulator from a live run's per-attempt records, and simulate the
same tasks (see experiments/live_vs_sim.py's docstring for the three overhead models and the pickup delay)."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np


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
    module doc) and every hop costs the measured latency; without, the simulation has no overheads.
    `model="shuffled"`: every hop, engine time and pickup an independent draw from `cal`'s traces,
    whatever the time (the held-out check: `cal` measured in another run, whose bursts came at other
    times). `pickup=False`: no pickup delay (a queued task starts when the previous one ends)."""
    from sched_lab.sim import Dist, SimConfig, Workload, run
    from sched_lab.sim.overheads import OverheadTrace

    final = live.drop_duplicates("task", keep="first").sort_values("task")
    sub = final["submitted_at"].to_numpy(float)
    order = np.argsort(sub, kind="stable")
    submit_at = np.maximum.accumulate(sub[order] - sub.min())
    work = final["work"].to_numpy(float)[order]
    window = args.overhead_window_ms / 1000.0
    net: dict[str, Any] = {}
    if cal is not None and model == "shuffled":
        rng = np.random.default_rng([args.seed, seed])
        work = work + cal["engine_trace"].sample("iid", submit_at, rng)
        net = {"latency_trace": cal["hop_trace"], "latency_model": "iid",
               "pickup_trace": cal["pickup_trace"] if pickup else None}
    elif cal is not None and model == "iid":
        rng = np.random.default_rng([args.seed, seed])
        work = work + rng.choice(cal["overhead_samples"], size=len(work))
        net = {"latency": Dist("const", (), cal["latency_s"])} if cal["latency_s"] > 0 else {}
        if pickup and cal["pickup_trace"] is not None:          # a constant too: the median measured
            net["pickup_trace"] = OverheadTrace(np.zeros(1), np.full(1, cal["pickup_median_s"]))
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


def decompose(df: Any) -> dict[str, float]:
    """Where a run's response time goes (means, ms), from the final attempt of each task: the share of
    tasks dispatched to a busy engine (`queued`), their wait there (started − dispatched), the hop to
    an idle engine (the same for the others), and finished − started (engine time + the report hop).
    The same columns for live and simulated records, so each part can be compared."""
    last = df.drop_duplicates("task", keep="last")
    last = last[last["outcome"].astype(str) == "ok"]
    queued = last["engine_load"].astype(float).to_numpy() > 0
    wait = (last["started_at"] - last["dispatched_at"]).to_numpy(float)
    run = (last["finished_at"] - last["started_at"]).to_numpy(float)
    resp = (last["finished_at"] - last["submitted_at"]).to_numpy(float)

    def ms(x: np.ndarray) -> float:
        return 1e3 * float(x.mean()) if len(x) else math.nan

    return {"response_ms": ms(resp), "queued": float(queued.mean()), "wait_queued_ms": ms(wait[queued]),
            "hop_idle_ms": ms(wait[~queued]), "started_to_finished_ms": ms(run)}
