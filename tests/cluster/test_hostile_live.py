"""Hostile input beyond test_failures_retries_and_auth.py: a pickle whose *loading* leaves a mark, sent every way a peer
without the key can (it must never be unpickled); truncated frames (held open: closed by the handshake
timeout; or cut off); an authenticated peer sending oversized or out-of-role frames (only its connection
closes); a flood of connection attempts (the controller caps half-open handshakes, its file descriptors stay
bounded, a real client still gets in). Every rejection leaves a log line, and a real client's work completes
meanwhile. A hypothesis test mutates valid frames of every message type: the decoder and `from_wire` only
ever return a message or raise ProtocolError; large request/reply values round-trip as a JSON buffer."""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path

import pytest
from _wait import run_on_every_engine, wait_until
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from real_cluster import Client
from real_cluster import protocol as proto
from real_cluster.aio_link import HANDSHAKE_TIMEOUT_S
from real_cluster.controller import MAX_UNAUTHENTICATED_PER_SOURCE
from real_cluster.error import ProtocolError
from real_cluster.messages import (
    Auth, Hello, Register, Reply, Request, RunTask, Submit, TaskDone, TaskFlags, TaskResult, Welcome, from_wire,
    result_ok_frame, to_wire,
)
from real_cluster.profile import CLIENT_FILE, ENGINE_FILE, client_file, read_connection_file

pytestmark = pytest.mark.timeout(120)


class _Trap:
    """Unpickling this creates `path`: proof that someone unpickled it."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _trap_bytes(path) -> bytes:
    import pickle
    return pickle.dumps(_Trap(str(path)))


def _raw(info):
    s = socket.create_connection((info.host, info.port), timeout=5)
    hello = from_wire(*proto.FrameDecoder().feed(s.recv(4096))[0])
    assert isinstance(hello, Hello)
    return s, hello


def _authenticated(info, role: str = "client") -> socket.socket:
    s, hello = _raw(info)
    nonce = proto.new_nonce()
    s.sendall(proto.encode_frame(*to_wire(Auth(role=role, nonce=nonce,
                                               mac=proto.peer_proof(info.key, role, hello.nonce, nonce)))))
    dec = proto.FrameDecoder()
    frames = []
    while not frames:
        frames = dec.feed(s.recv(4096))
    assert isinstance(from_wire(*frames[0]), Welcome)
    return s


def _send_apart(s: socket.socket, first: bytes, second: bytes, log_path: Path) -> None:
    """Send two frames apart: the second only once the controller has logged its verdict on the first."""
    before = log_path.read_text().count("AuthenticationError")
    s.sendall(first)
    wait_until(lambda: log_path.read_text().count("AuthenticationError") > before, 10,
               "the controller to refuse the first frame")
    try:
        s.sendall(second)
    except OSError:       # already closed by the controller
        pass


def _closed_within(s: socket.socket, timeout: float) -> bool:
    s.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False
    return False


def _log(cluster) -> str:
    return (cluster.dir / "log" / "controller.log").read_text()


def test_nothing_a_keyless_peer_sends_is_ever_unpickled(rc, session_cluster, tmp_path):
    info = read_connection_file(client_file("session"))
    marker = tmp_path / "unpickled"
    trap = _trap_bytes(marker)
    submit = proto.encode_frame(*to_wire(Submit(task_id="trap", flags=TaskFlags(), submitted_at=0.0, payload=trap)))
    wrong = proto.new_key()
    log_path = session_cluster.dir / "log" / "controller.log"
    sends = {
        "bare pickle": lambda s, h: s.sendall(trap),
        "submit before auth": lambda s, h: s.sendall(submit),
        "auth carrying a buffer": lambda s, h: s.sendall(proto.encode_frame(
            {"t": "auth", "role": "client", "nonce": "n", "mac": "m", "nb": 1}, [trap])),
        "wrong key, then submit": lambda s, h: _send_apart(s, proto.encode_frame(*to_wire(Auth(
            role="client", nonce="n", mac=proto.peer_proof(wrong, "client", h.nonce, "n")))), submit, log_path),
        "engine role, wrong key, then a result": lambda s, h: _send_apart(s, proto.encode_frame(*to_wire(Auth(
            role="engine", nonce="n", mac=proto.peer_proof(wrong, "engine", h.nonce, "n")))), proto.encode_frame(
            *to_wire(TaskDone(task_id="x", attempt=0, status="ok", started_at=0.0, completed_at=0.0, result=trap))),
            log_path),
    }
    for name, send in sends.items():
        s, hello = _raw(info)
        send(s, hello)
        assert _closed_within(s, 5), name
        s.close()
    assert rc.load_balanced_view().apply_sync(abs, -5) == 5
    run_on_every_engine(rc, 10)                 # a payload accepted by mistake would have run by now
    assert not marker.exists()
    log = _log(session_cluster)
    assert "unauthenticated connection from" in log and "AuthenticationError" in log


def test_truncated_frames_are_dropped_while_real_work_runs(rc, session_cluster):
    info = read_connection_file(client_file("session"))
    frame = proto.encode_frame(*to_wire(Auth(role="client", nonce="n", mac="m" * 64)))
    held, _ = _raw(info)
    held.sendall(frame[: len(frame) // 2])                    # half a frame, then silence
    cut, _ = _raw(info)
    cut.sendall(frame[:3])                                    # not even a whole length prefix, then gone
    cut.close()
    authed = _authenticated(info)
    authed.sendall(proto.encode_frame({"t": "req", "rid": 1, "op": "engines", "args": {}})[:-4])
    authed.close()                                            # an authenticated peer cut mid-frame
    t0 = time.monotonic()
    v = rc.load_balanced_view()
    results = v.map_async(abs, range(-200, 0), chunksize=4)   # the real client is served meanwhile
    assert results.get(30) == list(range(200, 0, -1))
    assert _closed_within(held, HANDSHAKE_TIMEOUT_S + 3)
    assert time.monotonic() - t0 >= HANDSHAKE_TIMEOUT_S - 1   # closed by the handshake timeout, not before
    held.close()
    log = _log(session_cluster)
    assert "no handshake within" in log and "ended: peer closed" in log


def test_authenticated_peers_breaking_the_protocol_lose_only_their_connection(make_cluster):
    cluster = make_cluster(1, db="memory")
    info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    rc = cluster.client
    s = _authenticated(info)
    s.sendall(struct.pack("!I", proto.DEFAULT_LIMITS.max_frame + 1))   # oversized length prefix
    assert _closed_within(s, 5)
    s = _authenticated(info)
    s.sendall(proto.encode_frame(*to_wire(RunTask(task_id="x", attempt=0, payload=b"p"))))   # not a client's
    assert _closed_within(s, 5)
    s = _authenticated(read_connection_file(cluster.dir / "security" / ENGINE_FILE), role="engine")
    s.sendall(proto.encode_frame(*to_wire(TaskDone(task_id="x", attempt=0, status="ok", started_at=0.0,
                                                   completed_at=0.0, result=b"r"))))         # before Register
    assert _closed_within(s, 5)
    s = _authenticated(info)
    s.sendall(b"\x00\x00\x00\x10\x00\x0d\x00" + b"\xff" * 13)   # a frame whose header is not JSON
    assert _closed_within(s, 5)
    assert rc.load_balanced_view().apply_sync(abs, -9) == 9
    assert rc.ids == [0]                                      # the fake engine never registered
    log = _log(cluster)
    for text in ("exceeds the limit", "unexpected RunTask from a client", "before registering", "not JSON"):
        assert text in log, text


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_connection_flood_is_capped_and_a_real_client_gets_in(make_cluster):
    cluster = make_cluster(1, db="memory")
    info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    pid = cluster.controller.pid
    base = _fd_count(pid)
    flood = []
    try:
        for i in range(400):                                  # from another address than the real client's
            s = socket.create_connection((info.host, info.port), timeout=5, source_address=("127.0.0.2", 0))
            if i % 3 == 0:
                s.sendall(b"\x00\x00")                        # a few bytes of something, never finished
            flood.append(s)
        t0 = time.monotonic()
        with Client(cluster.dir / "security" / CLIENT_FILE, timeout=10) as other:
            assert other.load_balanced_view().map_sync(abs, range(-20, 0)) == list(range(20, 0, -1))
            # the listen queue is FIFO: this client got in after every flood connection was accepted
            held = _fd_count(pid) - base
        assert time.monotonic() - t0 < 5
        assert held <= MAX_UNAUTHENTICATED_PER_SOURCE + 8, held   # one source cannot pin hundreds of descriptors
        assert cluster.client.load_balanced_view().apply_sync(abs, -1) == 1
    finally:
        for s in flood:
            s.close()
    wait_until(lambda: _fd_count(pid) <= base + 2, 10, "every flood descriptor to be released")
    assert "handshakes refused as overloaded" in _log(cluster)


# ------------------------------------------------------------------------------------ fuzzing
_SAMPLES = [
    Hello(nonce="n1", version=1), Auth(role="client", nonce="n2", mac="m"), Welcome(mac="w"),
    Register(uuid="u", pid=1, hostname="h"), RunTask(task_id="t", attempt=0, payload=b"\x80\x05pickle."),
    TaskDone(task_id="t", attempt=1, status="error", started_at=1.0, completed_at=2.0, ename="E", evalue="v"),
    Submit(task_id="t", flags=TaskFlags(targets=(1,), retries=2, label="L"), submitted_at=1.0, payload=b"p"),
    TaskResult(task_id="t", status="ok", engine_id=0, submitted_at=1.0, started_at=2.0, completed_at=3.0,
               received_at=4.0, result=b"r"),
    Request(rid=3, op="get_result", args={"ids": ["a", "b"]}), Reply(rid=3, ok=True, value_json=b'{"a": 1}'),
]
_WIRE = b"".join(proto.encode_frame(*to_wire(m)) for m in _SAMPLES) + result_ok_frame("t", 0, 1.0, 2.0, 3.0, 4.0,
                                                                                     b"r", idle=True)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(0, len(_WIRE) - 1), st.integers(0, 255)), max_size=6),
       st.integers(0, len(_WIRE)), st.integers(1, 97), st.booleans())
def test_mutated_frames_only_give_messages_or_protocol_errors(flips, cut, step, handshake):
    data = bytearray(_WIRE)
    for pos, value in flips:
        data[pos] = value
    data = bytes(data[:cut])
    dec = proto.FrameDecoder(proto.HANDSHAKE_LIMITS if handshake else proto.DEFAULT_LIMITS)
    try:
        for i in range(0, len(data), step):
            for header, buffers in dec.feed(data[i:i + step]):
                try:
                    from_wire(header, buffers)
                except ProtocolError:
                    pass
    except ProtocolError:
        pass


def test_large_request_and_reply_values_travel_as_a_json_buffer():
    ids = [f"{i:032x}" for i in range(5000)]                  # about 170 KiB of JSON: beyond a header
    with pytest.raises(ValueError):
        proto.encode_frame(*to_wire(Request(rid=1, op="abort", args={"ids": ids})))
    import json
    for msg in (Request(rid=1, op="abort", args={}, args_json=json.dumps({"ids": ids}).encode()),
                Reply(rid=1, ok=True, value_json=json.dumps(ids).encode())):
        [(header, buffers)] = proto.FrameDecoder().feed(proto.encode_frame(*to_wire(msg)))
        assert from_wire(header, buffers) == msg
