"""The client API end to end on a shared 4-engine cluster: apply/map/imap/parallel/remote, view flags
(set_flags validation, temp_flags), AsyncResult as a Future with its metadata and timing, get_result from a
second client, wait, ids, queue_status, abort, resubmit, hub_history, db_query, purge and labels."""

from __future__ import annotations

import concurrent.futures as cf
import os
import time

import pytest
from _wait import started_then_hold, wait_until

from real_cluster import AsyncResult, Client, Dependency
from real_cluster.error import CompositeError, InvalidDependency, NoEnginesRegistered, RemoteError, TaskAborted

pytestmark = pytest.mark.timeout(60)


def test_apply_variants(view):
    assert view.apply_sync(lambda a, b=1: a * b, 6, b=7) == 42
    ar = view.apply_async(pow, 2, 10)
    assert isinstance(ar, AsyncResult) and isinstance(ar, cf.Future)
    assert ar.get(timeout=10) == 1024 and ar.result() == 1024 and ar.ready() and ar.successful()
    assert view.apply(pow, 2, 3).get(10) == 8            # block False -> AsyncResult
    with view.temp_flags(block=True):
        assert view.apply(pow, 2, 4) == 16
    assert view.block is False


def test_remote_exception_carries_engine_and_traceback(view):
    def boom():
        raise ValueError("boom")

    with pytest.raises(RemoteError) as info:
        view.apply_sync(boom)
    err = info.value
    assert err.ename == "ValueError" and err.evalue == "boom"
    assert err.engine_info["engine_id"] in view.client.ids and "in boom" in err.traceback
    assert str(err) == f"[{err.engine_info['engine_id']}:apply] ValueError: boom"


def test_asyncresult_metadata_and_timing(view):
    ar = view.apply_async(time.sleep, 0.2)
    assert ar.metadata["status"] == "pending" and not ar.ready()
    with pytest.raises(TimeoutError):
        ar.get(timeout=0.01)
    with pytest.raises(RuntimeError):
        ar.successful()
    assert ar.elapsed >= 0
    assert ar.get(10) is None
    md = ar.metadata
    assert md["submitted"] <= md["started"] <= md["completed"] <= md["received"]
    assert ar.engine_id == md["engine_id"] in view.client.ids
    assert 0.19 < ar.serial_time < 1.0 and ar.wall_time >= ar.serial_time and ar.elapsed == ar.wall_time
    assert ar.msg_ids == [md["msg_id"]] and ar["engine_id"] == ar.engine_id
    assert ar.progress == 1 and len(ar) == 1
    with pytest.raises(TypeError):
        iter(ar)


def test_map_chunks_unequal_lengths_and_empty(view):
    assert view.map_sync(lambda x: x * x, range(10)) == [x * x for x in range(10)]
    ar = view.map_async(lambda a, b: a + b, range(10), range(100, 107), chunksize=3)
    assert ar.get(10) == [a + b for a, b in zip(range(10), range(100, 107))]
    assert len(ar) == 7 and len(ar.msg_ids) == 3 and ar.progress == 7     # no empty tail tasks
    assert isinstance(ar.engine_id, list) and len(ar.metadata) == 3
    assert view.map_sync(abs, []) == [] and view.map_sync(abs, [1], []) == []
    assert list(view.map_async(str, range(5))) == ["0", "1", "2", "3", "4"]
    with pytest.raises(TypeError):
        view.map_sync(abs, [1], block=True)
    with pytest.raises(ValueError):
        view.map(abs, [1], chunksize=0)


def test_map_unordered_iteration_and_failures(view):
    ar = view.map_async(lambda t: time.sleep(t) or t, [0.3, 0.0, 0.0], ordered=False)
    assert list(ar)[-1] == 0.3
    with pytest.raises(CompositeError) as info:
        view.map_sync(lambda x: 1 / x, [1, 0, 2, 0])
    assert len(info.value.elist) == 2 and info.value.elist[0][0] == "ZeroDivisionError"
    out = view.map_async(lambda x: 1 / x, [1, 0], return_exceptions=True).get(10)
    assert out[0] == 1.0 and isinstance(out[1], RemoteError)


def test_imap_parallel_and_remote(view):
    assert list(view.imap(lambda x: -x, range(7))) == [-x for x in range(7)]
    assert sorted(view.imap(lambda x: x, range(5), ordered=False, max_outstanding=2)) == list(range(5))

    @view.parallel()
    def f(x):
        return 10.0 * x ** 4

    assert f.map(range(5)).get(10) == [10.0 * x ** 4 for x in range(5)]

    @view.parallel(block=True, chunksize=2)
    def chunk_len(chunk):
        return [len(chunk)] * len(chunk)

    assert chunk_len(range(6)) == [2] * 6          # called on slices of 2, results joined

    @view.remote(block=True, label="remote-fn")
    def getpid():
        return os.getpid()

    assert isinstance(getpid(), int) and getpid() != os.getpid()
    assert view.label is None


def test_set_flags_validates_before_assigning(view):
    v = view.client.load_balanced_view()
    with pytest.raises(KeyError, match="Invalid name"):
        v.set_flags(nonsense=1)
    with pytest.raises(ValueError):
        v.set_flags(retries=2, after=[object()])
    assert v.retries == 0 and v.after is None          # nothing was assigned
    with pytest.raises(TypeError):
        v.set_flags(timeout="soon")
    with pytest.raises(ValueError):
        v.set_flags(timeout=-1)
    with pytest.raises(TypeError):
        v.set_flags(retries=1.5)
    assert v.set_flags(timeout=None, retries=2, label="x", targets=[0]) is v
    assert (v.timeout, v.retries, v.label, v.targets) == (None, 2, "x", [0])
    with v.temp_flags(retries=0, label=None):
        assert v.retries == 0 and v.label is None
    assert v.retries == 2 and v.label == "x"
    v.set_flags(targets=99)
    with pytest.raises(IndexError):
        v.apply_async(abs, 1)


def test_targets_pin_tasks(view):
    eid = view.client.ids[-1]
    with view.temp_flags(targets=eid):
        ars = [view.apply_async(os.getpid) for _ in range(4)]
    assert {ar.get(10) for ar in ars} == {ars[0].get()} and {ar.engine_id for ar in ars} == {eid}


def test_second_client_gets_results_and_ids(rc, view):
    ar = view.apply_async(lambda: "shared")
    ar.get(10)
    slow = view.apply_async(time.sleep, 0.3)
    with Client(profile="session") as other:
        assert other.ids == rc.ids
        assert other.get_result(ar.msg_ids[0]).get(10) == "shared"
        pending = other.get_result(slow.msg_ids[0])        # subscribes: arrives when done
        assert pending.get(10) is None and slow.get(10) is None      # both clients hear of it
        assert pending.metadata["engine_id"] == slow.engine_id
        assert other.get_result(ar.msg_ids + slow.msg_ids, block=True).get(0) == ["shared", None]
        with pytest.raises(KeyError):
            other.get_result("no-such-task")
    assert rc.get_result(-1).get(10) is None and rc.get_result(ar).get(10) == "shared"


def test_results_survive_the_submitting_client(session_cluster):
    first = Client(profile="session")
    ar = first.load_balanced_view().apply_async(lambda: time.sleep(0.3) or "orphan")
    first.close()
    with Client(profile="session") as second:
        assert second.get_result(ar.msg_ids[0], block=True, timeout=10).get(0) == "orphan"


def test_wait_queue_status_and_abort(rc, view, tmp_path):
    assert rc.wait(view.apply_async(time.sleep, 0.05), timeout=10)
    assert rc.wait(timeout=10)
    started, release = tmp_path / "started", tmp_path / "release"
    blockers = [view.apply_async(started_then_hold, str(started), str(release)) for _ in rc.ids]  # hwm=1: all busy
    queued = view.apply_async(time.sleep, 0)
    wait_until(lambda: started.exists() and len(started.read_text().split()) == len(rc.ids), 15,
               "a blocker running on every engine")
    status = rc.queue_status()                  # after the Submit of `queued` on this connection: it waits
    assert status["unassigned"] >= 1 and sum(status[e]["tasks"] for e in rc.ids) == len(rc.ids)
    assert set(status[rc.ids[0]]) == {"queue", "completed", "tasks"}
    assert rc.queue_status(rc.ids[0])["tasks"] == 1
    verbose = rc.queue_status(verbose=True)                      # ids instead of counts
    assert queued.msg_ids[0] in verbose["unassigned"]
    running = [tid for e in rc.ids for tid in verbose[e]["tasks"]]
    assert sorted(running) == sorted(ar.msg_ids[0] for ar in blockers)
    counts = rc.queue_status()
    assert all(len(verbose[e]["completed"]) == counts[e]["completed"] for e in rc.ids)
    queued.abort()
    with pytest.raises(TaskAborted):
        queued.get(10)
    assert not rc.wait(blockers, timeout=0.01)
    release.touch()
    assert rc.wait(blockers, timeout=10)
    with pytest.raises(RuntimeError):
        queued.abort()


def test_resubmit_runs_again_with_the_same_flags(rc, view):
    with view.temp_flags(label="again", retries=1):
        ar = view.apply_async(lambda: os.getpid())
    first = ar.get(10)
    again = rc.resubmit(ar.msg_ids)
    assert again.msg_ids != ar.msg_ids and isinstance(again.get(10), int) and first
    row = rc.db_query({"msg_id": again.msg_ids[0]}, keys=["flags", "resubmit_of", "label"])[0]
    assert row["flags"]["retries"] == 1 and row["label"] == "again" and row["resubmit_of"] == ar.msg_ids[0]
    assert rc.db_query({"msg_id": ar.msg_ids[0]}, keys=["resubmitted"])[0]["resubmitted"] == again.msg_ids[0]
    pending = view.apply_async(time.sleep, 0.3)
    with pytest.raises(ValueError):
        rc.resubmit(pending.msg_ids)
    pending.get(10)


def test_hub_history_db_query_and_purge(rc, view):
    t0 = time.time()
    with view.temp_flags(label="purge-me"):
        ars = [view.apply_async(abs, -i) for i in range(3)]
    assert [a.get(10) for a in ars] == [0, 1, 2]
    ids = [a.msg_ids[0] for a in ars]
    assert set(ids) <= set(rc.hub_history())
    rows = rc.db_query({"label": "purge-me", "submitted": {"$gte": t0 - 1}}, keys=["status", "engine_id", "result"])
    assert [r["msg_id"] for r in rows] == ids and all(r["status"] == "ok" for r in rows)
    assert isinstance(rows[0]["result"], bytes)
    assert rc.purge_results(ids[:2]) == 2
    assert rc.db_query({"label": "purge-me"}, keys=["status"])[0]["msg_id"] == ids[2]
    with pytest.raises(KeyError):
        rc.get_result(ids[0])
    with pytest.raises(InvalidDependency):          # purged ids are unknown to the scheduler too
        rc.load_balanced_view(after=ids[0]).apply_sync(abs, 1)


def test_no_engines_registered(make_cluster):
    cluster = make_cluster(0)
    v = cluster.client.load_balanced_view(targets=[0])
    with pytest.raises(NoEnginesRegistered):
        v.apply_async(abs, 1)
    ar = cluster.client.load_balanced_view().apply_async(abs, -5)   # no targets: waits for an engine
    assert not ar.wait(0.3)
    cluster.start_engines(1)
    assert ar.get(20) == 5


def test_dependency_class_is_exported():
    d = Dependency(["a"], all=False)
    assert not d.check(set(), set()) and d.check({"a"}, set())
