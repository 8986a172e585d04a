"""Failures end to end: retries after a raised exception; an engine's worker killed mid-task with os._exit (the
task succeeds elsewhere with retries, or fails with EngineError within a second or two without; the engine
stays); a hung engine (its nanny SIGSTOPped) noticed by heartbeat; abort of a running task stops it; a
controller restart keeping finished results in SQLite; and connections that do not know the key (garbage, wrong key, replayed handshake, a pickle sent before authenticating,
an oversized frame) are closed without running anything while real clients keep being served."""

from __future__ import annotations

import os
import signal
import socket
import struct
import time

import cloudpickle
import pytest
from _wait import run_on_every_engine, started_then_sleep, wait_for_file, wait_until

from real_cluster import Client, Cluster
from real_cluster import protocol as proto
from real_cluster.error import AuthenticationError, EngineError, RemoteError, TaskAborted
from real_cluster.messages import Auth, Hello, Submit, TaskFlags, Welcome, from_wire, to_wire
from real_cluster.profile import client_file, read_connection_file
from real_cluster.serialize import pack_call

pytestmark = pytest.mark.timeout(90)


def _fail_once(marker):
    import os
    if not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("first attempt fails")
    return os.getpid()


def _die_once(marker):
    import os
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(3)
    return os.getppid()         # the engine (nanny) process; the task ran in its worker


def test_retry_after_a_raised_exception(view, tmp_path):
    with view.temp_flags(retries=1):
        ar = view.apply_async(_fail_once, str(tmp_path / "m1"))
    assert isinstance(ar.get(10), int)
    recs = sorted((r for r in view.client.records() if r.task_id == ar.msg_ids[0]), key=lambda r: r.attempt)
    assert [(r.attempt, str(r.outcome)) for r in recs] == [(0, "error"), (1, "ok")]
    assert recs[0].engine_id != recs[1].engine_id            # retried on an engine it has not failed on
    with pytest.raises(RemoteError, match="first attempt fails"):
        view.apply_sync(_fail_once, str(tmp_path / "m2"))      # no retries: the error reaches the client


def test_worker_killed_mid_task_is_retried_elsewhere(make_cluster, tmp_path):
    cluster = make_cluster(2)
    rc = cluster.client
    v = rc.load_balanced_view(retries=1)
    ar = v.apply_async(_die_once, str(tmp_path / "die"))
    pid = ar.get(15)
    assert pid in [p.pid for p in cluster.engines]
    assert rc.ids == [0, 1]                                   # the worker died, not the engine: it stays
    recs = sorted((r for r in rc.records() if r.task_id == ar.msg_ids[0]), key=lambda r: r.attempt)
    assert [str(r.outcome) for r in recs] == ["worker_lost", "ok"]


def test_worker_killed_without_retries_fails_fast_with_engine_error(make_cluster, tmp_path):
    cluster = make_cluster(2)
    v = cluster.client.load_balanced_view()
    ar = v.apply_async(_die_once, str(tmp_path / "die"))
    t0 = time.monotonic()
    with pytest.raises(EngineError) as info:
        ar.get(15)
    assert time.monotonic() - t0 < 2.0 and info.value.ename == "EngineError"
    assert v.apply_sync(abs, -1) == 1                        # the cluster keeps serving


def test_hung_engine_is_noticed_by_heartbeat(make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--hb-period", "0.1", "--hb-misses", "4"])
    rc = cluster.client
    v = rc.load_balanced_view()
    eid = rc.ids[0]
    pid = v.set_flags(targets=eid).apply_sync(os.getppid)    # the engine (nanny), not its worker
    ar = v.apply_async(started_then_sleep, str(tmp_path / "started"), 30)
    wait_for_file(tmp_path / "started", 10)                  # the task is running on that engine
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        with pytest.raises(EngineError):
            ar.get(10)
        assert time.monotonic() - t0 < 3 and eid not in rc.ids
    finally:
        os.kill(pid, signal.SIGKILL)


def test_controller_restart_keeps_finished_results(make_cluster):
    first = make_cluster(1, profile="restart")
    v = first.client.load_balanced_view(label="durable")
    ar = v.apply_async(lambda: "kept")
    failed = v.apply_async(lambda: 1 / 0)
    assert ar.get(10) == "kept"
    failed.wait(10)
    first.stop()
    second = make_cluster(1, profile="restart")
    rc = second.client
    assert rc.get_result(ar.msg_ids[0]).get(10) == "kept"
    with pytest.raises(RemoteError, match="ZeroDivisionError"):
        rc.get_result(failed.msg_ids[0]).get(10)
    assert ar.msg_ids[0] in rc.hub_history()
    assert rc.db_query({"label": "durable"}, keys=["status"])[0]["status"] == "ok"
    assert rc.resubmit(ar.msg_ids).get(10) == "kept"


# ------------------------------------------------------------------------------ hostile peers
def _raw(info):
    s = socket.create_connection((info.host, info.port), timeout=5)
    dec = proto.FrameDecoder()
    hello = from_wire(*dec.feed(s.recv(4096))[0])
    assert isinstance(hello, Hello)
    return s, hello


def _closed(s) -> bool:
    try:
        s.settimeout(5)
        while True:
            data = s.recv(65536)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def test_unauthenticated_connections_are_dropped_and_run_nothing(rc, session_cluster, tmp_path):
    info = read_connection_file(client_file("session"))
    marker = tmp_path / "pwned"

    def evil():
        open(marker, "w").close()

    payload = pack_call(evil, (), {})
    submit = proto.encode_frame(*to_wire(Submit(task_id="evil", flags=TaskFlags(), submitted_at=0.0, payload=payload)))
    attempts = [
        lambda s, h: s.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10),                     # garbage
        lambda s, h: s.sendall(submit),                                              # a task before auth
        lambda s, h: s.sendall(struct.pack("!I", 1 << 30) + b"x" * 100),            # oversized length prefix
        lambda s, h: s.sendall(proto.encode_frame(*to_wire(Auth(
            role="client", nonce="n", mac=proto.peer_proof("wrong-key", "client", h.nonce, "n"))))),
        lambda s, h: s.sendall(cloudpickle.dumps(evil)),                             # a bare pickle
    ]
    for attempt in attempts:
        s, hello = _raw(info)
        attempt(s, hello)
        assert _closed(s)
        s.close()
    # a handshake recorded from a good session cannot be replayed on a new connection
    s, hello = _raw(info)
    nonce = proto.new_nonce()
    auth = proto.encode_frame(*to_wire(Auth(role="client", nonce=nonce,
                                            mac=proto.peer_proof(info.key, "client", hello.nonce, nonce))))
    s.sendall(auth)
    welcome = from_wire(*proto.FrameDecoder().feed(s.recv(4096))[0])
    assert isinstance(welcome, Welcome)
    s.close()
    s, _ = _raw(info)
    s.sendall(auth + submit)
    assert _closed(s)
    s.close()
    run_on_every_engine(rc, 10)                              # had anything been accepted, it would have run by now
    assert not marker.exists() and rc.db_query({"msg_id": "evil"}) == []
    assert rc.load_balanced_view().apply_sync(abs, -7) == 7           # everyone else is still served
    log = (session_cluster.dir / "log" / "controller.log").read_text()
    assert "AuthenticationError" in log and "exceeds the limit" in log


def test_wrong_key_client_gets_authentication_error(lab_dir, session_cluster, tmp_path):
    info = read_connection_file(client_file("session"))
    bad = tmp_path / "bad.json"
    from real_cluster.profile import ConnectionInfo, write_connection_file
    write_connection_file(bad, ConnectionInfo(host=info.host, port=info.port, key="0" * 64))
    t0 = time.monotonic()
    with pytest.raises(AuthenticationError):
        Client(bad, timeout=5)
    assert time.monotonic() - t0 < 2
    assert oct(bad.stat().st_mode & 0o777) == "0o600"
    assert Cluster  # the public launcher is importable from the package root


def test_retries_beyond_the_engine_count_end_without_hanging(view):
    def always():
        raise KeyError("always")

    with view.temp_flags(retries=5):
        ar = view.apply_async(always)
    with pytest.raises(RemoteError, match="KeyError"):
        ar.get(20)
    attempts = sorted(r.attempt for r in view.client.records() if r.task_id == ar.msg_ids[0])
    assert attempts == [0, 1, 2, 3, 4, 5]               # 1 + retries runs, more runs than engines


def test_abort_of_a_running_task_stops_it(view, tmp_path):
    ar = view.apply_async(started_then_sleep, str(tmp_path / "started"), 30, "finished")
    wait_for_file(tmp_path / "started", 10)
    ar.abort()
    with pytest.raises(TaskAborted):                      # issue 10: its engine stops the worker running it
        ar.get(5)
    assert view.apply_sync(abs, -1) == 1


def test_hwm0_dependent_task_runs_once_when_an_engine_joins(make_cluster, tmp_path):
    cluster = make_cluster(1, hwm=0, db="memory")
    rc = cluster.client
    v = rc.load_balanced_view()
    counter = tmp_path / "runs"

    def count():
        with open(counter, "a") as fh:
            fh.write("x")
        return "ran"

    a = v.apply_async(time.sleep, 0.5)
    b = v.set_flags(after=a).apply_async(count)
    cluster.start_engines(1)                              # ipyparallel could run b twice here
    rc.wait_for_engines(2, 15)
    assert b.get(15) == "ran"
    run_on_every_engine(rc, 15)                          # a duplicate dispatch of b would have run by now
    assert counter.read_text() == "x"
    assert len([r for r in rc.records() if r.task_id == b.msg_ids[0]]) == 1
