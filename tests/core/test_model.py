"""TaskSpec validation and normalisation, and the frozen data types of sched_lab.core.model."""

from __future__ import annotations

import dataclasses

import pytest

from sched_lab.core.dependency import Dependency
from sched_lab.core.model import (
    Dispatch, EngineJoined, Outcome, RecordList, TaskFinished, TaskRecord, TaskSpec, TaskSubmitted,
)


def test_defaults() -> None:
    spec = TaskSpec("t")
    assert spec.targets is None and spec.after is None and spec.follow is None
    assert spec.retries == 0 and spec.timeout_s is None


@pytest.mark.parametrize("retries", [-1, -10])
def test_negative_retries_is_value_error(retries: int) -> None:
    with pytest.raises(ValueError):
        TaskSpec("t", retries=retries)


@pytest.mark.parametrize("retries", [1.0, "2", True, None])
def test_non_int_retries_rejected(retries: object) -> None:
    with pytest.raises((ValueError, TypeError)):
        TaskSpec("t", retries=retries)  # type: ignore[arg-type]


def test_negative_timeout_is_value_error() -> None:
    with pytest.raises(ValueError):
        TaskSpec("t", timeout_s=-0.5)


@pytest.mark.parametrize("timeout", ["1", True, [1]])
def test_non_number_timeout_is_type_error(timeout: object) -> None:
    with pytest.raises(TypeError):
        TaskSpec("t", timeout_s=timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [0, 0.0])
def test_timeout_zero_means_none(timeout: float) -> None:
    assert TaskSpec("t", timeout_s=timeout).timeout_s is None


def test_positive_timeout_kept() -> None:
    assert TaskSpec("t", timeout_s=2.5).timeout_s == 2.5


@pytest.mark.parametrize("targets", [[], set(), frozenset(), ()])
def test_empty_targets_is_error(targets: object) -> None:
    with pytest.raises(ValueError):
        TaskSpec("t", targets=targets)  # type: ignore[arg-type]


def test_targets_normalised_to_frozenset() -> None:
    assert TaskSpec("t", targets=[1, 2, 2]).targets == frozenset({1, 2})
    assert TaskSpec("t", targets=3).targets == frozenset({3})  # type: ignore[arg-type]
    assert TaskSpec("t", targets="e0").targets == frozenset({"e0"})  # type: ignore[arg-type]


def test_dependencies_coerced() -> None:
    spec = TaskSpec("t", after="a", follow=["b", "c"])  # type: ignore[arg-type]
    assert isinstance(spec.after, Dependency) and spec.after.ids == frozenset({"a"})
    assert isinstance(spec.follow, Dependency) and spec.follow.ids == frozenset({"b", "c"})


def test_empty_dependencies_become_none() -> None:
    assert TaskSpec("t", after=[], follow=Dependency([])).after is None  # type: ignore[arg-type]
    assert TaskSpec("t", follow=Dependency([])).follow is None


def test_bad_dependency_element_is_type_error() -> None:
    with pytest.raises(TypeError):
        TaskSpec("t", after=[1.5])  # type: ignore[arg-type]


def test_task_finished_outcome_is_ok_error_or_aborted() -> None:
    assert TaskFinished(0.0, "t", 1, 0, Outcome.ABORTED, "TaskAborted").outcome is Outcome.ABORTED
    for bad in (True, "ok", Outcome.TIMEOUT):
        with pytest.raises(ValueError, match="outcome"):
            TaskFinished(0.0, "t", 1, 0, bad)  # type: ignore[arg-type]


def test_specs_events_actions_are_frozen() -> None:
    for obj in (TaskSpec("t"), EngineJoined(0.0, 1), TaskSubmitted(0.0, TaskSpec("t")), Dispatch("t", 1, 0)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, dataclasses.fields(obj)[0].name, "changed")
        assert not hasattr(obj, "__dict__")  # slotted


def test_record_list_drain() -> None:
    sink = RecordList()
    sink.add("t", 0, 1, 0.0, 0.1, 0.2, 0.3, Outcome.OK, None, 0, 0, "leastload", None)
    (rec,) = sink.drain()
    assert isinstance(rec, TaskRecord) and rec.outcome is Outcome.OK and rec.engine_id == 1
    assert sink.drain() == []
    assert TaskRecord.fields()[:3] == ("task_id", "attempt", "engine_id")
