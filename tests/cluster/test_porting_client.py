"""Porting from ipyparallel, the Client and view side (issue 12, items 6, 7, 9-12), written as ipyparallel
code with only the import changed: client.metadata and the purges (outstanding tasks refused), imap
with cancel and return_exceptions, wait_for_engines(block=False), the error names and helpers,
@interactive, small signature differences (a task keyword named `f`, negative engine indices, waiting
on any Future, resubmit of an unknown id, Dependency as a mutable set, record headers), hub_history,
db_query operators and result_status."""

from __future__ import annotations

import concurrent.futures as cf
import os
import threading
import time
from datetime import datetime

import pytest

import real_cluster as ipp
from real_cluster import error
from real_cluster.error import CompositeError, RemoteError

pytestmark = pytest.mark.timeout(90)


# ----------------------------------------------------------------------- item 6: metadata, purges
def test_client_metadata_and_purges(make_cluster, gate):
    rc = make_cluster(2).client                                     # purges change the shared cluster's counts
    view = rc.load_balanced_view()
    ar = view.apply_async(abs, -3)
    ar.get(10)
    mid = ar.msg_ids[0]
    assert rc.metadata[mid]["engine_id"] == ar.engine_id and rc.results[mid] == 3
    rc.purge_local_results(mid)
    assert mid not in rc.metadata and mid not in rc.results
    assert rc.get_result(mid).get(10) == 3                          # the hub still has it
    assert rc.purge_hub_results(mid) == 1
    with pytest.raises(KeyError):
        rc.get_result(mid)
    slow = gate.hold(view)
    for purge in (rc.purge_local_results, rc.purge_hub_results, rc.purge_results):
        with pytest.raises(RuntimeError):
            purge(slow)                                             # outstanding: refused
    with pytest.raises(RuntimeError, match="outstanding"):
        rc.purge_results("all")
    with pytest.raises(ValueError):
        rc.purge_results()
    gate.open()
    assert slow.get(10) is None and rc.get_result(slow, owner=False).get(10) is None   # nothing was lost
    done = view.apply_async(abs, -2)
    done.get(10)
    assert rc.purge_results(targets=done.engine_id) >= 1          # everything that ran there
    assert rc.db_query({"msg_id": done.msg_ids[0]}, keys="status") == []


def test_purge_everything_and_wait_for_engines(make_cluster, capsys):
    cluster = make_cluster(0)
    rc = cluster.client
    fut = rc.wait_for_engines(1, timeout=60, block=False)
    assert isinstance(fut, cf.Future) and not fut.done()
    with pytest.raises(TimeoutError):
        rc.wait_for_engines(1, timeout=0.1)
    cluster.start_engines(1)
    assert fut.result(60) is None and rc.wait_for_engines(1, timeout=10) is None
    assert rc.wait_for_engines(1, timeout=10, interactive=True) is None
    assert "1/1" in capsys.readouterr().err                        # the progress bar, text in a terminal
    with pytest.raises(TypeError):
        rc.wait_for_engines()
    view = rc.load_balanced_view()
    ars = [view.apply_async(abs, -i) for i in range(3)]
    assert rc.wait(ars, timeout=20)
    assert rc.purge_everything() == 3
    assert rc.history == [] and rc.results == {} and rc.metadata == {} and rc.hub_history() == []


# ------------------------------------------------------------------------------------ item 7: imap
def test_imap_return_exceptions_and_cancel(rc, view):
    out = list(view.imap(lambda x: 1 / x, [1, 0, 2], return_exceptions=True))
    assert out[0] == 1.0 and out[2] == 0.5 and isinstance(out[1], RemoteError) and out[1].ename == "ZeroDivisionError"
    it = view.imap(lambda x: 1 / x, [1, 0, 2])
    assert next(it) == 1.0
    with pytest.raises(RemoteError):
        next(it)
    before = len(view.history)
    it = view.imap(time.sleep, [0.3] * 40, max_outstanding=2)
    assert next(it) is None
    it.cancel()
    assert list(it) == []
    sent = view.history[before:]
    assert len(sent) <= 4                                           # nothing submitted after cancel
    assert rc.wait(sent, timeout=10)
    mixed = view.map(lambda x: 1 / x, [1, 0], block=True, return_exceptions=True)
    assert mixed[0] == 1.0 and isinstance(mixed[1], RemoteError)


# ----------------------------------------------------------------------- item 10: errors, interactive
def test_error_names_and_helpers(view, gate):
    for name in ("IPythonError", "KernelError", "TimeoutError", "TaskRejectError", "DependencyTimeout", "RemoteError",
                 "CompositeError", "EngineError", "TaskAborted", "TaskTimeout", "UnmetDependency",
                 "ImpossibleDependency", "InvalidDependency", "NoEnginesRegistered"):
        assert isinstance(getattr(error, name), type), name
    assert issubclass(error.RemoteError, error.KernelError) and issubclass(error.KernelError, error.IPythonError)
    assert issubclass(error.DependencyTimeout, error.ImpossibleDependency)
    slow = gate.hold(view)
    with pytest.raises(error.TimeoutError):
        slow.get(0)
    with pytest.raises(TimeoutError):                               # also the builtin
        slow.get(0)
    assert error.collect_exceptions([1, 2], "f") == [1, 2]
    with pytest.raises(CompositeError) as info:
        error.collect_exceptions([1, RemoteError("ValueError", "bad")], "f")
    assert info.value.elist[0][:2] == ("ValueError", "bad")
    try:
        1 / 0
    except ZeroDivisionError:
        content = error.wrap_exception({"engine_id": 3, "method": "apply"})
    exc = error.unwrap_exception(content)
    assert isinstance(exc, RemoteError) and exc.ename == "ZeroDivisionError" and "1 / 0" in exc.traceback
    assert str(exc) == "[3:apply] ZeroDivisionError: division by zero"
    assert isinstance(error.unwrap_exception({"ename": "TaskTimeout", "evalue": "late"}), error.TaskTimeout)
    gate.open()
    slow.get(10)


def test_task_reject_error_moves_the_task_with_retries(rc, view):
    wanted = rc.load_balanced_view(targets=rc.ids[-1]).apply_sync(os.getpid)

    def only_on(pid):
        import os

        from real_cluster.error import TaskRejectError
        if os.getpid() != pid:
            raise TaskRejectError("not this engine")
        return pid

    with view.temp_flags(retries=len(rc.ids) - 1):
        ar = view.apply_async(only_on, wanted)
    assert ar.get(30) == wanted and ar.engine_id == rc.ids[-1]
    with pytest.raises(RemoteError) as info:                       # without retries the rejection is the error
        rc.load_balanced_view(targets=rc.ids[0]).apply_sync(only_on, wanted)
    assert info.value.ename == "TaskRejectError"


def test_interactive_decorator(view):
    @ipp.interactive
    def double(x):
        return 2 * x

    assert view.apply_sync(double, 21) == 42


# ------------------------------------------------------------------ item 11: small differences
def test_small_signature_differences(rc, view, gate):
    def takes_f(f=0, *, g=1):
        return f + g

    assert view.apply_sync(takes_f, f=5) == 6 and view.apply_async(takes_f, f=1, g=2).get(10) == 3
    newest = rc.load_balanced_view(-1)
    assert newest.targets == [rc.ids[-1]] and newest.apply_async(os.getpid).get(10) and newest.history
    assert rc.get_result(newest.history[-1], owner=False).engine_id == rc.ids[-1]
    assert rc.load_balanced_view([0, -1]).targets == [rc.ids[0], rc.ids[-1]]
    with pytest.raises(IndexError):
        rc.load_balanced_view(-99)
    with cf.ThreadPoolExecutor(1) as pool:
        local = pool.submit(time.sleep, 0.2)
        remote = view.apply_async(abs, -1)
        assert rc.wait([remote, local], timeout=10) and local.done() and remote.ready()
        go = threading.Event()
        late = pool.submit(go.wait, 30)
        assert rc.wait([late], timeout=0.01) is False
        go.set()
    with pytest.raises(RemoteError) as info:
        rc.resubmit("no-such-task")
    assert info.value.ename == "KeyError"
    pending = gate.hold(view)
    with pytest.raises(ValueError, match="not finished"):           # DESIGN §4: a pending task is not resubmitted
        rc.resubmit(pending)
    gate.open()
    pending.get(10)


def test_dependency_is_a_mutable_set(view):
    broken = view.apply_async(lambda: 1 / 0)
    dep = ipp.Dependency(broken)
    assert isinstance(dep, set) and dep == set(broken.msg_ids)
    dep.success, dep.failure = False, True                         # changed after construction
    with view.temp_flags(after=dep):
        runs = view.apply_async(lambda: "after the failure")
    assert runs.get(10) == "after the failure"
    empty = ipp.Dependency([])
    empty.add(broken.msg_ids[0])                                   # the default flags: success only
    with view.temp_flags(after=empty):
        never = view.apply_async(abs, 1)
    with pytest.raises(error.ImpossibleDependency):
        never.get(10)
    assert ipp.Dependency(dep.as_dict()) == dep and ipp.Dependency(dep.as_dict()).failure is True
    with view.temp_flags(after=dep):
        dep.failure = False                                        # now neither: refused at submission
        with pytest.raises(ValueError, match="success, failure, or both"):
            view.apply_async(abs, 1)
    with pytest.raises(ValueError):
        ipp.Dependency(["a"], success=False, failure=False)
    with pytest.raises(TypeError):
        ipp.Dependency([1.5])
    d = ipp.Dependency(["a", "b"], all=False)
    assert d.check({"a"}) and not d.unreachable({"a"}, {"b"})


def test_records_carry_a_header(rc, view):
    ar = view.apply_async(abs, -1)
    ar.get(10)
    rec = rc.db_query({"msg_id": ar.msg_ids[0]}, keys="header")
    assert len(rec) == 1 and set(rec[0]) == {"msg_id", "header"}
    header = rec[0]["header"]
    assert header["msg_id"] == ar.msg_ids[0] and header["date"] == ar.submitted and header["msg_type"]
    full = rc.db_query({"msg_id": ar.msg_ids[0]})[0]
    assert full["header"] == header and isinstance(full["completed"], datetime)


# ------------------------------------------------------------- item 12: hub_history, db_query, status
def test_hub_history_and_db_query_operators(rc, view):
    with view.temp_flags(label="item12"):
        ars = [view.apply_async(abs, -i) for i in range(4)]
    assert rc.wait(ars, timeout=10)
    ids = [ar.msg_ids[0] for ar in ars]
    assert [h for h in rc.hub_history() if h in ids] == ids         # oldest first

    def query(q):
        return [r["msg_id"] for r in rc.db_query(dict(q, label="item12"), keys=["msg_id"])]

    cut = ars[1].submitted
    assert query({"msg_id": {"$in": ids[:2]}}) == ids[:2]
    assert query({"msg_id": {"$nin": ids[:2]}}) == ids[2:]
    assert query({"submitted": {"$gt": cut}}) == ids[2:] and query({"submitted": {"$lte": cut}}) == ids[:2]
    assert query({"submitted": {"$gte": cut, "$lt": ars[3].submitted}}) == ids[1:3]
    assert query({"submitted": cut}) == [ids[1]] and query({"msg_id": {"$ne": ids[0]}}) == ids[1:]
    assert query({"completed": {"$exists": True}}) == ids and query({"ename": {"$exists": True}}) == []
    assert query({"engine_id": {"$mod": [1, 0]}}) == ids
    with pytest.raises(KeyError):
        query({"msg_id": {"$regex": "x"}})
    with pytest.raises(KeyError):
        rc.db_query({"no_such_field": 1})
    with pytest.raises(TypeError):
        rc.db_query({}, keys=5)
    with pytest.raises(TypeError):
        rc.purge_hub_results(targets="all of them")
    assert query({}) == ids                                         # bad input changed nothing


def test_result_status(rc, view, gate):
    ok = view.apply_async(abs, -5)
    bad = view.apply_async(lambda: 1 / 0)
    slow = gate.hold(view)
    ok.wait(10)
    bad.wait(10)
    status = rc.result_status([ok, bad, slow])
    assert status["status"] == "ok" and status["pending"] == slow.msg_ids
    assert sorted(status["completed"]) == sorted(ok.msg_ids + bad.msg_ids)
    with ipp.Client(profile="session") as other:
        full = other.result_status(ok.msg_ids, status_only=False)
        assert full["completed"] == ok.msg_ids and full[ok.msg_ids[0]] == 5
        with pytest.raises(RemoteError) as info:
            other.result_status(bad.msg_ids, status_only=False)
        assert info.value.ename == "ZeroDivisionError"
        with pytest.raises(RemoteError) as info:
            other.result_status(["no-such-task"])
        assert info.value.ename == "KeyError"
    gate.open()
    slow.get(10)


def test_client_from_url_file(rc):
    with ipp.Client(url_file=rc.connection_file) as other:
        assert other.ids == rc.ids
    with pytest.raises(ValueError):
        ipp.Client(rc.connection_file, url_file="/elsewhere/ipcontroller-client.json")


def test_executor_track_and_other_no_ops(rc, view, gate):
    with view.executor as ex:                                     # concurrent.futures code runs as is
        fut = ex.submit(pow, 2, 5)
        assert list(ex.map(abs, [-1, -2, -3])) == [1, 2, 3]
        assert isinstance(fut, cf.Future) and fut.result(10) == 32
    assert fut.done()
    with view.temp_flags(track=True):
        ar = view.apply_async(abs, -1)
    assert ar.sent and ar.wait_for_send() is None and ar.get(10) == 1
    rc.spin()
    rc.spin_thread()
    rc.stop_spin_thread()
    view.spin()
    slow = gate.hold(view)
    assert view.outstanding == set(slow.msg_ids)
    gate.open()
    slow.get(10)
    assert view.outstanding == set() and view.results[slow.msg_ids[0]] is None and rc.block is False

    import asyncio

    async def gather():
        return await view.apply_async(abs, -9)

    assert asyncio.run(gather()) == 9
