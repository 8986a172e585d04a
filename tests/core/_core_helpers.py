"""Shared helpers for the core tests: a thin harness around TaskScheduler and action matchers."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sched_lab.core import (
    AbortRequested, Action, Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch, DispatchFailed,
    EngineJoined, EngineLost, Fail, Outcome, PurgeRequested, StartTimer, TaskFinished, TaskResubmitted, TaskScheduler,
    TaskSpec, TaskSubmitted, TimerFired,
)


def norm(action: Action) -> Any:
    """An action as a comparable value; a Fail's free-text message is left out."""
    if isinstance(action, Fail):
        return ("Fail", action.task_id, action.error_name)
    return action


def assert_actions(actual: list[Action], expected: list[Action]) -> None:
    """The actions equal `expected` as a multiset (order is not part of the contract)."""
    got, want = Counter(map(norm, actual)), Counter(map(norm, expected))
    assert got == want, f"\n  got:      {actual}\n  expected: {expected}"


def dispatches(actions: list[Action]) -> list[Dispatch]:
    return [a for a in actions if isinstance(a, Dispatch)]


def only_timer(actions: list[Action]) -> StartTimer:
    """The single action, which must be a StartTimer."""
    assert len(actions) == 1 and isinstance(actions[0], StartTimer), actions
    return actions[0]


class Harness:
    """Drives one TaskScheduler with a settable clock; every method returns the actions of one event."""

    def __init__(self, scheme: str = "leastload", hwm: int = 1, seed: int = 0, **kwargs: Any) -> None:
        self.s = TaskScheduler(scheme=scheme, hwm=hwm, rng=random.Random(seed), **kwargs)
        self.now = 0.0
        self.where: dict[Any, Any] = {}        # task id -> engine of its latest Dispatch
        self.log: list[Action] = []            # every action seen, in order

    def _at(self, now: float | None) -> float:
        if now is not None:
            self.now = now
        return self.now

    def handle(self, event: Any) -> list[Action]:
        acts = self.s.handle(event)
        for a in acts:
            if isinstance(a, Dispatch):
                self.where[a.task_id] = a.engine_id
        self.log += acts
        return acts

    def join(self, *engines: Any, now: float | None = None) -> list[Action]:
        out: list[Action] = []
        for e in engines:
            out += self.handle(EngineJoined(self._at(now), e))
        return out

    def lose(self, engine: Any, now: float | None = None) -> list[Action]:
        return self.handle(EngineLost(self._at(now), engine))

    def submit(self, task_id: Any, now: float | None = None, **flags: Any) -> list[Action]:
        return self.handle(TaskSubmitted(self._at(now), TaskSpec(task_id, **flags)))

    def resubmit(self, task_id: Any, now: float | None = None, **flags: Any) -> list[Action]:
        return self.handle(TaskResubmitted(self._at(now), TaskSpec(task_id, **flags)))

    def finish(self, task_id: Any, engine: Any, attempt: int = 0, ok: bool = True, error_name: str | None = None,
               now: float | None = None, started_at: float | None = None,
               outcome: Outcome | None = None) -> list[Action]:
        """Report an attempt's end: OK when `ok`, else `outcome` (default Outcome.ERROR) named `error_name`."""
        if not ok and error_name is None:
            error_name = "ValueError"
        if outcome is None:
            outcome = Outcome.OK if ok else Outcome.ERROR
        return self.handle(TaskFinished(self._at(now), task_id, engine, attempt, outcome, error_name, started_at))

    def unmet(self, task_id: Any, engine: Any, attempt: int = 0, now: float | None = None) -> list[Action]:
        return self.handle(DependencyUnmet(self._at(now), task_id, engine, attempt))

    def dispatch_failed(self, task_id: Any, engine: Any, attempt: int = 0, now: float | None = None) -> list[Action]:
        return self.handle(DispatchFailed(self._at(now), task_id, engine, attempt))

    def fire(self, token: int, now: float | None = None) -> list[Action]:
        return self.handle(TimerFired(self._at(now), token))

    def abort(self, task_id: Any, now: float | None = None) -> list[Action]:
        return self.handle(AbortRequested(self._at(now), task_id))

    def purge(self, task_ids: tuple | None = None, now: float | None = None) -> list[Action]:
        return self.handle(PurgeRequested(self._at(now), task_ids))

    def running_on(self, engine: Any) -> list[Any]:
        """Tasks currently running on `engine` (by the latest Dispatch and the scheduler's task_state)."""
        return [t for t, e in self.where.items() if e == engine and self.s.task_state(t) == "running"]

    def place(self, task_id: Any, **flags: Any) -> Any:
        """Submit a task that must be dispatched at once; return its engine."""
        acts = self.submit(task_id, **flags)
        assert len(acts) == 1 and isinstance(acts[0], Dispatch) and acts[0].task_id == task_id, acts
        return acts[0].engine_id


__all__ = ["Harness", "assert_actions", "dispatches", "norm", "only_timer",
           "Cancel", "CancelTimer", "Deliver", "Dispatch", "Fail", "StartTimer"]
