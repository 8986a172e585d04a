"""DirectView tasks go through the scheduler core (issue 14 item 4): they are in `queue_status` beside
load-balanced tasks ('queue' counts direct tasks on an engine, as ipyparallel's MUX queue; 'tasks' the
load-balanced ones), in the core's records and the task database; and they never wait behind the hwm:
with hwm 1 and a load-balanced task holding the engine, a direct task goes to that engine at once
(queued there, not in the scheduler) and runs after it, in submission order. Direct tasks on an engine
that dies fail EngineError (the core does not move them); an engine that left is refused by the client.

Each test starts its own cluster, so the loads it reads are its own."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from _wait import Gate, wait_for_file, wait_until
from real_cluster.error import EngineError, TaskAborted

T = 60      # seconds: the deadline of every wait (5x headroom on a loaded 2-core machine)


def _order(path: str, tag: str) -> str:
    """Task body: append `tag` to the file at `path` (the order tasks ran in on one engine)."""
    with open(path, "a") as fh:
        fh.write(tag + "\n")
    return tag


def test_lb_and_direct_at_once_in_queue_status_and_records(make_cluster, tmp_path: Path):
    cluster = make_cluster(2, hwm=1)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=T)
    e0, e1 = rc.ids
    gate = Gate(tmp_path)
    direct = gate.hold(rc[e0])                                     # a DirectView task holding engine 0
    lb = gate.hold(rc.load_balanced_view(targets=e1))              # a load-balanced one holding engine 1
    wait_for_file(tmp_path / "started-1", T)
    wait_for_file(tmp_path / "started-2", T)
    status = rc.queue_status()
    assert status[e0] == {"queue": 1, "completed": 0, "tasks": 0}
    assert status[e1] == {"queue": 0, "completed": 0, "tasks": 1}
    verbose = rc.queue_status(verbose=True)
    assert verbose[e0]["queue"] == direct.msg_ids and verbose[e1]["tasks"] == lb.msg_ids
    assert rc[e0].queue_status() == status[e0]                     # the view's own engine
    gate.open()
    assert direct.get(T) is None and lb.get(T) is None
    ids = set(direct.msg_ids) | set(lb.msg_ids)
    records = {r.task_id: r for r in rc.records() if r.task_id in ids}
    assert records.keys() == ids
    assert records[direct.msg_ids[0]].engine_id == e0 and str(records[direct.msg_ids[0]].outcome) == "ok"
    rows = rc.db_query({"msg_id": {"$in": sorted(ids)}}, ["msg_id", "engine_id", "status"])
    assert sorted((r["engine_id"], r["status"]) for r in rows) == [(e0, "ok"), (e1, "ok")]


def test_direct_tasks_do_not_wait_behind_the_hwm(make_cluster, tmp_path: Path):
    cluster = make_cluster(1, hwm=1)
    rc = cluster.client
    rc.wait_for_engines(1, timeout=T)
    [e0] = rc.ids
    order = str(tmp_path / "order")
    lview = rc.load_balanced_view()
    gate = Gate(tmp_path)
    held = gate.hold(lview)                                        # a load-balanced task: the engine is at hwm 1
    wait_for_file(tmp_path / "started-1", T)
    first = rc[e0].apply_async(_order, order, "direct-1")          # direct: sent to the engine at once
    lb = lview.apply_async(_order, order, "lb")                    # load-balanced: waits in the scheduler
    second = rc[e0].apply_async(_order, order, "direct-2")
    status = wait_until(lambda: (s := rc.queue_status())[e0]["queue"] == 2 and s, T, "two direct tasks on engine")
    assert status == {e0: {"queue": 2, "completed": 0, "tasks": 1}, "unassigned": 1}
    verbose = rc.queue_status(verbose=True)
    assert verbose[e0]["queue"] == first.msg_ids + second.msg_ids and verbose["unassigned"] == lb.msg_ids
    assert not first.ready()                                      # queued on the engine behind the held task
    gate.open()
    assert [ar.get(T) for ar in (held, first, second, lb)] == [None, "direct-1", "direct-2", "lb"]
    assert Path(order).read_text().split() == ["direct-1", "direct-2", "lb"]   # direct ones in submission order
    records = {r.task_id: r for r in rc.records()}
    assert records[first.msg_ids[0]].engine_id == records[lb.msg_ids[0]].engine_id == e0
    assert records[first.msg_ids[0]].dispatched_at < records[lb.msg_ids[0]].dispatched_at


def test_a_direct_task_to_an_engine_that_left_fails_engine_error(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=T)
    e0, e1 = rc.ids
    dv = rc[[e0, e1]]
    rc[e1].shutdown(block=True)                                    # the view's shutdown: its engine only
    assert rc.ids == [e0]
    with pytest.raises(IndexError, match="No such engine"):      # the client knows it left: refused at once
        dv.apply_async(os.getpid)
    assert rc[e0].apply_sync(os.getpid) > 0                         # the other engine serves on


def test_direct_tasks_on_an_engine_that_dies_fail_engine_error(make_cluster, tmp_path: Path):
    cluster = make_cluster(2)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=T)
    e0, e1 = rc.ids
    nanny = rc[e0].apply_sync(os.getppid)                          # the engine's nanny: the worker's parent
    gate = Gate(tmp_path)
    held = gate.hold(rc[e0])
    wait_for_file(tmp_path / "started-1", T)
    queued = rc[e0].apply_async(os.getpid)                         # waits on the engine behind the held one
    os.kill(nanny, signal.SIGKILL)
    for ar in (held, queued):
        with pytest.raises(EngineError):
            ar.get(T)
    wait_until(lambda: rc.ids == [e1], T, "engine 0 to leave")
    assert rc[e1].apply_sync(abs, -2) == 2


def test_abort_a_direct_task_queued_on_its_engine(make_cluster, tmp_path: Path):
    cluster = make_cluster(1)
    rc = cluster.client
    rc.wait_for_engines(1, timeout=T)
    [e0] = rc.ids
    dv = rc[e0]
    dv.push({"kept": 1}, block=True)
    gate = Gate(tmp_path)
    held = gate.hold(dv)
    wait_for_file(tmp_path / "started-1", T)
    queued = dv.apply_async(os.getpid)
    wait_until(lambda: rc.queue_status()[e0]["queue"] == 2, T, "both direct tasks on the engine")
    assert dv.abort(jobs=queued) == 1
    with pytest.raises(TaskAborted):
        queued.get(T)
    gate.open()
    assert held.get(T) is None
    assert dv.pull("kept", block=True) == 1                        # a queued abort leaves the worker alone
