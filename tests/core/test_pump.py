"""The event pump both drivers use: re-entrant queueing, one handler per action type, order kept."""

from __future__ import annotations

from typing import Any

import pytest

from sched_lab.core import (
    ACTION_TYPES, Cancel, CancelTimer, Deliver, Dispatch, DispatchFailed, EngineJoined, EventPump, Fail, Outcome,
    StartTimer, TaskFinished, TaskRecord, TaskScheduler, TaskSpec, TaskSubmitted,
)


class Driver:
    """A minimal driver: engine 0 is dead (its dispatches fail), others take tasks; logs every action."""

    def __init__(self) -> None:
        self.core = TaskScheduler(hwm=1)
        self.log: list[Any] = []
        handlers = {t: self.log.append for t in ACTION_TYPES}
        handlers[Dispatch] = self.dispatch
        self.pump = EventPump(self.core, handlers, on_handled=lambda ev, acts: self.log.append(("handled", ev)))

    def dispatch(self, action: Dispatch) -> None:
        self.log.append(action)
        if action.engine_id == 0:
            self.pump.post(DispatchFailed(1.0, action.task_id, 0, action.attempt))
            assert self.pump.pumping


def test_needs_exactly_one_handler_per_action_type() -> None:
    core = TaskScheduler()
    with pytest.raises(ValueError, match="missing"):
        EventPump(core, {Dispatch: print})
    with pytest.raises(ValueError, match="unknown"):
        EventPump(core, {**{t: print for t in ACTION_TYPES}, int: print})
    assert set(ACTION_TYPES) == {Dispatch, Deliver, Fail, Cancel, StartTimer, CancelTimer}


def test_reports_made_while_carrying_out_are_handled_after_the_action_list() -> None:
    d = Driver()
    d.pump.feed(EngineJoined(0.0, 1))
    d.pump.feed(EngineJoined(0.0, 0))       # the newest engine is the least recently used: chosen first
    d.log.clear()
    d.pump.feed(TaskSubmitted(1.0, TaskSpec("t", retries=1)))
    sub = TaskSubmitted(1.0, TaskSpec("t", retries=1))
    # engine 0's failure is handled after the action list, and the retry goes to engine 1
    assert d.log == [("handled", sub), Dispatch("t", 0, 0), ("handled", DispatchFailed(1.0, "t", 0, 0)),
                     Dispatch("t", 1, 1)]
    assert not d.pump.pumping


def test_posted_event_waits_for_the_next_feed_and_follows_its_event() -> None:
    d = Driver()
    d.pump.feed(EngineJoined(0.0, 1))
    d.pump.feed(TaskSubmitted(0.0, TaskSpec("a")))
    d.pump.feed(TaskSubmitted(0.0, TaskSpec("b")))
    d.log.clear()
    late = TaskSubmitted(2.0, TaskSpec("c"))
    d.pump.post(late)                       # outside a feed: nothing happens yet
    assert d.log == []
    fin = TaskFinished(2.0, "a", 1, 0, Outcome.OK)
    d.pump.feed(fin)                        # the fed event first, then the posted one
    assert [x[1] for x in d.log if isinstance(x, tuple)] == [fin, late]
    n = len(d.log)
    d.pump.flush()                          # nothing left: a no-op
    assert len(d.log) == n


def test_a_failing_handler_drops_the_queue_and_leaves_the_pump_usable() -> None:
    core = TaskScheduler()
    handlers: dict[type, Any] = {t: (lambda a: None) for t in ACTION_TYPES}

    def boom(action: Dispatch) -> None:
        pump.post(DispatchFailed(0.0, action.task_id, action.engine_id, action.attempt))
        raise RuntimeError("driver bug")

    handlers[Dispatch] = boom
    pump = EventPump(core, handlers)
    pump.feed(EngineJoined(0.0, 0))
    with pytest.raises(RuntimeError):
        pump.feed(TaskSubmitted(0.0, TaskSpec("t")))
    assert not pump.pumping
    pump.handlers[Dispatch] = lambda a: None
    assert core.running_on(0) == ["t"]      # the queued DispatchFailed was dropped with the exception
    pump.feed(EngineJoined(0.0, 1))         # still serving
    assert core.engine_ids == [0, 1]


def test_record_rows_round_trip() -> None:
    rec = TaskRecord("t", 1, 0, 0.0, 0.5, 0.6, 1.0, Outcome.ERROR, "ValueError", 3, 1, "leastload", "L")
    row = rec.to_row()
    assert row[7] == "error" and type(row[7]) is str and len(row) == len(TaskRecord.fields())
    assert TaskRecord.from_row(row) == rec and TaskRecord.from_row(list(row)).outcome is Outcome.ERROR
    with pytest.raises(ValueError, match="13 values"):
        TaskRecord.from_row(row[:-1])
