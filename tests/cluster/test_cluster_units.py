"""Pieces that need no processes: the exception tree and its ipyparallel string formats, the SQLite task
database (writes, Mongo-style queries, purge, durability across reopening), and functional dependencies
(`require`, `depend`, `dependent`) as an engine checks them."""

from __future__ import annotations

import pickle

import cloudpickle
import pytest

from real_cluster import error
from real_cluster.error import (
    CompositeError, EngineError, ImpossibleDependency, InvalidDependency, RemoteError, TaskAborted, TaskTimeout,
    UnmetDependency, remote_error,
)
from real_cluster.functional import check_dependencies, depend, dependent, require
from real_cluster.taskdb import TaskDB
from sched_lab.core import Outcome, TaskRecord


# ---------------------------------------------------------------------------------------- errors
def test_scheduler_failures_are_remote_errors_of_the_named_class():
    for name, cls in [("TaskTimeout", TaskTimeout), ("EngineError", EngineError), ("TaskAborted", TaskAborted),
                      ("ImpossibleDependency", ImpossibleDependency), ("InvalidDependency", InvalidDependency)]:
        err = remote_error(name, "why")
        assert type(err) is cls and isinstance(err, RemoteError) and err.ename == name
    assert issubclass(InvalidDependency, ImpossibleDependency) and issubclass(ImpossibleDependency, UnmetDependency)
    plain = remote_error("ValueError", "bad", "tb", {"engine_id": 3, "method": "apply"})
    assert type(plain) is RemoteError and plain.ename == "ValueError"


def test_remote_error_strings_follow_ipyparallel():
    assert str(remote_error("ValueError", "boom", "", {"engine_id": 1, "method": "apply"})) == "[1:apply] ValueError: boom"
    assert str(remote_error("TaskTimeout", "")) == "[Engine Exception] TaskTimeout: "
    assert repr(remote_error("KeyError", "k", "", {"engine_id": 2})) == "<RemoteError[2]:KeyError(k)>"
    err = pickle.loads(pickle.dumps(TaskTimeout("late")))
    assert type(err) is TaskTimeout and err.evalue == "late"


def test_composite_error_lists_the_first_four():
    elist = [("ZeroDivisionError", "division by zero", "", {"engine_id": i, "method": "apply"}) for i in range(6)]
    err = CompositeError("one or more exceptions raised in: f", elist)
    lines = str(err).splitlines()
    assert lines[0] == "one or more exceptions raised in: f"
    assert lines[1] == "[0:apply]ZeroDivisionError: division by zero" and len(lines) == 6
    assert lines[-1] == ".... 2 more exceptions ..." and repr(err) == "CompositeError(6)"
    with pytest.raises(RemoteError, match=r"\[3:apply\]"):
        err.raise_exception(3)


def test_error_module_documents_every_class():
    for name in error.__all__:
        obj = getattr(error, name)
        assert obj.__doc__, name


# ------------------------------------------------------------------------------------ task db
def _fill(db: TaskDB) -> None:
    for i in range(5):
        db.add_task(f"t{i}", "c", {"label": "even" if i % 2 == 0 else "odd"}, 100.0 + i, b"payload%d" % i)
    db.finish_task("t0", "ok", 1, 101.0, 102.0, 103.0, b"result0")
    db.finish_task("t1", "error", 0, 101.0, 102.0, 103.0, None, "ValueError", "bad", "tb", {"engine_id": 0})


def test_taskdb_queries(tmp_path):
    db = TaskDB(str(tmp_path / "tasks.db"))
    _fill(db)
    assert db.dirty
    assert db.hub_history() == ["t0", "t1", "t2", "t3", "t4"] and not db.dirty
    assert [r["msg_id"] for r in db.query({"label": "even"})] == ["t0", "t2", "t4"]
    assert [r["msg_id"] for r in db.query({"submitted": {"$gt": 102.0}})] == ["t3", "t4"]
    assert [r["msg_id"] for r in db.query({"submitted": {"$gte": 101, "$lt": 103}})] == ["t1", "t2"]
    assert [r["msg_id"] for r in db.query({"msg_id": {"$in": ["t1", "t3"]}})] == ["t1", "t3"]
    assert [r["msg_id"] for r in db.query({"completed": None})] == ["t2", "t3", "t4"]
    assert [r["msg_id"] for r in db.query({"status": {"$ne": "pending"}, "label": {"$nin": ["odd"]}})] == ["t0"]
    row = db.get("t1")
    assert row["ename"] == "ValueError" and row["engine_info"] == {"engine_id": 0} and "payload" not in row
    assert db.query({"msg_id": "t0"}, keys=["result"]) == [{"msg_id": "t0", "result": b"result0"}]
    with pytest.raises(KeyError):
        db.query({"nonsense": 1})
    with pytest.raises(KeyError):
        db.query({"label": {"$where": "1"}})
    db.close()


def test_taskdb_is_durable_and_purges(tmp_path):
    path = str(tmp_path / "tasks.db")
    db = TaskDB(path)
    _fill(db)
    db.add_records([TaskRecord("t0", 0, 1, 100.0, 100.5, 101.0, 102.0, Outcome.OK, None, 0, 0, "lru", "even")])
    db.close()
    db = TaskDB(path)
    assert db.get("t0")["status"] == "ok" and len(db.hub_history()) == 5
    assert db.records()[0].outcome is Outcome.OK and db.records()[0].scheme == "lru"
    assert db.fail_pending(200.0, "TaskAborted", "controller restarted") == 3
    assert db.purge(["t0", "nope"]) == ["t0"]
    assert sorted(db.purge(None)) == ["t1", "t2", "t3", "t4"] and db.hub_history() == []
    db.close()


# --------------------------------------------------------------------------- functional deps
def test_depend_only_false_is_unmet():
    check_dependencies(depend(lambda: None)(lambda: 1))
    check_dependencies(depend(lambda: 0)(lambda: 1))
    with pytest.raises(UnmetDependency):
        check_dependencies(depend(lambda: False)(lambda: 1))
    with pytest.raises(ZeroDivisionError):                 # a failing dependency function is a task error
        check_dependencies(depend(lambda: 1 / 0)(lambda: 1))
    d = dependent(lambda x: x + 1, lambda a: a == 2, 2)
    check_dependencies(d)
    assert d(1) == 2


def test_require_imports_and_publishes_names_after_pickling():
    def helper(x):
        return x * 3

    @require("json", helper)
    def task(v):
        return json.dumps(helper(v))  # noqa: F821 - json comes from require

    assert task.modules == ("json",)
    clone = pickle.loads(cloudpickle.dumps(task))
    check_dependencies(clone)
    assert clone(2) == "6"
    with pytest.raises(UnmetDependency):
        check_dependencies(pickle.loads(cloudpickle.dumps(require("no_such_module_xyz")(lambda: 1))))
    with pytest.raises(TypeError):
        require(3)


# ----------------------------------------------------------------------------------- task table
def test_task_table_counts_each_clients_pending_tasks():
    from real_cluster.aio_link import Link
    from real_cluster.messages import TaskFlags
    from real_cluster.task_table import PendingTask, TaskTable, spec_for

    alice, bob = (Link("k", server=True, on_message=lambda link, msg: None) for _ in range(2))
    table = TaskTable()
    for i in range(3):
        table.add(PendingTask(f"a{i}", b"payload", TaskFlags(), 0.0, {alice}, owner=alice))
    table.add(PendingTask("resubmitted", b"payload", TaskFlags(label="x"), 0.0, {bob}))    # no owner
    assert len(table) == 4 and "a1" in table and table.pending_of(alice) == 3 and table.pending_of(bob) == 0
    with pytest.raises(ValueError, match="already pending"):
        table.add(PendingTask("a0", b"", TaskFlags(), 0.0, owner=alice))
    assert table.pending_of(alice) == 3                         # a refused add counts nothing
    table.subscribe("a0", bob)
    assert table["a0"].subscribers == {alice, bob}
    assert table.pop("a0").task_id == "a0" and table.pending_of(alice) == 2 and table.pop("a0") is None
    table.client_gone(alice)
    assert table.pending_of(alice) == 0 and table.pop("a1") is not None and table.pending_of(alice) == 0
    assert table.get("resubmitted").flags.label == "x" and sorted(table) == ["a2", "resubmitted"]
    assert spec_for("t", TaskFlags(targets=(1, 2), retries=2)).targets == frozenset({1, 2})
