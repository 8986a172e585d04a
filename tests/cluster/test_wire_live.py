"""Malformed requests from a key holder, end to end (issue 11, item 1): each failure the issue lists, sent on a
raw authenticated socket to a live controller. A Submit whose task id is an int closes only that connection
(nothing is dispatched, the engine stays free); a string `submitted_at` or `targets: [[0]]` gets an error
result naming the field and leaves no row; a request with bad arguments gets an error reply naming the
argument and the connection keeps serving; an engine reporting a task it was not given changes nothing.
Meanwhile the real client's work runs on the same engine."""

from __future__ import annotations

import json
import socket
import time

import cloudpickle
import pytest

from real_cluster import protocol as proto
from real_cluster.messages import Register, Registered, Reply, TaskDone, TaskResult, from_wire, to_wire
from real_cluster.profile import CLIENT_FILE, ENGINE_FILE, read_connection_file
from real_cluster.serialize import pack_call
from test_hostile_live import _authenticated, _closed_within

pytestmark = pytest.mark.timeout(120)


class _Reader:
    """Messages from a raw socket, waited for with a deadline."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.dec = proto.FrameDecoder(proto.RESULT_LIMITS)
        self.got: list = []

    def until(self, pred, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            for m in self.got:
                if pred(m):
                    self.got.remove(m)
                    return m
            left = deadline - time.monotonic()
            assert left > 0, f"no matching message within {timeout} s; got {self.got}"
            self.sock.settimeout(left)
            data = self.sock.recv(1 << 16)
            assert data, "connection closed"
            self.got.extend(from_wire(h, b) for h, b in self.dec.feed(data))


def _send(sock: socket.socket, header: dict, buffers: list[bytes] = ()) -> None:
    sock.sendall(proto.encode_frame(dict(header, nb=len(buffers)) if buffers else header, list(buffers)))


def _payload() -> bytes:
    return pack_call(abs, (-3,), {})


def test_malformed_submissions_and_requests_fail_alone_and_name_the_field(make_cluster):
    cluster = make_cluster(1, hwm=1)
    rc = cluster.client
    info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    v = rc.load_balanced_view()
    payload = _payload()

    # 1. an int task id: no reply can name that task, so only this connection closes; nothing is dispatched
    s = _authenticated(info)
    _send(s, {"t": "submit", "task_id": 7, "submitted_at": 1.0}, [payload])
    assert _closed_within(s, 5)
    s.close()
    assert v.apply_async(abs, -1).get(15) == 1          # on main the engine stays busy with task 7 forever
    assert rc.queue_status()["unassigned"] == 0

    s = _authenticated(info)
    r = _Reader(s)
    # 2. a string submitted_at; 3. targets [[0]]: the task fails naming the field, and no row is written
    for tid, header, field in (("bad-time", {"submitted_at": "1.0"}, "submitted_at"),
                               ("bad-targets", {"submitted_at": 1.0, "flags": {"targets": [[0]]}}, "flags.targets")):
        _send(s, dict({"t": "submit", "task_id": tid}, **header), [payload])
        res = r.until(lambda m, tid=tid: isinstance(m, TaskResult) and m.task_id == tid)
        assert res.status == "error" and res.ename == "ValueError" and repr(field) in res.evalue, res
    # 4. a request with bad arguments gets an error naming the argument; the same connection still serves
    _send(s, {"t": "req", "rid": 5, "op": "abort", "args": {"ids": [[0]]}})
    rep = r.until(lambda m: isinstance(m, Reply) and m.rid == 5)
    assert not rep.ok and rep.error[0] == "ValueError" and "'args.ids'" in rep.error[1]
    _send(s, {"t": "req", "rid": "6", "op": "engines", "args": {}})      # a bad rid: no reply possible
    assert _closed_within(s, 5)
    s.close()

    s = _authenticated(info)
    r = _Reader(s)
    _send(s, {"t": "req", "rid": 7, "op": "db_query", "args": {"query": {"msg_id": {"$in": ["bad-time",
                                                                                          "bad-targets"]}}}})
    rep = r.until(lambda m: isinstance(m, Reply) and m.rid == 7)
    rows = rep.value if rep.value_json is None else json.loads(rep.value_json)
    assert rep.ok and rows == []                        # no row anyone must purge
    s.close()
    assert v.map_sync(abs, range(-30, 0)) == list(range(30, 0, -1))
    assert rc.ids == [0]                                # the engine never lost its connection
    assert rc.queue_status()["unassigned"] == 0
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "field 'task_id' must be a string" in log


def _slow(x):
    import time
    time.sleep(1.0)
    return x


def test_an_engine_reporting_a_task_it_was_not_given_changes_nothing(make_cluster):
    cluster = make_cluster(1, hwm=1)
    rc = cluster.client
    einfo = read_connection_file(cluster.dir / "security" / ENGINE_FILE)
    fake = _authenticated(einfo, role="engine")
    _send(fake, {"t": "register", "uuid": "fake", "pid": 1, "hostname": "h"})
    reg = _Reader(fake).until(lambda m: isinstance(m, Registered))
    ar = rc.load_balanced_view(targets=[0]).apply_async(_slow, "real")
    deadline = time.monotonic() + 10
    while rc.queue_status(verbose=True)[0]["tasks"] != ar.msg_ids and time.monotonic() < deadline:
        time.sleep(0.02)
    forged = cloudpickle.dumps("forged")
    fake.sendall(proto.encode_frame(*to_wire(TaskDone(task_id=ar.msg_ids[0], attempt=0, status="ok",
                                                      started_at=time.time(), completed_at=time.time(),
                                                      result=forged))))
    assert ar.get(15) == "real"
    assert sorted(rc.ids) == [0, reg.engine_id]         # the forger kept its connection; nothing else changed
    fake.close()
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert f"engine {reg.engine_id} reported task {ar.msg_ids[0]!r} attempt 0, which it was not given" in log
