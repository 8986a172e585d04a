"""The SimPy driver: engine models that carry out the core's actions and report back as events.

How this works. Nothing here decides where a task runs: arrivals become `TaskSubmitted`, and the
driver only executes the actions `TaskScheduler.handle` returns. There is no SimPy process per
task (benchmarks/bench_sim.py: that is what makes the idiomatic model slow). Instead:

- arrivals are pre-drawn, so they need no SimPy event: `_ArrivalEnvironment.step` (overridden the
  way `simpy.rt` overrides it) delivers the next arrival when it is due before the heap's head event;
  arrivals tie-break after events of the same time (departures before arrivals);
- an engine runs one task at a time; starting a task schedules one bare completion entry in
  SimPy's queue (`_ArrivalEnvironment.complete_at`, ordered as a Timeout would be), which reports
  `TaskFinished`; further dispatched tasks (hwm 0 or > 1) wait in the
  engine's FIFO deque; a dead engine's pending completion is recognised as stale by its event id;
- `StartTimer` becomes a Timeout that reports `TimerFired` unless cancelled meanwhile;
- a task longer than its `time_limit_s` runs for that long and reports Outcome.TIME_LIMIT; a running
  task that is stopped (time limit, abort) costs its engine `worker_restart_s` before the next starts;
- failures are one Timeout chain per engine (up Exp(mtbf), down Exp(mttr)) reporting `EngineLost`
  and `EngineJoined`;
- network latency (per hop) and scheduler overhead (per event) are optional: when unset, events
  reach the core synchronously with no extra SimPy event. They draw from separate streams
  ("network", "overhead"), so adding one leaves the other's draws unchanged;
- the client's receipt of each final result (`received_at`, by task id) is the Deliver/Fail time
  plus one controller->client hop (FIFO like every connection); it is stamped without a SimPy event,
  so end-to-end response = received_at - the workload's submit time (four hops with latency).

Events go to the core through the shared EventPump (sched_lab/core/pump.py): reports the driver
makes while carrying out an action list (an unmet requirement, a dispatch to a dead engine) are
posted to it and handed to the core after that list, so actions run in the core's order.
"""

from __future__ import annotations

import math
import random
from collections import deque
from heapq import heappop, heappush
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, Timeout

from ..core.dependency import Dependency
from ..core.errors import TASK_ABORTED, TIME_LIMIT_EXCEEDED
from ..core.model import (
    Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch, DispatchFailed, EngineJoined, EngineLost, Event, Fail,
    Outcome, StartTimer, TaskFinished, TaskSpec, TaskSubmitted, TimerFired, DropActor, WorkerDied, WorkerRestarted,
)
from ..core.pump import EventPump
from .config import SimConfig
from .distributions import Dist
from .overheads import OverheadTrace
from .records import ColumnarRecords
from .workloads import Workload, size_hints

SIMULATED_ERROR = "SimulatedError"
_OK = Outcome.OK                     # (a module global: `Outcome.OK` is a slow class-attribute lookup)
_BLOCK = 8192


class SimulationStalled(RuntimeError):
    """Raised when no event is left but some tasks never reached a final outcome."""


class _ArrivalEnvironment(simpy.Environment):
    """A SimPy Environment that also delivers pre-drawn arrivals and bare task completions.

    `next_arrival` is the time of the next arrival (inf when none); `on_arrival()` handles it and
    must advance `next_arrival`. `complete_at(t, engine)` schedules a task completion without a
    SimPy event: its time goes on a heap of plain floats and its (event id, engine) in a dict by
    time (a list when times tie, in event-id order), and `run` hands it to `on_complete(engine, eid)`.
    It takes an event id from SimPy's own counter and is ordered against SimPy's events by
    (time, NORMAL priority, event id), exactly as a Timeout scheduled at the same moment would be;
    arrivals come after events of the same time. Saves, per task, a Timeout object, its callback
    list and two calls, and halves the heap's cost (floats compare in one step, 4-tuples in three;
    benchmarks/bench_sim.py). `run` replaces SimPy's step loop the way `simpy.rt` overrides `step`;
    every other event is processed as `Environment.step` does.
    """

    def __init__(self) -> None:
        super().__init__()
        self.next_arrival = math.inf
        self.on_arrival: Callable[[], None] = lambda: None
        self.on_complete: Callable[[int, int], None] = lambda engine, eid: None
        self._done_times: list[float] = []                      # heap of pending completion times
        self._done_ids: dict[float, Any] = {}                   # time -> (eid, engine) or a list of them

    def complete_at(self, at: float, engine: int) -> int:
        """Schedule engine `engine`'s completion at time `at`; returns its event id (to tell stale ones)."""
        eid = next(self._eid)
        heappush(self._done_times, at)
        ids = self._done_ids
        entry = ids.get(at)
        if entry is None:
            ids[at] = (eid, engine)
        elif entry.__class__ is tuple:
            ids[at] = [entry, (eid, engine)]
        else:
            entry.append((eid, engine))
        return eid

    def _completion_first(self, at: float) -> bool:
        """Whether the completion due at `at` comes before SimPy's head event (due at the same time)."""
        entry = self._done_ids[at]
        eid = entry[0] if entry.__class__ is tuple else entry[0][0]
        return (NORMAL, eid) < self._queue[0][1:3]

    def _complete_next(self) -> None:
        at = heappop(self._done_times)
        ids = self._done_ids
        entry = ids.pop(at)
        if entry.__class__ is list:
            first = entry.pop(0)
            ids[at] = entry[0] if len(entry) == 1 else entry
            entry = first
        self._now = at
        self.on_complete(entry[1], entry[0])

    def step(self) -> None:
        """Process the next arrival, completion or SimPy event (EmptySchedule when there is none)."""
        times, queue = self._done_times, self._queue
        at = times[0] if times else math.inf
        if queue and (queue[0][0] < at or (queue[0][0] == at and not self._completion_first(at))):
            if self.next_arrival < queue[0][0]:
                self._now = self.next_arrival
                self.on_arrival()
            else:
                super().step()
        elif self.next_arrival < at:
            self._now = self.next_arrival
            self.on_arrival()
        elif times:
            self._complete_next()
        else:
            raise EmptySchedule()

    def run(self, until: Any = None) -> Any:
        """Process events until the event `until` is processed (as Environment.run with an Event)."""
        if not isinstance(until, simpy.Event):
            raise TypeError("_ArrivalEnvironment.run needs an Event to stop at")
        if until.callbacks is None:
            return until.value
        until.callbacks.append(StopSimulation.callback)
        times, queue, ids = self._done_times, self._queue, self._done_ids
        on_complete = self.on_complete
        inf = math.inf
        try:
            while True:
                at = times[0] if times else inf
                if queue and (queue[0][0] < at or (queue[0][0] == at and not self._completion_first(at))):
                    if self.next_arrival < queue[0][0]:
                        self._now = self.next_arrival
                        self.on_arrival()
                    else:
                        simpy.Environment.step(self)
                elif self.next_arrival < at:
                    self._now = self.next_arrival
                    self.on_arrival()
                elif times:
                    heappop(times)                              # _complete_next, inlined
                    entry = ids.pop(at)
                    if entry.__class__ is list:
                        first = entry.pop(0)
                        ids[at] = entry[0] if len(entry) == 1 else entry
                        entry = first
                    self._now = at
                    on_complete(entry[1], entry[0])
                else:
                    raise EmptySchedule()
        except StopSimulation as exc:
            return exc.args[0]
        except EmptySchedule:
            raise RuntimeError(f'No scheduled events left but "until" event was not triggered: {until}') from None


class _Draws:
    """Values of a distribution drawn from one stream in numpy blocks, handed out one at a time."""

    __slots__ = ("_dist", "_rng", "_buf", "_i")

    def __init__(self, dist: Dist, rng: np.random.Generator) -> None:
        self._dist, self._rng, self._buf, self._i = dist, rng, [], 0

    def __call__(self) -> float:
        if self._i >= len(self._buf):
            self._buf, self._i = self._dist.sample(self._rng, _BLOCK).tolist(), 0
        self._i += 1
        return self._buf[self._i - 1]


class _TraceDraws:
    """Delays from a measured trace, by the time they are drawn (SimConfig.latency_trace, pickup_trace)."""

    __slots__ = ("_draw", "_env", "_u", "_model", "_window")

    def __init__(self, config: SimConfig, env: simpy.Environment, rng: np.random.Generator,
                 trace: OverheadTrace) -> None:
        self._draw, self._env = trace.draw_at, env
        self._u = rng
        self._model, self._window = config.latency_model, config.latency_window_s

    def __call__(self) -> float:
        return self._draw(self._env._now, self._u.random(), self._model, self._window)


class Simulation:
    """One run: engines, the core, the workload and the SimPy environment. `run()` returns when every task
    has a final outcome (raises SimulationStalled if that can never happen)."""

    def __init__(self, config: SimConfig, workload: Workload, gens: dict[str, np.random.Generator],
                 modules: Sequence[frozenset[str]] | None = None,
                 on_progress: Callable[[int], None] | None = None) -> None:
        from ..core import TaskScheduler
        from ..core.scheme_api import load_scheme_modules

        load_scheme_modules(config.scheme_modules)    # a config unpickled in a sweep worker: its schemes too
        self.config = config
        self.workload = workload
        self.env = env = _ArrivalEnvironment()
        self.records = ColumnarRecords()
        seed = int(gens["scheduler"].integers(2**63))
        # Independent tasks: nothing can depend on a finished task, so the core forgets it at once.
        self.core = TaskScheduler(config.scheme, config.hwm, random.Random(seed), self.records,
                                  forget_finished=not workload.has_dependencies)
        self._speeds = speeds = config.engine_speeds      # (a property building a new tuple: read once)
        n_eng = len(speeds)
        self._inv_speed = [1.0 / s for s in speeds]
        self._running: list[Dispatch | None] = [None] * n_eng
        self._run_ev: list[int | None] = [None] * n_eng   # the event id of each engine's pending completion
        self._started = [0.0] * n_eng
        self._queue: list[deque[Dispatch]] = [deque() for _ in range(n_eng)]
        self._up = [True] * n_eng
        self._incarnation = [0] * n_eng              # bumped when an engine fails (its connection dies)
        self._modules = list(modules) if modules is not None else [frozenset()] * n_eng
        self._platform = f"platform={config.platform}"
        self._work: list[float] = workload.work.tolist()
        self._submit_at: list[float] = workload.submit_at.tolist()
        self._n = len(self._work)
        self._next = 0
        self._requires = {tid: ex.requires for tid, ex in workload.extras.items() if ex.requires}
        self._timers: set[int] = set()
        self.n_final = 0                              # tasks with a final outcome (delivered or failed)
        self.n_ok = 0
        self._done = env.event()
        self._on_progress = on_progress
        rate = config.task_error_rate
        self._error_rate = rate
        self._errors = gens["errors"]
        self._first_u = self._errors.random(self._n).tolist() if rate > 0 else None
        self._latency: Callable[[], float] | None = (
            _Draws(config.latency, gens["network"]) if config.latency else
            _TraceDraws(config, env, gens["network"], config.latency_trace) if config.latency_trace is not None else None)
        self._pickup = (_TraceDraws(config, env, gens["pickup"], config.pickup_trace)
                        if config.pickup_trace is not None else None)
        self._overhead = _Draws(config.overhead, gens["overhead"]) if config.overhead else None
        self.received_at = [math.nan] * self._n       # client receipt of each task's final result
        self._sched_free = 0.0
        self._channels: dict[Any, float] = {}
        self._fail_rng = gens["failures"]
        self._gens_worker = gens["worker_failures"]
        self.worker_crashes = 0                       # worker crashes while the engine was up (worker_mtbf)
        self._spec_kw = {"retries": config.retries, "timeout_s": config.timeout_s,
                         "time_limit_s": config.time_limit_s}
        self._plain_spec = config.retries == 0 and config.timeout_s is None and config.time_limit_s is None \
            and config.size_hints is None
        self._hints = (size_hints(config.size_hints, workload.work, gens["hints"]).tolist()
                       if config.size_hints is not None else None)
        self._time_limit = config.time_limit_s
        self._restart_s = config.worker_restart_s
        self._cut = [False] * n_eng                   # the running task is cut at its time limit
        self._restarting = [False] * n_eng            # the engine's worker is being restarted
        self.pump = EventPump(self.core, {
            Dispatch: self._do_dispatch, Deliver: self._do_deliver, Fail: self._do_fail,
            StartTimer: self._do_start_timer, CancelTimer: self._do_cancel_timer, Cancel: self._cancel,
            DropActor: lambda action: None,           # (the workloads never kill actors; an instance is only state)
        })

    # ------------------------------------------------------------------------------- running

    @property
    def sim_time(self) -> float:
        """The simulated time now (at the end of `run`: the last final outcome)."""
        return float(self.env.now)

    def run(self) -> None:
        env = self.env
        for e in range(len(self._up)):
            self._handle(EngineJoined(0.0, e, self._speeds[e]))
        if self.config.mtbf is not None:
            for e in range(len(self._up)):
                self._after(float(self._fail_rng.exponential(self.config.mtbf)), self._on_engine_fail, e)
        if self.config.worker_mtbf is not None:
            self._worker_rng = self._gens_worker
            for e in range(len(self._up)):
                self._after(float(self._worker_rng.exponential(self.config.worker_mtbf)), self._on_worker_crash, e)
        env.on_arrival = self._on_arrival
        env.on_complete = self._on_complete
        env.next_arrival = self._submit_at[0]
        try:
            env.run(until=self._done)
        except RuntimeError as exc:
            if self._done.triggered:
                raise
            raise SimulationStalled(f"the simulation stalled at t={env.now:g}: {self._n - self.n_final} of "
                                    f"{self._n} tasks never finished (waiting for an engine or a "
                                    "dependency that cannot come)") from exc

    def _after(self, delay: float, callback: Callable[[Any], None], value: Any) -> None:
        ev = Timeout(self.env, delay, value)
        ev.callbacks.append(callback)

    # ----------------------------------------------------------------------------- the core

    def _handle(self, event: Event) -> None:
        """Give one event to the core and carry out its actions (then any reports they caused)."""
        self.pump.feed(event)

    # The pump's action handlers, one per action type (_cancel is with the engines below).
    def _do_dispatch(self, action: Any) -> None:      # a Dispatch (the simulator's ids are ints)
        e = action.engine_id
        if self._latency is not None:
            self._send(("to", e), self._on_dispatch_arrives, (action, self._incarnation[e]))
        elif self._running[e] is None and not self._requires and self._up[e] and self._time_limit is None \
                and not self._restarting[e]:
            env = self.env                                                           # _start, inlined
            self._run_ev[e] = env.complete_at(env._now + self._work[action.task_id] * self._inv_speed[e], e)
            self._running[e] = action
            self._started[e] = env._now
        else:
            self._engine_receive(action)

    def _do_deliver(self, action: Deliver) -> None:
        self.n_ok += action.ok
        self.received_at[action.task_id] = self.env._now if self._latency is None else self._to_client()
        self.n_final = n = self.n_final + 1
        if n % 1024 == 0 or n == self._n:
            self._final_tick(n)

    def _do_fail(self, action: Fail) -> None:
        self.received_at[action.task_id] = self.env._now if self._latency is None else self._to_client()
        self.n_final = n = self.n_final + 1
        if n % 1024 == 0 or n == self._n:
            self._final_tick(n)

    def _do_start_timer(self, action: StartTimer) -> None:
        self._timers.add(action.token)
        self._after(max(0.0, action.deadline - self.env._now), self._on_timer, action.token)

    def _do_cancel_timer(self, action: CancelTimer) -> None:
        self._timers.discard(action.token)

    def _send(self, channel: Any, callback: Callable[[Any], None], value: Any) -> None:
        """Deliver over a network connection: latency drawn per message, FIFO per connection (TCP-like)."""
        now = self.env._now
        at = max(now + self._latency(), self._channels.get(channel, 0.0))  # type: ignore[misc]
        self._channels[channel] = at
        self._after(at - now, callback, value)

    def _to_client(self) -> float:
        """When a final result sent to the client now arrives there (the controller->client hop)."""
        now = self.env._now
        if not self.config.client_latency:
            return now
        at = max(now + self._latency(), self._channels.get("to client", 0.0))  # type: ignore[misc]
        self._channels["to client"] = at
        return at

    def _report(self, make: Callable[..., Any], *args: Any, channel: Any = "client") -> None:
        """A message to the scheduler (from the client or an engine), through the network and the
        scheduler's overhead if set."""
        if self._latency is None and self._overhead is None:
            self._handle(make(self.env._now, *args))
        elif self._latency is None:
            self._on_sched_arrival_now(make, args)
        elif channel == "client" and not self.config.client_latency:      # the client sits by the scheduler
            self._on_sched_arrival((make, args))
        else:
            self._send(channel, self._on_sched_arrival, (make, args))

    def _on_sched_arrival(self, ev: Any) -> None:
        make, args = ev._value if isinstance(ev, Timeout) else ev
        if self._overhead is None:
            self._handle(make(self.env._now, *args))
        else:
            self._on_sched_arrival_now(make, args)

    def _on_sched_arrival_now(self, make: Callable[..., Any], args: tuple) -> None:
        now = self.env._now
        self._sched_free = max(now, self._sched_free) + self._overhead()  # type: ignore[misc]
        self._after(self._sched_free - now, self._on_sched_handle, (make, args))

    def _on_sched_handle(self, ev: Timeout) -> None:
        make, args = ev._value
        self._handle(make(self.env._now, *args))

    def _final_tick(self, n: int) -> None:
        """Every 1024 final outcomes (and at the last): flush records, progress, finish."""
        if n % 4096 == 0:       # while the rows are still in the CPU's cache: half the cost of every 65536
            self.records.flush()
        if self._on_progress is not None:
            self._on_progress(n)
        if n == self._n:
            self._done.succeed()

    # ------------------------------------------------------------------------------ arrivals

    def _spec(self, tid: int) -> TaskSpec:
        ex = self.workload.extras.get(tid)
        hint = self._hints[tid] if self._hints is not None else None
        if ex is None:
            return TaskSpec(tid) if self._plain_spec else TaskSpec(tid, size_hint=hint, **self._spec_kw)
        if ex.creates is not None or ex.actor is not None:
            from .actors import actor_spec

            return actor_spec(tid, ex, self.config, self._spec_kw)
        return TaskSpec(tid, targets=frozenset(ex.targets) if ex.targets else None,
                        after=Dependency(ex.after) if ex.after else None,
                        follow=Dependency(ex.follow) if ex.follow else None, size_hint=hint, **self._spec_kw)

    def _on_arrival(self) -> None:
        now = self.env._now
        sub, n, i = self._submit_at, self._n, self._next
        direct = self._latency is None and self._overhead is None
        plain = self._plain_spec and not self.workload.extras
        while True:
            spec = TaskSpec(i) if plain else self._spec(i)
            if direct:
                self.pump.feed(TaskSubmitted(now, spec))
            else:
                self._report(TaskSubmitted, spec)
            i += 1
            if i >= n or sub[i] > now:
                break
        self._next = i
        self.env.next_arrival = sub[i] if i < n else math.inf

    # ------------------------------------------------------------------------------- engines

    def _on_dispatch_arrives(self, ev: Timeout) -> None:
        action, incarnation = ev._value
        if incarnation != self._incarnation[action.engine_id]:
            return              # sent to an earlier life of the engine: lost with that connection
        self._engine_receive(action)
        self.pump.flush()

    def _engine_receive(self, action: Dispatch) -> None:
        e = action.engine_id
        if not self._up[e]:
            self._defer_report(DispatchFailed, e, action.task_id, e, action.attempt)
        elif self._running[e] is None and not self._restarting[e]:
            self._start(e, action)
        else:
            self._queue[e].append(action)

    def _defer_report(self, make: Callable[..., Any], e: int, *args: Any) -> None:
        """Engine e's report (`make(now, *args)`), handed to the core after the current action list."""
        if self._latency is None and self._overhead is None:
            self.pump.post(make(self.env._now, *args))
        else:
            self._report(make, *args, channel=("from", e))

    def _start(self, e: int, action: Dispatch) -> None:
        """Start `action` on idle engine e, or the next startable task of its queue."""
        requires = self._requires
        queue = self._queue[e]
        while True:
            tid = action.task_id
            if requires and tid in requires and not self._has(e, requires[tid]):
                self._defer_report(DependencyUnmet, e, tid, e, action.attempt)
            else:
                duration = self._work[tid] * self._inv_speed[e]
                limit = self._time_limit
                self._cut[e] = cut = limit is not None and duration > limit
                env = self.env
                self._run_ev[e] = env.complete_at(env._now + (limit if cut else duration), e)  # type: ignore[operator]
                self._running[e] = action
                self._started[e] = env._now
                return
            if not queue:
                return
            action = queue.popleft()

    def _has(self, e: int, needed: frozenset[str]) -> bool:
        mods = self._modules[e]
        return all(m in mods or m == self._platform for m in needed)

    def _on_complete(self, e: int, eid: int) -> None:
        if self._run_ev[e] != eid:
            return                                  # the engine died (or its task was stopped) meanwhile
        action = self._running[e]
        started = self._started[e]
        self._running[e] = None
        self._run_ev[e] = None
        queue = self._queue[e]
        outcome, error = _OK, None
        if self._cut[e]:
            outcome, error = Outcome.TIME_LIMIT, TIME_LIMIT_EXCEEDED
            self._restart_worker(e)
        elif queue:
            if self._pickup is None:
                self._start(e, queue.popleft())
            else:                                   # the next queued task reaches the worker after a delay
                self._restarting[e] = True
                self._after(self._pickup(), self._on_worker_ready, (e, self._incarnation[e]))
        if self._error_rate and outcome is _OK:
            tid = action.task_id
            u = self._first_u[tid] if action.attempt == 0 else self._errors.random()  # type: ignore[index]
            if u < self._error_rate:
                outcome, error = Outcome.ERROR, SIMULATED_ERROR
        if self._latency is None and self._overhead is None:
            self.pump.feed(TaskFinished(self.env._now, action.task_id, e, action.attempt, outcome, error, started))
        else:
            self._report(TaskFinished, action.task_id, e, action.attempt, outcome, error, started, channel=("from", e))
            self.pump.flush()

    def _restart_worker(self, e: int) -> None:
        """Engine e stopped its running task: its worker restarts, then it takes the next queued task."""
        self._restarting[e] = True
        self._after(self._restart_s, self._on_worker_ready, (e, self._incarnation[e]))

    def _on_worker_ready(self, ev: Timeout) -> None:
        e, incarnation = ev._value
        if incarnation != self._incarnation[e]:
            return                                  # the engine died meanwhile
        self._restarting[e] = False
        if self._queue[e] and self._running[e] is None:
            self._start(e, self._queue[e].popleft())
            self.pump.flush()

    def _cancel(self, action: Cancel) -> None:
        e = action.engine_id
        running = self._running[e]
        if running is not None and running.task_id == action.task_id and running.attempt == action.attempt:
            self._running[e] = None                 # stopped: its completion, when due, is stale
            self._run_ev[e] = None
            self._restart_worker(e)
            self._defer_report(TaskFinished, e, action.task_id, e, action.attempt, Outcome.ABORTED, TASK_ABORTED,
                               self._started[e])
            return
        queue = self._queue[e]
        for queued in queue:
            if queued.task_id == action.task_id and queued.attempt == action.attempt:
                queue.remove(queued)
                self._defer_report(TaskFinished, e, action.task_id, e, action.attempt, Outcome.ABORTED, TASK_ABORTED,
                                   None)
                return

    # ------------------------------------------------------------------------ failures, timers

    def _on_engine_fail(self, ev: Timeout) -> None:
        e = ev._value
        self._up[e] = False
        self._incarnation[e] += 1
        self._running[e] = None
        self._run_ev[e] = None
        self._queue[e].clear()
        self._restarting[e] = False                   # a repaired engine comes back with a fresh worker
        self._handle(EngineLost(self.env._now, e, "simulated failure"))
        self._after(float(self._fail_rng.exponential(self.config.mttr)) if self.config.mttr else 0.0,
                    self._on_engine_repair, e)

    def _on_worker_crash(self, ev: Timeout) -> None:
        """Engine e's worker dies (sim/actors.py): its running task is lost (WorkerDied), calls queued for
        the actor instances it held are dropped (the core takes them back), the worker restarts."""
        e = ev._value
        self._after(float(self._worker_rng.exponential(self.config.worker_mtbf)), self._on_worker_crash, e)
        if not self._up[e]:
            return
        self.worker_crashes += 1
        running = self._running[e]
        self._running[e] = None
        self._run_ev[e] = None
        extras = self.workload.extras
        queue = self._queue[e]
        kept = [a for a in queue if not ((ex := extras.get(a.task_id)) is not None and ex.actor is not None)]
        queue.clear()
        queue.extend(kept)
        if not self._restarting[e]:
            self._restart_worker(e)
        if running is not None:
            self._handle(WorkerDied(self.env._now, running.task_id, e, running.attempt, "simulated worker crash"))
        self._handle(WorkerRestarted(self.env._now, e, "simulated worker crash"))

    def _on_engine_repair(self, ev: Timeout) -> None:
        e = ev._value
        self._up[e] = True
        self._handle(EngineJoined(self.env._now, e, self._speeds[e]))
        self._after(float(self._fail_rng.exponential(self.config.mtbf)), self._on_engine_fail, e)

    def _on_timer(self, ev: Timeout) -> None:
        token = ev._value
        if token in self._timers:
            self._timers.discard(token)
            if self._overhead is None:                  # timers are local to the scheduler: no network
                self._handle(TimerFired(self.env._now, token))
            else:
                self._on_sched_arrival_now(TimerFired, (token,))
            self.pump.flush()
