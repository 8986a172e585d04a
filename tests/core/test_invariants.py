"""Property test: a hypothesis state machine drives TaskScheduler with random event sequences.

It plays the driver: engines join, die and come back, tasks are submitted (random after/follow dependencies on
earlier tasks, targets, retries, timeouts), running tasks finish (ok, error or past their time limit),
lose their worker (the engine stays), report unmet functional dependencies or failed dispatches, timers fire at their deadlines (in deadline order, the
clock advancing), tasks are aborted, resubmitted and purged. Every action is checked as it comes out
and the whole state after every step:

- each task reaches exactly one terminal state (one Deliver or one Fail, never both, never two);
- nothing is dispatched before its `after` is met, nor where its `follow` is not met;
- never above hwm on any engine; never dispatched to a dead or blacklisted engine or outside targets;
- attempts <= 1 + retries, numbered 0, 1, ... (an unmet report keeps the number);
- never running on two engines at once; a running task is never failed by the scheduler;
- a retry goes to an engine the task has not failed on whenever such a live candidate exists;
- a task aborted while it ran is never dispatched again (it ends with its attempt);
- FIFO among unrestricted tasks (no after/follow/targets): first dispatches in submission order;
- one record per attempt end plus one per scheduler failure; counters agree with the driver's view;
- same seed -> same actions (the events are replayed into a fresh scheduler at teardown);
- nothing hangs: at teardown, with a live engine, running tasks are finished and due timers fired
  until quiet; then every task has reached a terminal state.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from sched_lab.core import (
    AbortRequested, Cancel, CancelTimer, Deliver, Dependency, DependencyUnmet, Dispatch, DispatchFailed,
    EngineJoined, EngineLost, Fail, Outcome, PurgeRequested, StartTimer, TaskFinished, TaskResubmitted, TaskScheduler,
    TaskSpec, TaskSubmitted, TimerFired, WorkerDied,
)

SCHEMES = ["leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd", "powerofd:d=3", "jiq", "fastest"]
SCHEDULER_FAILURES = {"TaskTimeout", "ImpossibleDependency", "InvalidDependency", "TaskAborted"}
DEP_FLAGS = [dict(), dict(all=False), dict(success=False, failure=True), dict(success=True, failure=True),
             dict(all=False, success=True, failure=True)]


class SchedulerMachine(RuleBasedStateMachine):
    """The driver model; `self.s` is the scheduler under test."""

    @initialize(scheme=st.sampled_from(SCHEMES), hwm=st.sampled_from([0, 1, 1, 2]), seed=st.integers(0, 2**20),
                engines=st.integers(0, 3))
    def setup(self, scheme: str, hwm: int, seed: int, engines: int) -> None:
        self.scheme, self.hwm, self.seed = scheme, hwm, seed
        self.s = TaskScheduler(scheme=scheme, hwm=hwm, rng=random.Random(seed))
        self.now = 0.0
        self.history: list[tuple[Any, list]] = []      # (event, actions) for the replay check
        self.live: list[int] = []
        self.ever: list[int] = []
        self.next_engine = 0
        self.specs: dict[int, TaskSpec] = {}
        self.order: list[int] = []                    # submission order
        self.resubmitted: set[int] = set()
        self.forgotten: dict[int, set] = {}           # resubmitted task -> dep ids unknown at resubmission
        self.broken = False
        self.purged: set[int] = set()
        self.terminal: dict[int, Any] = {}            # task -> its Deliver / Fail
        self.running: dict[int, tuple[int, int]] = {}  # task -> (engine, attempt) as the driver sees it
        self.last_attempt: dict[int, int] = {}
        self.expect_next: dict[int, str] = {}         # "same" after unmet, "next" after a failed attempt
        self.blacklist: dict[int, set[int]] = {}
        self.failed_on: dict[int, set[int]] = {}
        self.aborting: set[int] = set()                # aborted while running: must never run again
        self.completed: set[int] = set()
        self.failed: set[int] = set()
        self.done_on: dict[int, tuple[set[int], set[int]]] = {}   # engine -> (completed, failed) there
        self.fresh_waiting: list[int] = []             # unrestricted tasks never dispatched, in order
        self.timers: dict[int, float] = {}            # live token -> deadline
        self.dead_tokens: set[int] = set()
        self.attempt_ends: Counter = Counter()
        self.sched_fails: Counter = Counter()
        for _ in range(engines):
            self._join()

    # ------------------------------------------------------------------------------ the driver

    def _handle(self, event: Any) -> list:
        self.broken = True                 # until the checks pass: teardown must not mask a failure
        try:
            acts = self.s.handle(event)
        except Exception as exc:
            raise AssertionError(f"the scheduler raised {exc!r} on {event!r}; history:\n"
                                 f"{self._story(set(self.specs))}") from exc
        self.history.append((event, acts))
        for a in acts:
            try:
                self._check_action(event, a)
            except AssertionError as exc:
                tid = getattr(a, "task_id", None)
                raise AssertionError(f"{exc}\nhistory of task {tid}:\n{self._story({tid})}") from None
        self.broken = False
        return acts

    def _forgotten(self, t: int) -> set:
        """Dependency ids a resubmitted task does not wait for: unknown to the scheduler when resubmitted."""
        return self.forgotten.get(t, set())

    def _check_action(self, event: Any, a: Any) -> None:
        if isinstance(a, Dispatch):
            self._check_dispatch(a)
        elif isinstance(a, Deliver):
            t = a.task_id
            assert isinstance(event, TaskFinished) and (event.task_id, event.engine_id, event.attempt) == \
                (t, a.engine_id, a.attempt) and (event.outcome is Outcome.OK) == a.ok, (event, a)
            self._terminate(t, a)
            (self.completed if a.ok else self.failed).add(t)
            self.done_on.setdefault(a.engine_id, (set(), set()))[0 if a.ok else 1].add(t)
        elif isinstance(a, Fail):
            t = a.task_id
            assert t not in self.running, f"{a} while {t} runs on {self.running[t]}"
            self._terminate(t, a)
            self.failed.add(t)
            if a.error_name in SCHEDULER_FAILURES:
                self.sched_fails[t] += 1
            else:
                assert a.error_name == "EngineError", a
        elif isinstance(a, Cancel):
            assert isinstance(event, AbortRequested) and event.task_id == a.task_id, (event, a)
            assert self.running.get(a.task_id) == (a.engine_id, a.attempt), (a, self.running.get(a.task_id))
        elif isinstance(a, StartTimer):
            assert a.token not in self.timers and a.token not in self.dead_tokens, f"token reused: {a}"
            assert a.deadline >= self.now, (a, self.now)
            self.timers[a.token] = a.deadline
        elif isinstance(a, CancelTimer):
            assert a.token in self.timers, f"cancelling an unknown or dead timer {a}"
            del self.timers[a.token]
            self.dead_tokens.add(a.token)
        else:
            raise AssertionError(f"unknown action {a!r}")

    def _terminate(self, t: int, a: Any) -> None:
        assert t in self.specs, f"terminal action for unknown task: {a}"
        assert t not in self.terminal, f"second terminal action {a}; first was {self.terminal[t]}"
        self.terminal[t] = a
        if t in self.fresh_waiting:
            self.fresh_waiting.remove(t)

    def _check_dispatch(self, d: Dispatch) -> None:
        t, e, att = d.task_id, d.engine_id, d.attempt
        spec = self.specs[t]
        assert t not in self.terminal, f"{d} after terminal {self.terminal[t]}"
        assert t not in self.running, f"{d} while already running on {self.running[t]}"
        assert t not in self.aborting, f"{d}: the task was aborted while it ran"
        assert e in self.live, f"{d} to a dead engine (live: {self.live})"
        assert e not in self.blacklist.get(t, ()), f"{d} to a blacklisted engine {self.blacklist[t]}"
        if spec.targets is not None:
            assert e in spec.targets, f"{d} outside targets {set(spec.targets)}"
        assert att <= spec.retries, f"{d}: attempt beyond 1 + retries ({spec.retries})"
        prev = self.last_attempt.get(t)
        if prev is None:
            assert att == 0, d
        else:
            want = prev if self.expect_next[t] == "same" else prev + 1
            assert att == want, f"{d}: expected attempt {want}"
        if spec.after is not None:
            ids = spec.after.ids - self._forgotten(t)
            dep = Dependency(ids, all=spec.after.all, success=spec.after.success, failure=spec.after.failure)
            assert not ids or dep.check(self.completed, self.failed), f"{d} before its after {spec.after} is met"
        if spec.follow is not None and not spec.follow.ids & self._forgotten(t):
            assert self._follow_ok(spec.follow, e) is not False, f"{d} where follow {spec.follow} is not met"
        tried = self.failed_on.get(t, set())
        if e in tried and (spec.follow is None or self._follow_ok(spec.follow, e) is not None):
            better = [x for x in self.live if x not in tried and x not in self.blacklist.get(t, ())
                      and (spec.targets is None or x in spec.targets)
                      and (spec.follow is None or self._follow_ok(spec.follow, x)) and not self._actors_hold(x)]
            assert not better, f"{d} on an engine it failed on while untried {better} are live"
        if t in self.fresh_waiting:
            assert self.fresh_waiting[0] == t, f"{d} before older unrestricted {self.fresh_waiting[0]} (FIFO)"
            self.fresh_waiting.remove(t)
        self.running[t] = (e, att)
        self.last_attempt[t] = att

    def _follow_ok(self, follow: Dependency, e: int) -> bool | None:
        """Whether `follow` is met on engine e, judged on the outcomes delivered there; None (no
        opinion) when a counted dependency was failed by the scheduler, whose location the contract
        leaves open (it never finished on an engine, or its engine died or refused the dispatch)."""
        if follow.failure and any(isinstance(self.terminal.get(x), Fail) for x in follow.ids):
            return None
        here_ok, here_bad = self.done_on.get(e, (set(), set()))
        return follow.check(here_ok, here_bad)

    def _join(self) -> list:
        e = self.next_engine
        self.next_engine += 1
        self.live.append(e)
        self.ever.append(e)
        return self._handle(EngineJoined(self.now, e, float(1 + e % 3)))   # speeds 1, 2, 3 (for fastest)

    def _advance(self, dt: float) -> None:
        """Move the clock; timers due on the way fire at their deadlines, in deadline order."""
        target = self.now + dt
        while self.timers:
            token, deadline = min(self.timers.items(), key=lambda kv: (kv[1], kv[0]))
            if deadline > target:
                break
            self._fire(token)
        self.now = max(self.now, target)

    def _fire(self, token: int) -> None:
        self.now = max(self.now, self.timers[token])
        del self.timers[token]
        self.dead_tokens.add(token)
        self._handle(TimerFired(self.now, token))

    def _end_attempt(self, t: int) -> tuple[int, int]:
        e, att = self.running.pop(t)
        self.attempt_ends[t] += 1
        return e, att

    # -------------------------------------------------------------------------------- rules

    @rule(dt=st.floats(0, 1.5))
    def join(self, dt: float) -> None:
        self._advance(dt)
        self._join()

    # the busiest rules twice over, so a run spends its steps on task lifecycles rather than joins
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def submit_again(self, data: st.DataObject, dt: float) -> None:
        self.submit(data, dt)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), ok=st.booleans(), dt=st.floats(0, 1.5))
    def finish_again(self, data: st.DataObject, ok: bool, dt: float) -> None:
        self.finish(data, ok, dt)

    @precondition(lambda self: len(self.ever) > len(self.live))
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def rejoin(self, data: st.DataObject, dt: float) -> None:
        """A lost engine comes back under the same id."""
        self._advance(dt)
        e = data.draw(st.sampled_from([x for x in self.ever if x not in self.live]))
        self.live.append(e)
        self._handle(EngineJoined(self.now, e, float(1 + e % 3)))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def lose(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        e = data.draw(st.sampled_from(self.live))
        self.live.remove(e)
        for t, (where, _) in list(self.running.items()):
            if where == e:
                self._end_attempt(t)
                self.failed_on.setdefault(t, set()).add(e)
                self.expect_next[t] = "next"
        self._handle(EngineLost(self.now, e))

    def _dep(self, data: st.DataObject, pool: list[int], max_ids: int) -> Dependency | None:
        if not pool or data.draw(st.integers(0, 2)) == 0:
            return None
        ids = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=max_ids, unique=True))
        return Dependency(ids, **data.draw(st.sampled_from(DEP_FLAGS)))

    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def submit(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = len(self.specs)
        known = [x for x in self.order if x not in self.purged]
        after = self._dep(data, known[-8:], 3)
        follow = self._dep(data, known[-8:], 2) if data.draw(st.booleans()) else None
        invalid = data.draw(st.integers(0, 19)) == 0
        if invalid:
            bad = data.draw(st.sampled_from(["ghost", t] + sorted(self.purged)[:3]))
            after = Dependency(([bad] + list(after.ids)) if after else [bad])
        targets = None
        if self.ever and data.draw(st.integers(0, 3)) == 0:
            targets = frozenset(data.draw(st.lists(st.sampled_from(self.ever + [999]), min_size=1, max_size=3)))
        spec = TaskSpec(t, targets=targets, after=after, follow=follow, retries=data.draw(st.integers(0, 2)),
                        timeout_s=data.draw(st.sampled_from([None, None, 0.5, 2.0, 5.0])))
        self._submit_spec(spec, TaskSubmitted(self.now, spec))
        if invalid:
            assert isinstance(self.terminal.get(t), Fail) and self.terminal[t].error_name == "InvalidDependency", \
                self.terminal.get(t)

    def _submit_spec(self, spec: TaskSpec, event: Any) -> None:
        t = spec.task_id
        self.specs[t] = spec
        self.order.append(t)
        if spec.targets is None and spec.after is None and spec.follow is None:
            self.fresh_waiting.append(t)
        self._handle(event)

    @precondition(lambda self: any(t not in self.purged for t in self.terminal))
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def resubmit(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        old = data.draw(st.sampled_from(sorted(t for t in self.terminal if t not in self.purged)))
        o = self.specs[old]
        t = len(self.specs)
        spec = TaskSpec(t, targets=o.targets, after=o.after, follow=o.follow, retries=o.retries,
                        timeout_s=o.timeout_s, label=o.label)
        self.resubmitted.add(t)
        deps = (o.after.ids if o.after else set()) | (o.follow.ids if o.follow else set())
        self.forgotten[t] = {x for x in deps if x not in self.specs or x in self.purged}
        self._submit_spec(spec, TaskResubmitted(self.now, spec))

    @precondition(lambda self: self.running)
    @rule(data=st.data(), ok=st.booleans(), dt=st.floats(0, 1.5))
    def finish(self, data: st.DataObject, ok: bool, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(self.running)))
        e, att = self._end_attempt(t)
        outcome, ename = Outcome.OK, None
        if not ok:
            self.failed_on.setdefault(t, set()).add(e)
            self.expect_next[t] = "next"
            outcome, ename = data.draw(st.sampled_from([(Outcome.ERROR, "ValueError"),
                                                        (Outcome.TIME_LIMIT, "TimeLimitExceeded")]))
        acts = self._handle(TaskFinished(self.now, t, e, att, outcome, ename, self.now))
        spec = self.specs[t]
        if ok or att >= spec.retries or t in self.aborting:
            assert Deliver(t, e, att, ok) in acts, (t, acts)

    @precondition(lambda self: self.running)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def worker_died(self, data: st.DataObject, dt: float) -> None:
        """The task's worker process died; its engine stays live."""
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(self.running)))
        e, att = self._end_attempt(t)
        self.failed_on.setdefault(t, set()).add(e)
        self.expect_next[t] = "next"
        acts = self._handle(WorkerDied(self.now, t, e, att, "killed"))
        if att >= self.specs[t].retries or t in self.aborting:
            assert [a for a in acts if isinstance(a, Fail) and a.task_id == t and a.error_name == "EngineError"], acts

    @precondition(lambda self: self.running)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def unmet(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(self.running)))
        e, att = self._end_attempt(t)
        self.blacklist.setdefault(t, set()).add(e)
        self.expect_next[t] = "same"
        self._handle(DependencyUnmet(self.now, t, e, att))

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def dispatch_failed(self, data: st.DataObject) -> None:
        t = data.draw(st.sampled_from(sorted(self.running)))
        e, att = self._end_attempt(t)
        self.failed_on.setdefault(t, set()).add(e)
        self.expect_next[t] = "next"
        self._handle(DispatchFailed(self.now, t, e, att))

    @precondition(lambda self: self.timers)
    @rule()
    def fire_next_timer(self) -> None:
        token, _ = min(self.timers.items(), key=lambda kv: (kv[1], kv[0]))
        self._fire(token)

    @precondition(lambda self: self.dead_tokens)
    @rule(data=st.data())
    def fire_stale_timer(self, data: st.DataObject) -> None:
        token = data.draw(st.sampled_from(sorted(self.dead_tokens)))
        assert self._handle(TimerFired(self.now, token)) == []

    @precondition(lambda self: self.running or self.terminal)
    @rule(data=st.data())
    def stale_report(self, data: st.DataObject) -> None:
        """A report for an attempt that is not running (old attempt, other engine, finished task)."""
        t = data.draw(st.sampled_from(sorted(set(self.running) | set(self.terminal))))
        e, att = self.running.get(t, (self.last_attempt.get(t, 0) and 0, self.last_attempt.get(t, 0)))
        if t in self.running:
            e, att = data.draw(st.sampled_from([(e, att + 1), (e + 1000, att)]))
        else:
            e = data.draw(st.sampled_from(self.ever)) if self.ever else 0
        ev = data.draw(st.sampled_from([TaskFinished(self.now, t, e, att, Outcome.OK), DependencyUnmet(self.now, t, e, att)]))
        assert self._handle(ev) == [], ev

    @precondition(lambda self: len(self.specs) > len(self.purged))
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def abort(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(t for t in self.specs if t not in self.purged)))
        running = self.running.get(t)
        acts = self._handle(AbortRequested(self.now, t))
        if running is not None:
            assert Cancel(t, *running) in acts, acts
            self.aborting.add(t)
        elif t not in self.terminal and not [a for a in acts if isinstance(a, Fail) and a.task_id == t]:
            raise AssertionError(f"aborting waiting task {t} gave {acts}")

    @precondition(lambda self: self.terminal)
    @rule(data=st.data(), everything=st.booleans())
    def purge(self, data: st.DataObject, everything: bool) -> None:
        if everything:
            ids = None
            gone = set(self.terminal)
        else:
            pick = data.draw(st.lists(st.sampled_from(sorted(self.specs)), max_size=4, unique=True))
            ids = tuple(pick)
            gone = {t for t in pick if t in self.terminal}
        # kept: outcomes an unfinished task's `follow` still names (docs/core-api.md, PurgeRequested)
        gone -= {x for t in self.specs if t not in self.terminal and self.specs[t].follow
                 for x in self.specs[t].follow.ids}
        assert self._handle(PurgeRequested(self.now, ids)) == []
        self.purged |= gone

    # --------------------------------------------------------------------------- invariants

    @invariant()
    def consistent_with_driver(self) -> None:
        if not hasattr(self, "s"):
            return
        s = self.s
        per_engine = Counter(e for e, _ in self.running.values())
        for e in self.live:
            assert s.load(e) == per_engine[e], (e, s.load(e), per_engine[e])
            if self.hwm:
                assert per_engine[e] <= self.hwm, f"engine {e} holds {per_engine[e]} > hwm {self.hwm}"
        assert set(per_engine) <= set(self.live)
        assert sorted(s.engine_ids) == sorted(self.live)
        assert s.running_count == len(self.running)
        open_tasks = [t for t in self.specs if t not in self.terminal]
        assert s.waiting_count == len(open_tasks) - len(self.running)
        assert s.known_task_count == len(self.specs) - len(self.purged), \
            (s.known_task_count, len(self.specs), sorted(self.purged), {t: s.task_state(t) for t in self.specs})
        for t in self.specs:
            state = s.task_state(t)
            if t in self.purged:
                assert state is None, (t, state)
            elif t in self.terminal:
                assert state == "done", (t, state)
            elif t in self.running:
                assert state == "running", (t, state)
            else:
                assert state in ("waiting", "queued"), (t, state)
        for t in self.specs:
            if t in self.terminal and t not in self.purged:
                assert self.attempt_ends[t] <= 1 + self.specs[t].retries + len(self.blacklist.get(t, ()))

    # ----------------------------------------------------------------------------- teardown

    def teardown(self) -> None:
        if not hasattr(self, "s") or self.broken:
            return
        self._drain()
        self._check_replay()
        self._check_records()

    def _drain(self) -> None:
        """With a live engine: finish running tasks and fire due timers until nothing changes."""
        if not self.live:
            self._join()
        for _ in range(20 * (len(self.specs) + 5)):
            if self.running:
                t = min(self.running)
                e, att = self._end_attempt(t)
                self.now += 0.01
                self._handle(TaskFinished(self.now, t, e, att, Outcome.OK))
            elif self.timers:
                self.fire_next_timer()
            else:
                break
        stuck = {t: self.s.task_state(t) for t in self.specs if t not in self.terminal}
        assert not stuck, (f"tasks never finish with {len(self.live)} live engines and no timers left: {stuck}; "
                           f"specs: {[self.specs[t] for t in stuck]}; history:\n" + self._story(set(stuck)))

    def _actors_hold(self, e: Any) -> bool:
        """Whether actors hold engine `e` whole (it does not count for the retry preference): none here."""
        return False

    def _story(self, tasks: set[int]) -> str:
        """The events and actions that mention these tasks (for failure messages)."""
        lines = []
        for t in list(tasks):
            spec = self.specs.get(t)
            if spec is not None:
                tasks |= set(spec.after.ids if spec.after else ()) | set(spec.follow.ids if spec.follow else ())
        for event, acts in self.history:
            mine = [a for a in acts if getattr(a, "task_id", None) in tasks]
            if mine or getattr(event, "task_id", None) in tasks or isinstance(event, (EngineJoined, EngineLost)) \
                    or getattr(getattr(event, "spec", None), "task_id", None) in tasks:
                lines.append(f"  {event!r} -> {mine}")
        return "\n".join(lines[-60:])

    def _check_replay(self) -> None:
        fresh = TaskScheduler(scheme=self.scheme, hwm=self.hwm, rng=random.Random(self.seed))
        for i, (event, acts) in enumerate(self.history):
            again = fresh.handle(event)
            assert again == acts, f"replay differs at event {i} {event}: {again} != {acts}"

    def _check_records(self) -> None:
        recs = Counter(r.task_id for r in self.s.records.drain())
        for t in self.specs:
            want = self.attempt_ends[t] + self.sched_fails[t]
            assert recs[t] == want, f"task {t}: {recs[t]} records, expected {want} ({self.terminal.get(t)})"


# 400 examples, ~10 s: at 150, a queue rescan's double failure went unseen until 2026-12-04 (test_scheduler_failures.py)
SchedulerMachine.TestCase.settings = settings(
    max_examples=400, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSchedulerInvariants = SchedulerMachine.TestCase


class LongRunMachine(SchedulerMachine):
    """The same machine, fewer but longer runs (deep queues, many retries and purges)."""


LongRunMachine.TestCase.settings = settings(
    max_examples=30, stateful_step_count=150, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestSchedulerInvariantsLongRuns = LongRunMachine.TestCase
