"""The simulator's fast path: plain runs driven through the core's PlainLane on one heap, with no SimPy event.

How this works. A run that needs none of SimPy's processes (no failures, network latency, scheduler
overhead, timers, time limits, retries, dependencies, requirements, targets, actors, size hints,
and a built-in scheme: `is_plain`) has only two kinds of event: a task's arrival (pre-drawn, in
submission order) and its completion on an engine. `PlainSimulation.run` keeps the completions on
one heap of plain floats (an engine per time in a dict; when times tie, a deque of them in scheduling order)
and hands both kinds to the core's PlainLane (sched_lab/core/lane.py), which decides exactly as
TaskScheduler does. The order of events is the general driver's (driver.py): completions before
arrivals at the same time, ties between completions in the order they were scheduled, every arrival
of one instant handled together, an engine starting its next queued task before the core hears of
the one that ended. So both paths give the same records, receipts and end time for every seed
(tests/sim/test_fast_path.py hashes both over many configurations); `run(config, fast=False)`
forces the general path. Justified by benchmarks/bench_sim.py (the DESIGN §7 simulator goal).

Cost. A task costs ~15,000 machine instructions at 10^4 engines (callgrind, leastload and weighted, hwm 0
and 1, workload generation and records included). About half is the interpreter running this loop and the
lane; a fifth (weighted) to a third (leastload: its lane keeps a heap of idle engines too) is the heaps'
comparisons, a generic rich compare of ~100 instructions each. So the loop keeps its own checks to int and
float compares (specialised bytecodes), allocates nothing it can avoid (no per-event tuple, no per-engine
deque unless tasks wait there), and `_collect` converts only the record columns that need a pass over
every task.
"""

from __future__ import annotations

import math
import random
from array import array
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


def _tie(ids: dict[float, int], tied: dict[float, deque[int]], at: float, old: int, e: int) -> None:
    """Engine e's completion is due at `at` as another's (`old`: that engine, or -1 when `tied[at]` already
    holds the engines due then): after them, in `tied[at]`, with -1 left in `ids[at]`."""
    if old < 0:
        tied[at].append(e)
    else:
        tied[at] = deque((old, e))
        ids[at] = -1


def _wait(queued: dict[int, deque[int]], held: list[int], e: int, tid: int) -> None:
    """Task `tid` waits at engine e, which is running another: after any already waiting there (and it is
    one of the `held`, which start later than they are dispatched)."""
    held.append(tid)
    waiting = queued.get(e)
    if waiting is None:
        queued[e] = deque((tid,))
    else:
        waiting.append(tid)


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
        self._held: list[int] = []

    def run(self) -> None:
        from .driver import SimulationStalled

        lane = self.lane
        speeds = self.config.engine_speeds
        n_eng = len(speeds)
        for e in range(n_eng):
            lane.join(e, speeds[e])
        submit, finish = lane.submit, lane.finish
        inv = [1.0 / s for s in speeds]
        # A task's duration on engine e is work * inv[e]. With one speed for every engine (the common case) the
        # products are taken once, in numpy (the same IEEE products), and the loop adds work[i] alone.
        mixed = len(set(inv)) > 1
        work: list[float] = (self.workload.work if mixed or inv[0] == 1.0 else self.workload.work * inv[0]).tolist()
        sub: list[float] = self.workload.submit_at.tolist()
        n = len(sub)
        inf = math.inf
        sub.append(inf)                                     # (a sentinel: no arrival after the last)
        busy = [-1] * n_eng                                 # each engine's running task
        started = [0.0] * n_eng
        queued: dict[int, deque[int]] = {}                 # engine -> the tasks waiting at it, FIFO (if any)
        held: list[int] = self._held                        # every task that waited at its engine
        # The completion times: a heap of floats that never empties (a sentinel, inf, sits at the bottom), and
        # the engine due at each time (-1 when several are: they are in `tied`, FIFO). The sentinel has no
        # entry in `ids`: popping it (no arrival left either) ends the run. So a completion costs one float
        # compare and one int compare of checks (an emptiness test, a type test for ties and an end test cost
        # ~250 instructions a task more, callgrind).
        times: list[float] = [inf]
        ids: dict[float, int] = {}
        tied: dict[float, deque[int]] = {}
        setdefault, pop = ids.setdefault, ids.pop
        rate, first_u = self._error_rate, self._first_u
        progress = self._on_progress
        i, nxt, now = 0, sub[0], 0.0
        while True:
            if times[0] <= nxt:                             # a completion (before arrivals at the same time)
                now = heappop(times)
                try:
                    e = pop(now)
                except KeyError:                            # the sentinel: nothing left to finish or arrive
                    break
                if e < 0:                                   # tied completions, in scheduling order
                    queue = tied[now]
                    e = queue.popleft()
                    if queue:
                        ids[now] = -1
                    else:
                        del tied[now]
                tid = busy[e]
                st = started[e]
                if queued and e in queued:                  # the engine starts its next task first
                    waiting = queued[e]
                    nt = waiting.popleft()
                    if not waiting:
                        del queued[e]
                    busy[e] = nt
                    started[e] = now
                    at = now + work[nt] * inv[e] if mixed else now + work[nt]
                    heappush(times, at)
                    old = setdefault(at, e)
                    if old is not e:
                        _tie(ids, tied, at, old, e)
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
                        at = now + work[tid] * inv[e] if mixed else now + work[tid]
                        heappush(times, at)
                        old = setdefault(at, e)
                        if old is not e:
                            _tie(ids, tied, at, old, e)
                    else:
                        _wait(queued, held, e, tid)
            else:                                           # every arrival of this instant (nxt < inf here)
                now = nxt
                while True:
                    e = submit(now)
                    if e >= 0:
                        if busy[e] < 0:
                            busy[e] = i
                            started[e] = now
                            at = now + work[i] * inv[e] if mixed else now + work[i]
                            heappush(times, at)
                            old = setdefault(at, e)
                            if old is not e:
                                _tie(ids, tied, at, old, e)
                        else:
                            _wait(queued, held, e, i)
                    i += 1
                    nxt = sub[i]
                    if nxt != now:
                        break
        self.n_final = lane.finished_count
        # The last event (popping the sentinel set `now` to inf): the last arrival, or a completion after it.
        cols = lane.columns()
        done = cols["task_id"]
        self.sim_time = max(sub[n - 1], cols["finished_at"][done[-1]] if done else 0.0)
        if self.n_final < n:
            raise SimulationStalled(f"the simulation stalled at t={self.sim_time:g}: {n - self.n_final} of {n} tasks "
                                    "never finished (waiting for an engine that cannot come)")
        self._collect(cols)

    def _collect(self, cols: dict[str, Any]) -> None:
        """Records, receipts and n_ok from the lane's columns (numpy, no per-task Python work).

        A list of floats becomes an array at ~100 instructions an element (np.fromiter; np.array and
        array.array cost more; ints go faster through array.array), and the gather into completion order
        at ~15, so only the columns that need a pass over every task get one: submitted_at is the
        workload's own (the lane was told exactly these times); dispatched_at and queue_len differ from
        their defaults (submitted_at, 0) only for the tasks that waited in the scheduler (`waited`, few),
        started_at from dispatched_at only for those that waited at their engine (`_held`, few), and
        engine_load is most often 0 for every task. The lane's columns stay the record; these are read
        from the same facts (tests/sim/test_fast_path.py compares every column with the general driver's)."""
        n = cols["n"]
        order = _ints(cols["task_id"])
        errors: dict[int, str] = cols["errors"]

        def scatter(by_id: np.ndarray, tids: list[int], col: list[Any]) -> None:
            """by_id[t] = col[t] for the few task ids `tids`."""
            if tids:
                by_id[np.array(tids, dtype=np.int64)] = [col[t] for t in tids]

        submitted = self.workload.submit_at[:n]
        dispatched = submitted.copy()
        queue_len = np.zeros(n)
        scatter(dispatched, cols["waited"], cols["dispatched_at"])
        scatter(queue_len, cols["waited"], cols["queue_len"])
        started = dispatched.copy()
        scatter(started, self._held, cols["started_at"])
        finished = np.fromiter(cols["finished_at"], dtype=np.float64, count=n)[order]
        loads = cols["engine_load"]
        if loads.count(0) == len(loads):                    # (a C loop of identity tests: ~10 instructions each)
            engine_load = np.zeros(len(order))              # no task went to a busy engine: the usual at load < 1
        else:
            engine_load = _ints(loads)[order]
        self.received_at[order] = finished
        self.n_ok = len(order) - len(errors)
        outcome = None
        error_name: list[str | None] | None = None
        if errors:
            outcome = [Outcome.ERROR if t in errors else Outcome.OK for t in order.tolist()]
            error_name = [errors.get(t) for t in order.tolist()]
        self.records.add_columns(
            task_id=order, attempt=np.zeros(len(order), dtype=np.int64), engine_id=_ints(cols["engine_id"])[order],
            submitted_at=submitted[order], dispatched_at=dispatched[order], started_at=started[order],
            finished_at=finished, queue_len=queue_len[order], engine_load=engine_load, outcome=outcome,
            error_name=error_name, scheme=self.lane.scheme_name, label=None)


def _ints(values: list[int]) -> np.ndarray:
    """A list of ints as an int64 array (array.array's conversion: ~2/3 of np.fromiter's cost for ints)."""
    return np.frombuffer(array("q", values), dtype=np.int64)
