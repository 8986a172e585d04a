"""Property test: the scheduler state machine of test_invariants.py, extended with actors and direct tasks.

`ActorMachine` is `SchedulerMachine` (every rule and check there still runs) plus actor creations,
actor calls, direct tasks, worker restarts and kills among the random events; the driver model
tracks where each actor's instance lives (from the creation attempts it finished OK and the deaths
it reported). Checked on every action and after every step:

- an actor's calls are dispatched only to the engine where its live instance is, never while it is
  dead, restarting or killed; never more than max_concurrency of them out; first dispatches in
  submission order per actor; call attempts <= max_task_retries; a call out when its instance died
  is retried (attempt + 1) or ends ActorDiedError in the same event;
- a creation is re-dispatched only after its instance died (or a re-creation attempt failed), while
  restarts remain and the actor was not killed; a re-creation never sends Deliver/Fail;
- DropActor only for a killed actor that had an instance, on its engine; Cancel only for the
  aborted task or the calls/creation of a killed actor;
- loads: every engine's load is its running non-call tasks plus its live actors; load-balanced
  dispatches respect the hwm (direct tasks may go above it; calls add nothing);
- every task still ends exactly once, records add up, replay is deterministic, nothing hangs.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import initialize, invariant, precondition, rule

from sched_lab.core import (
    AbortRequested, ActorKillRequested, ActorSpec, Cancel, Deliver, DispatchFailed, DropActor, EngineLost, Fail,
    Outcome, TaskFinished, TaskSpec, TaskSubmitted, WorkerDied, WorkerRestarted,
)

from test_invariants import SCHEMES, SchedulerMachine


class ActorMachine(SchedulerMachine):
    """SchedulerMachine plus actors and direct tasks."""

    @initialize(scheme=st.sampled_from(SCHEMES), hwm=st.sampled_from([0, 1, 1, 2]), seed=st.integers(0, 2**20),
                engines=st.integers(0, 3))
    def setup(self, scheme: str, hwm: int, seed: int, engines: int) -> None:
        self.actor_spec: dict[str, ActorSpec] = {}
        self.ctid: dict[str, int] = {}                # actor -> its creation task
        self.actor_of: dict[int, str] = {}            # creation task -> actor
        self.call_of: dict[int, str] = {}             # call task -> actor
        self.direct: set[int] = set()
        self.at: dict[str, Any] = {}                  # actor -> engine of its live instance (None: none)
        self.killed: set[str] = set()
        self.restarts: Counter = Counter()            # instance deaths and failed re-creation attempts
        self.first_pending: dict[str, list[int]] = {}  # calls never dispatched, in submission order
        self.ending: set[int] = set()                 # calls out at a death that must end ActorDiedError now
        super().setup(scheme, hwm, seed, engines)

    # ---------------------------------------------------------------------------- the model

    def _kind(self, t: int) -> str:
        if t in self.call_of:
            return "call"
        if t in self.direct:
            return "direct"
        if t in self.actor_of:
            return "recreate" if t in self.terminal else "create"
        return "plain"

    def _instance_dies(self, aid: str) -> None:
        """The driver reports the death of aid's instance: its calls out come back."""
        self.at[aid] = None
        spec = self.actor_spec[aid]
        for c in [c for c in self.running if self.call_of.get(c) == aid]:
            _, att = self._end_attempt(c)
            self.expect_next[c] = "next"
            if att >= spec.max_task_retries or c in self.aborting:
                self.ending.add(c)
        if aid not in self.killed:
            self.restarts[aid] += 1
            self.expect_next[self.ctid[aid]] = "next"

    def _lost_attempt(self, t: int, e: int) -> None:
        """Bookkeeping for an attempt that failed (error, worker or engine loss) of a non-call task."""
        self.failed_on.setdefault(t, set()).add(e)
        self.expect_next[t] = "next"
        if self._kind(t) == "recreate" and self.actor_of[t] not in self.killed:
            self.restarts[self.actor_of[t]] += 1

    def _handle(self, event: Any) -> list:
        acts = super()._handle(event)
        unended = [c for c in self.ending if c not in self.terminal]
        assert not unended, f"calls out at their actor's death neither retried nor failed: {unended} ({acts})"
        self.ending.clear()
        return acts

    def _check_action(self, event: Any, a: Any) -> None:
        t = getattr(a, "task_id", None)
        if isinstance(a, DropActor):
            assert isinstance(event, (ActorKillRequested, TaskFinished)) and a.actor_id in self.killed, (event, a)
            assert self.at.get(a.actor_id) == a.engine_id, (a, self.at.get(a.actor_id))
            self.at[a.actor_id] = None
            return
        if isinstance(a, Cancel) and isinstance(event, ActorKillRequested):
            assert self.running.get(t) == (a.engine_id, a.attempt), (a, self.running.get(t))
            assert self.call_of.get(t, self.actor_of.get(t)) == event.actor_id, (event, a)
            self.aborting.add(t)
            return
        if isinstance(a, Fail) and a.error_name == "ActorDiedError":
            assert t in self.call_of, a
            assert t not in self.running, a
            self._terminate(t, a)
            self.failed.add(t)
            if t not in self.ending:              # failed while queued: the scheduler writes a record
                self.sched_fails[t] += 1
            return
        if isinstance(a, Fail) and a.error_name == "EngineError" and t in self.direct and t not in self.last_attempt:
            self.sched_fails[t] += 1              # its engine was unknown at submission (a scheduler record)
        if isinstance(a, (Deliver, Fail)) and self._kind(t) == "recreate":
            raise AssertionError(f"a re-creation answered the client: {a}")
        super()._check_action(event, a)

    def _check_dispatch(self, d: Any) -> None:
        t, e, att = d.task_id, d.engine_id, d.attempt
        kind = self._kind(t)
        if kind == "call":
            aid = self.call_of[t]
            spec = self.actor_spec[aid]
            assert aid not in self.killed and self.at.get(aid) == e, f"{d}: actor {aid} lives on {self.at.get(aid)}"
            out = sum(1 for c in self.running if self.call_of.get(c) == aid)
            assert out < spec.max_concurrency, f"{d}: {out} calls of {aid} out already"
            assert att <= spec.max_task_retries, d
            pending = self.first_pending[aid]
            if t in pending:
                live = [c for c in pending if c not in self.terminal]
                assert live[0] == t, f"{d} before older call {live[0]} of {aid} (FIFO)"
                pending.remove(t)
            prev = self.last_attempt.get(t)
            assert att == (0 if prev is None else prev + 1), d
            assert t not in self.terminal and t not in self.running and t not in self.aborting, d
            self.running[t] = (e, att)
            self.last_attempt[t] = att
            return
        if kind not in ("direct",) and self.hwm:
            held = sum(1 for x, (w, _) in self.running.items() if w == e and x not in self.call_of
                       and x not in self.direct) + self._pins(e)
            assert held < self.hwm, f"{d}: engine {e} holds {held} load-balanced tasks and actors (hwm {self.hwm})"
        if kind == "recreate":
            aid = self.actor_of[t]
            assert aid not in self.killed and self.at.get(aid) is None, d
            assert self.restarts[aid] <= self.actor_spec[aid].max_restarts, (d, self.restarts[aid])
            prev = self.last_attempt[t]
            want = prev if self.expect_next[t] == "same" else prev + 1
            assert att == want and t not in self.running, (d, want)   # (an abort of the creation is long over)
            assert e in self.live and e not in self.blacklist.get(t, ()), d
            self.running[t] = (e, att)
            self.last_attempt[t] = att
            return
        if kind == "direct":                      # at submission, or a retry on the same engine
            spec = self.specs[t]
            assert e in spec.targets and e in self.live, d
            assert t not in self.terminal and t not in self.running and t not in self.aborting, d
            prev = self.last_attempt.get(t)
            want = 0 if prev is None else (prev if self.expect_next[t] == "same" else prev + 1)
            assert att == want and att <= spec.retries, (d, want)
            self.running[t] = (e, att)
            self.last_attempt[t] = att
            return
        super()._check_dispatch(d)

    def _actors_hold(self, e: Any) -> bool:
        """With hwm > 0: `e`'s live actors fill its slots and nothing else adds load (no task out there but calls)."""
        return bool(self.hwm) and self._pins(e) >= self.hwm \
            and not any(w == e and x not in self.call_of for x, (w, _) in self.running.items())

    def _pins(self, e: Any) -> int:
        """Slots of engine `e` its live actors pin."""
        return sum(1 for w in self.at.values() if w == e)

    def _submit_spec(self, spec: TaskSpec, event: Any) -> None:
        if spec.actor_id is not None or spec.direct:
            t = spec.task_id
            self.specs[t] = spec
            self.order.append(t)
            self._handle(event)
            return
        super()._submit_spec(spec, event)

    # -------------------------------------------------------------------------------- rules

    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def create_actor(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = len(self.specs)
        aid = f"A{t}"
        spec = ActorSpec(aid, max_restarts=data.draw(st.integers(0, 2)), max_task_retries=data.draw(st.integers(0, 2)),
                         max_concurrency=data.draw(st.integers(1, 3)))
        self.actor_spec[aid], self.ctid[aid], self.actor_of[t], self.at[aid] = spec, t, aid, None
        self.first_pending[aid] = []
        targets = None
        if self.ever and data.draw(st.integers(0, 3)) == 0:
            targets = frozenset(data.draw(st.lists(st.sampled_from(self.ever + [999]), min_size=1, max_size=2)))
        ts = TaskSpec(t, targets=targets, retries=data.draw(st.integers(0, 1)), creates_actor=spec,
                      timeout_s=data.draw(st.sampled_from([None, None, 2.0])))
        self._submit_spec(ts, TaskSubmitted(self.now, ts))

    @precondition(lambda self: self.actor_spec)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def call_actor(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = len(self.specs)
        aid = data.draw(st.sampled_from(sorted(self.actor_spec) + ["ghost"]))
        ts = TaskSpec(t, actor_id=aid, timeout_s=data.draw(st.sampled_from([None, None, None, 1.0])))
        self.call_of[t] = aid
        if aid == "ghost":
            self.actor_spec.setdefault("ghost", ActorSpec("ghost"))
            self.first_pending.setdefault("ghost", [])
            self.killed.add("ghost")                 # never created: every call fails at once
            self.at["ghost"] = None
        self.first_pending[aid].append(t)
        self._submit_spec(ts, TaskSubmitted(self.now, ts))
        if aid == "ghost":
            assert isinstance(self.terminal.get(t), Fail), self.terminal.get(t)

    @precondition(lambda self: self.actor_spec)
    @rule(data=st.data())
    def call_again(self, data: st.DataObject) -> None:
        self.call_actor(data, 0.0)

    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def submit_direct(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = len(self.specs)
        e = data.draw(st.sampled_from(self.ever + [999]))
        ts = TaskSpec(t, direct=True, targets=e, retries=data.draw(st.integers(0, 1)))
        self.direct.add(t)
        self._submit_spec(ts, TaskSubmitted(self.now, ts))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def worker_restarted(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        e = data.draw(st.sampled_from(self.live))
        for aid in [a for a, w in self.at.items() if w == e]:
            self._instance_dies(aid)
        self._handle(WorkerRestarted(self.now, e, "test"))

    @precondition(lambda self: self.actor_spec)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def kill(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        aid = data.draw(st.sampled_from(sorted(self.actor_spec)))
        had = self.at.get(aid)
        was_killed = aid in self.killed
        self.killed.add(aid)
        acts = self._handle(ActorKillRequested(self.now, aid))
        if had is not None and not was_killed:
            assert DropActor(aid, had) in acts, acts
        assert self.at.get(aid) is None
        waiting = [c for c, a in self.call_of.items() if a == aid and c not in self.terminal and c not in self.running]
        assert not waiting, f"calls of killed actor {aid} still waiting: {waiting}"

    # ------------------------------------------------------- the base rules, actor-aware

    @precondition(lambda self: self.running)
    @rule(data=st.data(), ok=st.booleans(), dt=st.floats(0, 1.5))
    def finish(self, data: st.DataObject, ok: bool, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(self.running)))
        self._finish_task(t, ok, data)

    def _finish_task(self, t: int, ok: bool, data: st.DataObject | None) -> None:
        kind = self._kind(t)
        e, att = self._end_attempt(t)
        outcome, ename = Outcome.OK, None
        if not ok:
            outcome, ename = (Outcome.ERROR, "ValueError") if data is None else data.draw(st.sampled_from(
                [(Outcome.ERROR, "ValueError"), (Outcome.TIME_LIMIT, "TimeLimitExceeded")]))
            if kind != "call":
                self._lost_attempt(t, e)
        aid = self.actor_of.get(t)
        if ok and aid is not None:
            self.at[aid] = e                          # the instance is alive from this report on (dropped at once if killed)
        acts = self._handle(TaskFinished(self.now, t, e, att, outcome, ename, self.now))
        if kind == "call":
            assert Deliver(t, e, att, ok) in acts, (t, acts)
        elif kind == "recreate":
            assert not [a for a in acts if isinstance(a, (Deliver, Fail)) and a.task_id == t], acts
        elif ok or att >= self.specs[t].retries or t in self.aborting:
            assert Deliver(t, e, att, ok) in acts, (t, acts)
        if ok and aid is not None and aid in self.killed:
            assert DropActor(aid, e) in acts and self.at[aid] is None, acts

    def _lost(self, t: int, make: Any) -> None:
        """A WorkerDied or DispatchFailed report for running task t."""
        e, _ = self.running[t]
        aid = self.call_of.get(t)
        if aid is not None and self.at.get(aid) == e:
            self._instance_dies(aid)                  # the call's worker held the instance
        else:
            _, att = self._end_attempt(t)
            if aid is not None:
                self.ending.add(t)                    # a call of a killed actor: it ends here
            else:
                self._lost_attempt(t, e)
        att = self.last_attempt[t]
        acts = self._handle(make(t, e, att))
        kind = self._kind(t)
        if kind in ("plain", "direct", "create") and (att >= self.specs[t].retries or t in self.aborting):
            assert [a for a in acts if isinstance(a, Fail) and a.task_id == t and a.error_name == "EngineError"], acts

    @precondition(lambda self: self.running)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def worker_died(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(self.running)))
        self._lost(t, lambda t, e, att: WorkerDied(self.now, t, e, att, "killed"))

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def dispatch_failed(self, data: st.DataObject) -> None:
        t = data.draw(st.sampled_from(sorted(self.running)))
        self._lost(t, lambda t, e, att: DispatchFailed(self.now, t, e, att))

    @precondition(lambda self: self.live)
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def lose(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        e = data.draw(st.sampled_from(self.live))
        self.live.remove(e)
        for aid in [a for a, w in self.at.items() if w == e]:
            self._instance_dies(aid)
        for t, (where, _) in list(self.running.items()):
            if where == e:
                self._end_attempt(t)
                if t in self.call_of:
                    self.ending.add(t)               # a call of a killed actor
                else:
                    self._lost_attempt(t, e)
        self._handle(EngineLost(self.now, e))

    @precondition(lambda self: len(self.specs) > len(self.purged))
    @rule(data=st.data(), dt=st.floats(0, 1.5))
    def abort(self, data: st.DataObject, dt: float) -> None:
        self._advance(dt)
        t = data.draw(st.sampled_from(sorted(t for t in self.specs if t not in self.purged)))
        running = self.running.get(t)
        acts = self._handle(AbortRequested(self.now, t))
        if t in self.terminal and not [a for a in acts if getattr(a, "task_id", None) == t]:
            return                                   # finished (or being re-created): nothing to abort
        if running is not None:
            assert Cancel(t, *running) in acts, acts
            self.aborting.add(t)
        elif not [a for a in acts if isinstance(a, Fail) and a.task_id == t]:
            raise AssertionError(f"aborting waiting task {t} gave {acts}")

    # --------------------------------------------------------------------------- invariants

    @invariant()
    def consistent_with_driver(self) -> None:
        if not hasattr(self, "s"):
            return
        s = self.s
        load = Counter(e for t, (e, _) in self.running.items() if t not in self.call_of)
        load.update(w for w in self.at.values() if w is not None)
        for e in self.live:
            assert s.load(e) == load[e], (e, s.load(e), load[e], self.running, self.at)
        assert sorted(s.engine_ids) == sorted(self.live)
        assert s.running_count == len(self.running)
        restarting = [a for a in s.actors() if a.state == "restarting"]
        for a in restarting:
            assert self.at[a.actor_id] is None
        open_tasks = [t for t in self.specs if t not in self.terminal]
        queued_recreations = sum(1 for a in restarting if a.creation_task_id not in self.running)
        assert s.waiting_count == len(open_tasks) - len([t for t in self.running if t not in self.terminal]) \
            + queued_recreations
        assert s.known_task_count == len(self.specs) - len(self.purged) + len(restarting)
        for a in s.actors():
            if a.actor_id in self.at:
                assert a.engine_id == self.at[a.actor_id], (a, self.at[a.actor_id])
            assert a.calls_out <= self.actor_spec[a.actor_id].max_concurrency
        for t, a in self.call_of.items():
            if t in self.terminal and t not in self.purged:
                assert self.attempt_ends[t] <= 1 + self.actor_spec[a].max_task_retries + len(self.blacklist.get(t, ()))

    # ----------------------------------------------------------------------------- teardown

    def _drain(self) -> None:
        if not self.live:
            self._join()
        for _ in range(40 * (len(self.specs) + 5)):
            if self.running:
                self.now += 0.01
                self._finish_task(min(self.running), True, None)
            elif self.timers:
                self.fire_next_timer()
            elif [a for a, w in self.at.items() if w is not None]:
                # live actors hold their slots for good (hwm): a driver frees them by killing them
                aid = min(a for a, w in self.at.items() if w is not None)
                self.killed.add(aid)
                acts = self._handle(ActorKillRequested(self.now, aid))
                assert self.at[aid] is None, acts
            else:
                break
        stuck = {t: self.s.task_state(t) for t in self.specs if t not in self.terminal}
        assert not stuck, f"tasks never finish: {stuck}; history:\n" + self._story(set(stuck))

    def _check_records(self) -> None:
        recs = Counter(r.task_id for r in self.s.records.drain())
        for t in self.specs:
            want = self.attempt_ends[t] + self.sched_fails[t]
            if t in self.actor_of:                   # a re-creation failed in the scheduler writes a record, silently
                aid = self.actor_of[t]
                assert want <= recs[t] <= want + self.actor_spec[aid].max_restarts + 1, (t, recs[t], want)
            else:
                assert recs[t] == want, f"task {t}: {recs[t]} records, expected {want} ({self.terminal.get(t)})"


ActorMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=60, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestActorInvariants = ActorMachine.TestCase
