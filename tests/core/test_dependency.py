"""Dependency: ipyparallel's five-row truth table, constructor forms, validation errors and the dict round trip.

The truth table is reference/ipyparallel-semantics.md §2.1: deps {a, b}, a succeeded and b failed.
"""

from __future__ import annotations

import pytest

from sched_lab.core.dependency import Dependency

COMPLETED = {"a"}
FAILED = {"b"}


@pytest.mark.parametrize(
    ("flags", "check", "unreachable"),
    [
        ({}, False, True),
        ({"all": False}, True, False),
        ({"success": False, "failure": True}, False, True),
        ({"success": True, "failure": True}, True, False),
        ({"all": False, "success": False, "failure": True}, True, False),
    ],
    ids=["default", "any", "failure-only", "success-and-failure", "any-failure-only"],
)
def test_truth_table(flags: dict, check: bool, unreachable: bool) -> None:
    dep = Dependency(["a", "b"], **flags)
    assert dep.check(COMPLETED, FAILED) is check
    assert dep.unreachable(COMPLETED, FAILED) is unreachable


def test_empty_dependency_is_met_and_never_unreachable() -> None:
    dep = Dependency([])
    assert dep.check(set(), set()) is True
    assert dep.unreachable(set(), set()) is False
    assert Dependency.coerce([]) is None
    assert Dependency.coerce(None) is None


def test_pending_ids_neither_met_nor_unreachable() -> None:
    dep = Dependency(["a", "b"])
    assert dep.check({"a"}, set()) is False
    assert dep.unreachable({"a"}, set()) is False
    assert dep.check({"a", "b"}, set()) is True


def test_any_unreachable_only_when_all_bad() -> None:
    dep = Dependency(["a", "b"], all=False)
    assert dep.unreachable(set(), {"a"}) is False
    assert dep.unreachable(set(), {"a", "b"}) is True


class FakeResult:
    """Stands in for an AsyncResult: only `msg_ids` matters."""

    def __init__(self, *ids: str) -> None:
        self.msg_ids = list(ids)


def test_constructor_from_str() -> None:
    assert Dependency("a").ids == frozenset({"a"})


def test_constructor_from_list_and_set() -> None:
    assert Dependency(["a", "b", "a"]).ids == frozenset({"a", "b"})
    assert Dependency({"c"}).ids == frozenset({"c"})


def test_constructor_from_result_objects() -> None:
    assert Dependency(FakeResult("x", "y")).ids == frozenset({"x", "y"})
    assert Dependency([FakeResult("x"), "z", FakeResult("y", "w")]).ids == frozenset({"x", "y", "z", "w"})


def test_constructor_from_dependency_and_list_of_dependencies() -> None:
    inner = Dependency(["a"], all=False, failure=True)
    assert Dependency(inner).ids == frozenset({"a"})
    assert Dependency([inner, "b"]).ids == frozenset({"a", "b"})
    assert Dependency.coerce(inner) is inner  # flags kept


def test_coerce_from_plain_forms_uses_default_flags() -> None:
    dep = Dependency.coerce(["a"])
    assert dep is not None and (dep.all, dep.success, dep.failure) == (True, True, False)


def test_neither_success_nor_failure_is_value_error() -> None:
    with pytest.raises(ValueError):
        Dependency(["a"], success=False, failure=False)


@pytest.mark.parametrize("bad", [[1.5], [object()], [None], 3.25, object(), {"dependencies": ["a"]}])
def test_bad_elements_are_type_error(bad: object) -> None:
    with pytest.raises(TypeError):
        Dependency(bad)


@pytest.mark.parametrize(
    "dep",
    [Dependency(["a", "b"]), Dependency(["a"], all=False), Dependency(["b", "c"], success=False, failure=True),
     Dependency(["z"], success=True, failure=True), Dependency([])],
    ids=lambda dep: repr(dep.as_dict()),      # ids sorted: the same in every process (pytest -n collects in each)
)
def test_as_dict_from_dict_round_trip(dep: Dependency) -> None:
    data = dep.as_dict()
    assert set(data) == {"dependencies", "all", "success", "failure"}
    assert isinstance(data["dependencies"], list)
    back = Dependency.from_dict(data)
    assert back == dep
    assert (back.ids, back.all, back.success, back.failure) == (dep.ids, dep.all, dep.success, dep.failure)


def test_as_dict_sorts_ids() -> None:
    assert Dependency(["c", "a", "b"]).as_dict()["dependencies"] == ["a", "b", "c"]


def test_container_protocol() -> None:
    dep = Dependency(["a", "b"])
    assert len(dep) == 2 and "a" in dep and "q" not in dep and set(dep) == {"a", "b"}


def test_counts_as_met() -> None:
    assert Dependency(["a"]).counts_as_met(True) is True
    assert Dependency(["a"]).counts_as_met(False) is False
    assert Dependency(["a"], success=False, failure=True).counts_as_met(False) is True
