"""DirectView tasks go through the scheduler core (issue 14 item 4): they are in `queue_status` beside
load-balanced tasks ('queue' counts direct tasks on an engine, as ipyparallel's MUX queue; 'tasks' the
load-balanced ones), in the core's records and the task database; and they never wait behind the hwm:
with hwm 1 and a load-balanced task holding the engine, a direct task goes to that engine at once
(queued there, not in the scheduler) and runs after it, in submission order.

Each test starts its own cluster, so the loads it reads are its own."""

from __future__ import annotations

import os
from pathlib import Path

from _wait import Gate, started_then_hold, wait_for_file, wait_until

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
