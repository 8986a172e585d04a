"""A function goes from the client to the controller once per connection (fncache.py), on real clusters: a loop
of calls sends its bytes once and names it by digest after; the task database keeps the bytes once (table
`functions`) and each task by digest, yet `db_query` answers the whole call; threads sending a new function at
once never let a call by digest overtake the bytes; tasks kept by digest survive a controller SIGKILL and run
after it on workers that never had their function (the bytes come from the database)."""

from __future__ import annotations

import os
import threading

import pytest
from _marker_db import restart_controller, rows as _rows
from _wait import run_threads, started_then_hold, wait_until

from real_cluster.fncache import HEADER, FunctionCache, parse

pytestmark = pytest.mark.timeout(180)


def _cell(source: str) -> dict:
    ns: dict = {"__name__": "__main__"}
    exec(compile(source, "<cell>", "exec"), ns)
    return ns


def _salted(name: str = "tag") -> dict:
    """A function in a fresh `__main__`-like namespace, with bytes no process has seen."""
    return _cell(f"SALT = {os.urandom(8).hex()!r}\ndef {name}(x):\n    return (x, SALT)\n")


@pytest.mark.parametrize("db", ["sqlite", "memory"])
def test_a_loop_sends_the_bytes_once_and_the_database_keeps_them_once(make_cluster, db):
    cluster = make_cluster(2, db=db)
    rc = cluster.client
    view = rc.load_balanced_view()
    ns = _salted()
    before = rc.function_stats()["client"]
    ars = [view.apply_async(ns["tag"], i) for i in range(100)]
    assert [ar.get(30) for ar in ars] == [(i, ns["SALT"]) for i in range(100)]
    after = rc.function_stats()["client"]
    assert after["to_controller_with_bytes"] - before["to_controller_with_bytes"] == 1
    assert after["to_controller_by_digest"] - before["to_controller_by_digest"] == 99
    rc.queue_status()           # a request: answered once every write before it has committed
    whole = FunctionCache().pack_call(ns["tag"], (0,), {})
    ids = [ar.msg_ids[0] for ar in ars]
    assert rc.db_query({"msg_id": ids[0]}, keys=["payload"])[0]["payload"] == whole     # answered whole
    if db == "memory":
        return
    _, digest, n = parse(whole)
    path = cluster.dir / "tasks.db"
    stored = dict(_rows(path, f"SELECT msg_id, payload FROM tasks WHERE msg_id IN ({','.join('?' * len(ids))})",
                        tuple(ids)))
    assert len(stored) == 100
    assert all(parse(p)[1:] == (digest, 0) for p in stored.values())       # each task by digest alone
    assert _rows(path, "SELECT bytes FROM functions WHERE digest=?", (digest,)) == [
        (whole[HEADER.size:HEADER.size + n],)]


def test_threads_sending_a_new_function_at_once_lose_no_call(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    view = rc.load_balanced_view()
    ns = _salted()
    start = threading.Barrier(8)

    def submit(k: int) -> list:
        start.wait(10)
        ars = [view.apply_async(ns["tag"], k * 100 + i) for i in range(25)]
        return [ar.get(60) for ar in ars]

    out, errors, ended = run_threads(submit, 8, 90)
    assert not errors and ended
    assert out == {k: [(k * 100 + i, ns["SALT"]) for i in range(25)] for k in range(8)}
    stats = rc.function_stats()["client"]
    assert stats["to_controller_with_bytes"] == 1 and stats["to_controller_by_digest"] == 199


def test_tasks_kept_by_digest_run_after_a_controller_kill_on_workers_that_never_had_the_function(
        make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--reuse"])
    rc = cluster.client
    view = rc.load_balanced_view()
    started, gate = str(tmp_path / "started"), str(tmp_path / "go")
    with view.temp_flags(retries=1):
        blocker = view.apply_async(started_then_hold, started, gate, 60.0, "released")   # attempt 1 out at the kill
    ns = _salted()
    with view.temp_flags(after=[blocker]):
        queued = [view.apply_async(ns["tag"], i) for i in range(5)]     # never dispatched before the kill
    assert rc.function_stats()["client"]["to_controller_by_digest"] == 4
    rc.queue_status()                                   # an answer after every submission above: all are durable
    wait_until(lambda: os.path.exists(started), 30, "the blocker to start")
    rc = restart_controller(cluster, 2)
    open(gate, "w").close()
    assert rc.get_result(blocker.msg_ids[0]).get(60) == "released"
    # the function reached no worker before the kill: after it, its bytes can only have come from the database
    assert [rc.get_result(ar.msg_ids[0]).get(60) for ar in queued] == [(i, ns["SALT"]) for i in range(5)]
    counts = [v for k, v in rc.function_stats().items() if k != "client"]
    assert sum(v["fn_shipped"] for v in counts) >= 1 and sum(v["fn_missed"] for v in counts) == 0
