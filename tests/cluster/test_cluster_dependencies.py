"""Every dependency rule end to end on the shared cluster (DESIGN §4): `after` waits, `follow` pins to an
engine, Dependency flags (all/any, success/failure), unknown or self ids -> InvalidDependency, unreachable
-> ImpossibleDependency at once, follow over several engines -> ImpossibleDependency, `timeout` while
waiting -> TaskTimeout, and functional dependencies: require/depend send a task elsewhere and fail with
ImpossibleDependency (never hang) when no engine qualifies."""

from __future__ import annotations

import os
import time

import pytest

from real_cluster import Dependency, depend, require
from real_cluster.error import ImpossibleDependency, InvalidDependency, RemoteError, TaskTimeout

pytestmark = pytest.mark.timeout(60)


def _fail():
    raise RuntimeError("dep failed")


def test_after_waits_for_its_dependency(view):
    first = view.apply_async(lambda: time.sleep(0.3) or time.time())
    second = view.set_flags(after=first).apply_async(time.time)
    view.set_flags(after=None)
    assert second.get(10) >= first.get(10)
    assert second.metadata["started"] >= first.metadata["completed"]


def test_follow_runs_where_the_dependency_ran(view):
    anchor = view.apply_async(os.getpid)
    pid = anchor.get(10)
    with view.temp_flags(follow=anchor):
        ars = [view.apply_async(os.getpid) for _ in range(4)]
    assert [a.get(10) for a in ars] == [pid] * 4
    assert {a.engine_id for a in ars} == {anchor.engine_id}


def test_dependency_flags_all_any_success_failure(view):
    ok = view.apply_async(abs, -1)
    bad = view.apply_async(_fail)
    ok.wait(10), bad.wait(10)
    with view.temp_flags(after=[ok, bad]):          # default: all must succeed -> impossible at once
        with pytest.raises(ImpossibleDependency):
            view.apply_sync(abs, 1)
    with view.temp_flags(after=Dependency([ok, bad], all=False)):
        assert view.apply_sync(abs, -2) == 2
    with view.temp_flags(after=Dependency([ok, bad], success=True, failure=True)):
        assert view.apply_sync(abs, -3) == 3
    with view.temp_flags(after=Dependency([bad], success=False, failure=True)):
        assert view.apply_sync(abs, -4) == 4
    with view.temp_flags(after=Dependency([ok], success=False, failure=True)):
        with pytest.raises(ImpossibleDependency):
            view.apply_sync(abs, 1)


def test_unknown_dependency_is_invalid(view):
    with view.temp_flags(after="no-such-task"):
        with pytest.raises(InvalidDependency) as info:
            view.apply_sync(abs, 1)
    assert isinstance(info.value, RemoteError) and info.value.ename == "InvalidDependency"
    assert str(info.value).startswith("[Engine Exception] InvalidDependency")


def test_follow_on_tasks_from_different_engines_is_impossible(view):
    a = view.apply_async(time.sleep, 0.2)
    b = view.apply_async(time.sleep, 0.2)            # hwm=1: a and b run on different engines
    a.get(10), b.get(10)
    assert a.engine_id != b.engine_id
    with view.temp_flags(follow=[a, b]):
        with pytest.raises(ImpossibleDependency):
            view.apply_sync(abs, 1)
    with view.temp_flags(follow=Dependency([a, b], all=False)):
        assert view.apply_async(abs, -1).get(10) == 1


def test_timeout_while_waiting_for_a_dependency(view):
    slow = view.apply_async(time.sleep, 2.0)
    t0 = time.monotonic()
    with view.temp_flags(after=slow, timeout=0.2):
        ar = view.apply_async(abs, 1)
    with pytest.raises(TaskTimeout) as info:
        ar.get(10)
    assert 0.15 < time.monotonic() - t0 < 1.5 and info.value.ename == "TaskTimeout"
    slow.get(10)
    with view.temp_flags(timeout=0.01, retries=1):   # a running task never times out
        assert view.apply_sync(lambda: time.sleep(0.1) or "done") == "done"


def test_depend_sends_the_task_to_the_engine_that_qualifies(view):
    target_pid = view.apply_async(os.getpid)
    pid = target_pid.get(10)

    def on_pid(p):
        import os
        return os.getpid() == p

    @depend(on_pid, pid)
    def where():
        import os
        return os.getpid()

    ars = [view.apply_async(where) for _ in range(3)]
    assert [a.get(10) for a in ars] == [pid] * 3
    records = {r.task_id: r for r in view.client.records() if r.task_id == ars[0].msg_ids[0] and r.outcome == "ok"}
    assert records[ars[0].msg_ids[0]].engine_id == target_pid.engine_id


def test_depend_none_or_zero_passes_but_false_is_impossible(view):
    assert view.apply_sync(depend(lambda: None)(lambda: "none ok")) == "none ok"
    assert view.apply_sync(depend(lambda: 0)(lambda: "zero ok")) == "zero ok"
    t0 = time.monotonic()
    with pytest.raises(ImpossibleDependency) as info:
        view.apply_sync(depend(lambda: False)(lambda: "never"))
    assert time.monotonic() - t0 < 5 and "unmet" in str(info.value)


def test_require_missing_module_is_impossible_not_a_hang(view):
    @require("no_engine_has_this_module")
    def needs():
        return 1

    with pytest.raises(ImpossibleDependency):
        view.apply_async(needs).get(10)

    @require("json")
    def has():
        return json.dumps([1])  # noqa: F821 - imported by require on the engine

    assert view.apply_sync(has) == "[1]"


def test_unmet_dependency_does_not_use_retries(view):
    with view.temp_flags(retries=0):
        with pytest.raises(ImpossibleDependency):
            view.apply_sync(depend(lambda: False)(abs), 1)
    recs = [r for r in view.client.records() if r.outcome == "unmet"]
    assert recs and all(r.attempt == 0 for r in recs)
