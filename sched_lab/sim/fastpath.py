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
    return (config.latency is None and config.latency_trace is None and config.overhead is None
            and config.mtbf is None and config.worker_mtbf is None and config.retries == 0
            and config.timeout_s is None and config.time_limit_s is None and config.size_hints is None
            and config.actors == 0 and not workload.extras and lane_supports(config.scheme))


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
        busy = [-1] * n_eng                                 # each engine's running task
        started = [0.0] * n_eng
        waiting: list[deque[int]] = [deque() for _ in range(n_eng)] if self.config.hwm != 1 else []
        times: list[float] = []                             # heap of completion times
        ids: dict[float, Any] = {}                          # time -> engine, or a deque of them (ties, FIFO)
        rate, first_u = self._error_rate, self._first_u
        progress = self._on_progress
        inf = math.inf
        i, nxt, n_final, now = 0, sub[0], 0, 0.0
        while True:
            if times and times[0] <= nxt:                   # a completion (before arrivals at the same time)
                now = heappop(times)
                e = ids[now]
                if e.__class__ is int:
                    del ids[now]
                else:                                       # tied completions, in scheduling order
                    tied = e
                    e = tied.popleft()
                    if not tied:
                        del ids[now]
                tid = busy[e]
                st = started[e]
                if waiting and waiting[e]:                  # the engine starts its next task first
                    nt = waiting[e].popleft()
                    busy[e] = nt
                    started[e] = now
                    at = now + work[nt] * inv[e]
                    heappush(times, at)
                    old = ids.get(at)
                    if old is None:
                        ids[at] = e
                    elif old.__class__ is int:
                        ids[at] = deque((old, e))
                    else:
                        old.append(e)
                else:
                    busy[e] = -1
                if rate and first_u[tid] < rate:            # type: ignore[index]
                    out = finish(tid, e, now, st, SIMULATED_ERROR)
                else:
                    out = finish(tid, e, now, st)
                n_final += 1
                if progress is not None and (n_final & 1023 == 0 or n_final == n):
                    progress(n_final)
                if out is None:
                    continue
                dispatched = out
            elif i < n:                                     # every arrival of this instant
                now = nxt
                dispatched = []
                while True:
                    e = submit(now)
                    if e >= 0:
                        if busy[e] < 0:                     # _dispatch below, inlined: once per task
                            busy[e] = i
                            started[e] = now
                            at = now + work[i] * inv[e]
                            heappush(times, at)
                            old = ids.get(at)
                            if old is None:
                                ids[at] = e
                            elif old.__class__ is int:
                                ids[at] = deque((old, e))
                            else:
                                old.append(e)
                        else:
                            waiting[e].append(i)
                    i += 1
                    if i >= n:
                        nxt = inf
                        break
                    nxt = sub[i]
                    if nxt > now:
                        break
                continue
            else:
                break
            for tid, e in dispatched:                       # waiting tasks let through by a completion
                if busy[e] < 0:
                    busy[e] = tid
                    started[e] = now
                    at = now + work[tid] * inv[e]
                    heappush(times, at)
                    old = ids.get(at)
                    if old is None:
                        ids[at] = e
                    elif old.__class__ is int:
                        ids[at] = deque((old, e))
                    else:
                        old.append(e)
                else:
                    waiting[e].append(tid)
        self.n_final = n_final
        self.sim_time = now
        if n_final < n:
            raise SimulationStalled(f"the simulation stalled at t={now:g}: {n - n_final} of {n} tasks never "
                                    "finished (waiting for an engine that cannot come)")
        self._collect()

    def _collect(self) -> None:
        """Records, receipts and n_ok from the lane's columns (numpy, no per-task Python work)."""
        cols = self.lane.columns()
        order = np.frombuffer(cols["task_id"], dtype=np.int64)
        finished = np.frombuffer(cols["finished_at"], dtype=np.float64)
        errors: dict[int, str] = cols["errors"]
        self.received_at[order] = finished
        self.n_ok = len(order) - len(errors)

        def by_task(name: str, dtype: Any) -> np.ndarray:
            return np.frombuffer(cols[name], dtype=dtype)[order].astype(np.float64)

        outcome = np.full(len(order), Outcome.OK, dtype=object) if errors else None
        error_name: list[str | None] | None = None
        if errors:
            error_name = [None] * len(order)
            for k, name in errors.items():
                outcome[k] = Outcome.ERROR                   # type: ignore[index]
                error_name[k] = name
        self.records.add_columns(
            task_id=order.copy(), attempt=np.zeros(len(order), dtype=np.int64),
            engine_id=by_task("engine_id", np.int64), submitted_at=by_task("submitted_at", np.float64),
            dispatched_at=by_task("dispatched_at", np.float64),
            started_at=np.frombuffer(cols["started_at"], dtype=np.float64).copy(), finished_at=finished.copy(),
            queue_len=by_task("queue_len", np.int64), engine_load=by_task("engine_load", np.int64),
            outcome=outcome, error_name=error_name, scheme=self.lane.scheme_name, label=None)
