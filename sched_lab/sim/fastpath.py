"""The simulator's fast path: plain runs driven through the core's PlainLane on one heap, with no SimPy event.

How this works. A run that needs none of SimPy's processes (no failures, network latency, scheduler
overhead, timers, time limits, retries, dependencies, requirements, targets, actors, size hints,
and a built-in scheme: `is_plain`) has only two kinds of event: a task's arrival (pre-drawn, in
submission order) and its completion on an engine. `PlainSimulation.run` keeps the completions on
one heap of plain floats (an engine per time in a dict, a list when times tie, in scheduling order)
and hands both kinds to the core's PlainLane (sched_lab/core/lane.py), which decides exactly as
TaskScheduler does. The order of events is the general driver's (driver.py): completions before
arrivals at the same time, ties between completions in the order they were scheduled, every arrival
of one instant handled together, an engine starting its next queued task before the core hears of
the one that ended. So both paths give the same records, receipts and end time for every seed
(tests/sim/test_fast_path.py hashes both over many configurations); `run(config, fast=False)`
forces the general path. Justified by benchmarks/bench_sim.py (the DESIGN §7 simulator goal).
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from heapq import heappop, heappush
from typing import Any

import numpy as np

from ..core.lane import PlainLane, lane_supports
from ..core.model import Outcome
from .config import SimConfig
from .records import ColumnarRecords
from .workloads import Workload

SIMULATED_ERROR = "SimulatedError"


def is_plain(config: SimConfig, workload: Workload) -> bool:
    """Whether a run of `config` on `workload` needs nothing beyond arrivals and completions (the fast path)."""
    return (config.latency is None and config.latency_trace is None and config.pickup_trace is None and config.overhead is None
            and config.mtbf is None and config.worker_mtbf is None and config.retries == 0
            and config.timeout_s is None and config.time_limit_s is None and config.size_hints is None
            and config.actors == 0 and not workload.extras and lane_supports(config.scheme))


def _tie(ids: dict[float, Any], at: float, old: Any, e: int) -> None:
    """Engine e's completion is due at `at` as another's (`old`: an engine, or a deque of them): after them."""
    if old.__class__ is int:
        ids[at] = deque((old, e))
    else:
        old.append(e)


class PlainSimulation:
    """One plain run (see `is_plain`): the same inputs and results as driver.Simulation, on the fast path."""

    def __init__(self, config: SimConfig, workload: Workload, gens: dict[str, np.random.Generator],
                 on_progress: Callable[[int], None] | None = None) -> None:
        if not is_plain(config, workload):
            raise ValueError("this configuration needs the general simulator (sched_lab.sim.driver.Simulation)")
        self.config = config
        self.workload = workload
        n = len(workload)
        seed = int(gens["scheduler"].integers(2**63))          # the general path's draws, stream by stream
        self.lane = PlainLane(config.scheme, config.hwm, random.Random(seed), n)
        rate = config.task_error_rate
        self._error_rate = rate
        self._first_u: Sequence[float] | None = gens["errors"].random(n).tolist() if rate > 0 else None
        self._on_progress = on_progress
        self.records = ColumnarRecords()
        self.n_ok = 0
        self.n_final = 0
        self.sim_time = 0.0
        self.received_at = np.full(n, math.nan)

    def run(self) -> None:
        from .driver import SimulationStalled

        lane = self.lane
        speeds = self.config.engine_speeds
        n_eng = len(speeds)
        for e in range(n_eng):
            lane.join(e, speeds[e])
        submit, finish = lane.submit, lane.finish
        inv = [1.0 / s for s in speeds]
        work: list[float] = self.workload.work.tolist()
        sub: list[float] = self.workload.submit_at.tolist()
        n = len(sub)
        sub.append(math.inf)                                # (a sentinel: no arrival after the last)
        busy = [-1] * n_eng                                 # each engine's running task
        started = [0.0] * n_eng
        waiting: list[deque[int]] = [deque() for _ in range(n_eng)] if self.config.hwm != 1 else []
        times: list[float] = []                             # heap of completion times
        ids: dict[float, Any] = {}                          # time -> engine, or a deque of them (ties, FIFO)
        setdefault = ids.setdefault
        rate, first_u = self._error_rate, self._first_u
        progress = self._on_progress
        inf = math.inf
        i, nxt, now = 0, sub[0], 0.0
        while True:
            if times and times[0] <= nxt:                   # a completion (before arrivals at the same time)
                now = heappop(times)
                e = ids.pop(now)
                if e.__class__ is not int:                  # tied completions, in scheduling order
                    tied = e
                    e = tied.popleft()
                    if tied:
                        ids[now] = tied
                tid = busy[e]
                st = started[e]
                if waiting and waiting[e]:                  # the engine starts its next task first
                    nt = waiting[e].popleft()
                    busy[e] = nt
                    started[e] = now
                    at = now + work[nt] * inv[e]
                    heappush(times, at)
                    old = setdefault(at, e)
                    if old is not e:
                        _tie(ids, at, old, e)
                else:
                    busy[e] = -1
                if rate and first_u[tid] < rate:            # type: ignore[index]
                    out = finish(tid, e, now, st, SIMULATED_ERROR)
                else:
                    out = finish(tid, e, now, st)
                if progress is not None:
                    done = lane.finished_count
                    if done & 1023 == 0 or done == n:
                        progress(done)
                if out is None:
                    continue
                for tid, e in out:                          # waiting tasks let through by the completion
                    if busy[e] < 0:
                        busy[e] = tid
                        started[e] = now
                        at = now + work[tid] * inv[e]
                        heappush(times, at)
                        old = setdefault(at, e)
                        if old is not e:
                            _tie(ids, at, old, e)
                    else:
                        waiting[e].append(tid)
            elif nxt != inf:                                # every arrival of this instant
                now = nxt
                while True:
                    e = submit(now)
                    if e >= 0:
                        if busy[e] < 0:
                            busy[e] = i
                            started[e] = now
                            at = now + work[i] * inv[e]
                            heappush(times, at)
                            old = setdefault(at, e)
                            if old is not e:
                                _tie(ids, at, old, e)
                        else:
                            waiting[e].append(i)
                    i += 1
                    nxt = sub[i]
                    if nxt != now:
                        break
            else:
                break
        self.n_final = lane.finished_count
        self.sim_time = now
        if self.n_final < n:
            raise SimulationStalled(f"the simulation stalled at t={now:g}: {n - self.n_final} of {n} tasks never "
                                    "finished (waiting for an engine that cannot come)")
        self._collect()

    def _collect(self) -> None:
        """Records, receipts and n_ok from the lane's columns (numpy, no per-task Python work)."""
        cols = self.lane.columns()
        n = cols["n"]
        order = np.fromiter(cols["task_id"], dtype=np.int64, count=len(cols["task_id"]))
        errors: dict[int, str] = cols["errors"]

        def by_task(name: str, dtype: Any) -> np.ndarray:
            return np.fromiter(cols[name], dtype=dtype, count=n)[order].astype(np.float64, copy=False)

        finished = by_task("finished_at", np.float64)
        submitted = by_task("submitted_at", np.float64)
        dispatched = by_task("dispatched_at", np.float64)
        dispatched = np.where(np.isnan(dispatched), submitted, dispatched)
        self.received_at[order] = finished
        self.n_ok = len(order) - len(errors)
        outcome = None
        error_name: list[str | None] | None = None
        if errors:
            outcome = [Outcome.ERROR if t in errors else Outcome.OK for t in order.tolist()]
            error_name = [errors.get(t) for t in order.tolist()]
        self.records.add_columns(
            task_id=order, attempt=np.zeros(len(order), dtype=np.int64), engine_id=by_task("engine_id", np.int64),
            submitted_at=submitted, dispatched_at=dispatched, started_at=by_task("started_at", np.float64),
            finished_at=finished, queue_len=by_task("queue_len", np.int64),
            engine_load=by_task("engine_load", np.int64), outcome=outcome, error_name=error_name,
            scheme=self.lane.scheme_name, label=None)
