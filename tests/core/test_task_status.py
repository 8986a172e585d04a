"""Task states: one transition table, one method that moves a task and keeps the counts."""

from __future__ import annotations

import pytest

from sched_lab.core import (
    DONE, QUEUED, RUNNING, TRANSITIONS, WAITING, Dispatch, EngineJoined, Outcome, SchedulerMisuse, TaskFinished,
    TaskScheduler, TaskSpec, TaskStatus, TaskSubmitted,
)
from sched_lab.core.state import MOVES, TaskState


def test_states_compare_equal_to_their_names() -> None:
    assert [str(s) for s in TaskStatus] == ["waiting", "queued", "running", "done"]
    assert QUEUED == "queued" and TaskStatus("done") is DONE


def test_transition_table_is_the_documented_life() -> None:
    assert TRANSITIONS == {
        None: {WAITING, QUEUED}, WAITING: {QUEUED, DONE}, QUEUED: {RUNNING, DONE},
        RUNNING: {QUEUED, DONE}, DONE: set(),
    }
    assert {old: set(moves) for old, moves in MOVES.items()} == TRANSITIONS     # the fast form is the same table


@pytest.mark.parametrize("path", [
    (WAITING, RUNNING), (QUEUED, WAITING), (RUNNING, WAITING), (DONE, QUEUED), (QUEUED, QUEUED),
])
def test_illegal_transition_raises_and_leaves_counts(path: tuple[TaskStatus, TaskStatus]) -> None:
    s = TaskScheduler()
    task = TaskState(TaskSpec("t"), 0.0)
    first, illegal = path
    for step in {WAITING: [WAITING], QUEUED: [QUEUED], RUNNING: [QUEUED, RUNNING], DONE: [QUEUED, DONE]}[first]:
        s._move(task, step)
    before = s.state_counts
    with pytest.raises(SchedulerMisuse, match="illegal state change"):
        s._move(task, illegal)
    assert task.state is first and s.state_counts == before


def test_a_task_cannot_start_out_running_or_done() -> None:
    s = TaskScheduler()
    for state in (RUNNING, DONE):
        with pytest.raises(SchedulerMisuse):
            s._move(TaskState(TaskSpec("t"), 0.0), state)


def test_counts_follow_the_life_of_tasks() -> None:
    s = TaskScheduler(hwm=1)
    s.handle(TaskSubmitted(0.0, TaskSpec("a")))
    s.handle(TaskSubmitted(0.0, TaskSpec("b", after="a")))
    assert (s.waiting_count, s.running_count) == (2, 0)
    assert s.state_counts == {WAITING: 1, QUEUED: 1, RUNNING: 0}
    assert s.task_state("a") is QUEUED and s.task_state("b") is WAITING
    (d,) = s.handle(EngineJoined(0.0, 0))
    assert d == Dispatch("a", 0, 0) and s.task_state("a") is RUNNING and s.running_count == 1
    s.handle(TaskFinished(1.0, "a", 0, 0, Outcome.OK))
    assert s.task_state("a") is DONE and s.task_state("b") is RUNNING
    s.handle(TaskFinished(2.0, "b", 0, 0, Outcome.ERROR, "ValueError"))
    assert (s.waiting_count, s.running_count) == (0, 0)
    assert s.state_counts == {WAITING: 0, QUEUED: 0, RUNNING: 0}


def test_engine_aborted_outcome_is_recorded_as_aborted() -> None:
    s = TaskScheduler()
    s.handle(EngineJoined(0.0, 0))
    s.handle(TaskSubmitted(0.0, TaskSpec("t")))
    s.handle(TaskFinished(1.0, "t", 0, 0, Outcome.ABORTED, "TaskAborted"))
    (rec,) = s.records.records
    assert (rec.outcome, rec.error_name) == (Outcome.ABORTED, "TaskAborted")
