"""Wire layer without sockets: frame encoding/decoding and its limits, a decoder fuzz test, the HMAC
challenge-response proofs, and a round trip of every message type through to_wire/from_wire."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from real_cluster import protocol as proto
from real_cluster.error import AuthenticationError, ProtocolError
from real_cluster.messages import (
    MESSAGE_TYPES, AttachWorker, Auth, CancelTask, EnginesChanged, Heartbeat, Hello, Refused, Register, Registered,
    Reply, Request,
    RunTask, SignalEngine, StopEngine, Submit, TaskDone, TaskFlags, TaskResult, Welcome, from_wire, to_wire,
)
from real_cluster.messages import ActorOptions, DeleteActor, PullOffer, Took, WorkerReplaced
from sched_lab.core import Dependency


def test_frames_round_trip_whole_and_byte_by_byte():
    frames = [({"t": "x", "n": 1}, []), ({"t": "y"}, [b"abc", b""]), ({"t": "z", "s": "é"}, [b"\x00" * 5000])]
    data = b"".join(proto.encode_frame(h, b) for h, b in frames)
    assert proto.FrameDecoder().feed(data) == frames
    dec = proto.FrameDecoder()
    out = []
    for i in range(len(data)):
        out.extend(dec.feed(data[i:i + 1]))
    assert out == frames and dec.buffered == 0


def test_oversized_frame_rejected_before_it_arrives():
    dec = proto.FrameDecoder(proto.Limits(max_frame=100))
    with pytest.raises(ProtocolError, match="exceeds"):
        dec.feed(struct.pack("!I", 10_000))
    with pytest.raises(ProtocolError):
        dec.feed(b"more")   # a failed decoder stays failed


@pytest.mark.parametrize("body", [
    b"\x00\x05\x00notjs",                        # header is not JSON
    b"\x00\x02\x00[]",                           # JSON but not an object
    b"\x00\x08\x00{\"a\":1}",                    # object without "t"
    b"\x00\x02\x01\x00\x00\x00\x09{}",           # buffer lengths do not add up
    b"\x00",                                     # shorter than the fixed header
])
def test_malformed_frames_raise_protocol_error(body):
    with pytest.raises(ProtocolError):
        proto.FrameDecoder().feed(struct.pack("!I", len(body)) + body)


def test_handshake_limits_refuse_buffers_and_big_headers():
    with pytest.raises(ProtocolError):
        proto.FrameDecoder(proto.HANDSHAKE_LIMITS).feed(proto.encode_frame({"t": "auth"}, [b"pickle!"]))
    with pytest.raises(ProtocolError):
        proto.FrameDecoder(proto.HANDSHAKE_LIMITS).feed(proto.encode_frame({"t": "auth", "x": "a" * 3000}))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_decoder_only_returns_frames_or_raises_protocol_error(chunks):
    dec = proto.FrameDecoder(proto.Limits(max_frame=4096))
    for chunk in chunks:
        try:
            for header, buffers in dec.feed(chunk):
                assert isinstance(header, dict) and isinstance(header["t"], str)
                assert all(isinstance(b, bytes) for b in buffers)
        except ProtocolError:
            return


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=10), max_size=4),
       st.lists(st.binary(max_size=100), max_size=4), st.integers(min_value=1, max_value=50))
def test_any_encoded_frame_decodes_to_itself_in_any_chunking(extra, buffers, step):
    header = {**extra, "t": "m"}
    data = proto.encode_frame(header, buffers)
    dec = proto.FrameDecoder()
    out = []
    for i in range(0, len(data), step):
        out.extend(dec.feed(data[i:i + step]))
    assert out == [(header, buffers)]


def _decoded(limits: proto.Limits, *pieces: bytes) -> list | str:
    dec = proto.FrameDecoder(limits)
    out: list = []
    try:
        for piece in pieces:
            out.extend(dec.feed(piece))
    except ProtocolError:
        return "ProtocolError"
    return out


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=80), st.binary(max_size=300),
       st.sampled_from([proto.DEFAULT_LIMITS, proto.HANDSHAKE_LIMITS, proto.Limits(max_frame=64, max_header=16)]),
       st.lists(st.tuples(st.integers(0, 15), st.integers(0, 255)), max_size=2), st.integers(-2, 2))
def test_a_read_of_one_whole_frame_decodes_as_the_general_path_decodes_it(head, buffer, limits, flips, cut):
    # The decoder's shortcut for a read that is one binary-header frame of one buffer (the usual task and answer)
    # must return what the general path returns for the same bytes, and refuse what it refuses: the general path
    # sees them whenever the read does not start a frame (here: its first byte fed alone).
    data = bytearray(proto.encode_frame(b"\x00" + head, [buffer]))
    for pos, byte in flips:             # damage: any field of the fixed part (lengths, count, the NUL)
        data[pos % len(data)] = byte
    data = bytes(data[:len(data) + cut] if cut < 0 else data + b"\x01" * cut)      # short, or more than one frame
    whole = _decoded(limits, data)
    assert whole == _decoded(limits, data[:1], data[1:])
    if not flips and not cut and limits is proto.DEFAULT_LIMITS:
        assert whole == [(b"\x00" + head, [buffer])]


def test_proofs_need_the_key_and_differ_per_session():
    key = proto.new_key()
    ns, np_ = proto.new_nonce(), proto.new_nonce()
    good = proto.peer_proof(key, "client", ns, np_)
    proto.check_proof(good, proto.peer_proof(key, "client", ns, np_))
    with pytest.raises(AuthenticationError):
        proto.check_proof(good, proto.peer_proof("wrong" + key, "client", ns, np_))
    with pytest.raises(AuthenticationError):   # a replayed answer fails against a fresh server nonce
        proto.check_proof(proto.peer_proof(key, "client", proto.new_nonce(), np_), good)
    with pytest.raises(AuthenticationError):   # the server's proof is not the peer's proof
        proto.check_proof(good, proto.server_proof(key, "client", ns, np_))
    with pytest.raises(AuthenticationError):   # the role is bound into the proof
        proto.check_proof(good, proto.peer_proof(key, "engine", ns, np_))


SAMPLES = [
    Hello(nonce="n1", version=1), Auth(role="client", nonce="n2", mac="m"), Welcome(mac="m2"),
    Refused(reason="overloaded", retry=True),
    Register(uuid="u", pid=12, hostname="h"), Register(uuid="u", pid=12, hostname="h", speed=4.0, labels=("gpu", "x")),
    Registered(engine_id=3, hb_period_s=0.5), Heartbeat(), AttachWorker(uuid="u"),
    PullOffer(path="/tmp/p/pull.sock", token="t0k", index=3), Took(task_id="t", attempt=1, seq=42),
    RunTask(task_id="t", attempt=2, payload=b"\x80pickle"), CancelTask(task_id="t", attempt=0),
    TaskDone(task_id="t", attempt=1, status="ok", started_at=1.0, completed_at=2.0, result=b"r"),
    TaskDone(task_id="t", attempt=0, status="error", started_at=None, completed_at=2.0, ename="E", evalue="v",
             traceback="tb"),
    StopEngine(), SignalEngine(signum=2),
    RunTask(task_id="t", attempt=0, payload=b"p", time_limit_s=2.5),
    TaskDone(task_id="t", attempt=0, status="died", started_at=None, completed_at=2.0, ename="EngineError",
             evalue="the worker process was killed by SIGKILL", stdout="out", stderr="err"),
    TaskDone(task_id="t", attempt=0, status="ok", started_at=1.0, completed_at=2.0, result=b"r", stdout="o" * 70000),
    Submit(task_id="t", flags=TaskFlags(targets=(1, 2), after=Dependency(["a", "b"], all=False),
                                        follow=Dependency("c", success=False, failure=True), retries=2,
                                        timeout_s=1.5, label="L", time_limit_s=9.0), submitted_at=3.0, payload=b"p"),
    Submit(task_id="t2", flags=TaskFlags(), submitted_at=3.0, payload=b""),
    TaskResult(task_id="t", status="error", engine_id=None, submitted_at=1.0, started_at=None, completed_at=None,
               received_at=4.0, ename="TaskTimeout", evalue="late", engine_info={"engine_id": 1}, label="x"),
    TaskResult(task_id="t", status="ok", engine_id=0, submitted_at=1.0, started_at=2.0, completed_at=3.0,
               received_at=4.0, result=b"value"),
    TaskResult(task_id="t", status="ok", engine_id=0, submitted_at=1.0, started_at=2.0, completed_at=3.0,
               received_at=4.0, result=b"value", stdout="printed\n", stderr="warned\n"),
    Request(rid=7, op="db_query", args={"query": {"label": "x"}}), Reply(rid=7, ok=True, value=[1, 2]),
    Reply(rid=8, ok=False, error=["KeyError", "no"]), EnginesChanged(ids=(0, 1, 5)),
    RunTask(task_id="a", attempt=1, payload=b"p", actor_id="x1", actor_role="call", incarnation=2, max_concurrency=4),
    Submit(task_id="c", flags=TaskFlags(actor=ActorOptions("x1", "Counter", name="n", max_restarts=2,
                                                           max_task_retries=1, max_concurrency=3)),
           submitted_at=3.0, payload=b"p"),
    Submit(task_id="m", flags=TaskFlags(actor_id="x1"), submitted_at=3.0, payload=b"p"),
    WorkerReplaced(reason="the worker process killed by SIGKILL"), DeleteActor(actor_id="x1"),
    DeleteActor(actor_id="x1", incarnation=3),
]


def test_every_message_type_has_a_round_trip_sample():
    assert {type(m) for m in SAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_message_round_trip_through_a_frame(msg):
    data = proto.encode_frame(*to_wire(msg))
    [(header, buffers)] = proto.FrameDecoder().feed(data)
    assert from_wire(header, buffers) == msg


@pytest.mark.parametrize("msg", [m for m in SAMPLES if type(m) in (RunTask, TaskDone, Submit, TaskResult)],
                         ids=lambda m: type(m).__name__)
def test_hot_messages_built_from_their_slots_equal_the_constructed_ones(msg):
    """The decoder builds the four per-task messages without their __init__ (messages._positional_maker): the very
    same objects — equal field by field, still frozen, same repr; and the binary frames decode to them."""
    from dataclasses import FrozenInstanceError, astuple, fields

    from real_cluster.messages import _positional_maker
    built = _positional_maker(type(msg))(*(getattr(msg, f.name) for f in fields(msg)))
    assert type(built) is type(msg) and built == msg and astuple(built) == astuple(msg)
    assert repr(built) == repr(msg)
    with pytest.raises(FrozenInstanceError):
        built.task_id = "other"                     # type: ignore[misc]
    with pytest.raises(TypeError, match="__post_init__"):
        _positional_maker(Register)


@pytest.mark.parametrize("header,buffers", [
    ({"t": "nope"}, []), ({"t": "run", "task_id": "x", "attempt": 0}, []),           # unknown / missing buffer
    ({"t": "run", "task_id": "x", "attempt": 0, "payload": 1, "nb": 1}, [b"p"]),     # unexpected field
    ({"t": "registered", "engine_id": 1}, []),                                         # missing field
    ({"t": "submit", "task_id": "x", "flags": {"retries": -1}, "submitted_at": 1, "nb": 1}, [b""]),  # invalid flags
    ({"t": "hb", "nb": 1}, [b"x"]),                                                    # buffer where none belongs
    ({"t": "register", "uuid": "u", "pid": 1, "hostname": "h", "speed": 0}, []),        # speed must be > 0
    ({"t": "register", "uuid": "u", "pid": 1, "hostname": "h", "speed": "fast"}, []),
    ({"t": "register", "uuid": "u", "pid": 1, "hostname": "h", "labels": "gpu"}, []),   # labels: a list of strings
    ({"t": "register", "uuid": "u", "pid": 1, "hostname": "h", "labels": [1]}, []),
])
def test_malformed_messages_raise_protocol_error(header, buffers):
    with pytest.raises(ProtocolError):
        from_wire(header, buffers)
