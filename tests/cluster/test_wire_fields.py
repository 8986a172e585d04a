"""Every header field of every message type is checked on arrival (real_cluster/wire_fields.py): type, range,
size and UTF-8, nested flag and request-argument fields too. Errors are InvalidField naming the field and,
where the message's own id was valid, that id (so the controller can answer instead of closing). A
hypothesis fuzz replaces each field of each message type by arbitrary JSON: `from_wire` either refuses it
with a ProtocolError or returns a message that encodes and decodes again (so the controller can always
forward what it accepted)."""

from __future__ import annotations

import math
import struct
from dataclasses import fields

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from real_cluster import protocol as proto
from real_cluster.error import InvalidField, ProtocolError
from real_cluster.messages import (
    MESSAGE_TYPES, Reply, Submit, TaskDone, TaskFlags, TaskResult, from_wire, to_wire,
)
from real_cluster.wire_fields import FIELD_RULES, REQUEST_ARGS, check_request_args
from sched_lab.core import Dependency

from test_cluster_protocol import SAMPLES  # the round-trip sample of every message type


def _json_form(msg) -> tuple[dict, list[bytes]]:
    """A message as a JSON header whatever its shape (the hot ones otherwise travel binary)."""
    header: dict = {"t": msg.TYPE}
    bufs = getattr(type(msg), "BUFFERS", ())
    buffers = []
    for name in (f.name for f in fields(msg)):
        value = getattr(msg, name)
        if name in bufs:
            if value is not None:
                buffers.append(value)
            continue
        if isinstance(value, TaskFlags):
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        header[name] = value
    if buffers:
        header["nb"] = len(buffers)
    return header, buffers


def test_every_field_of_every_message_type_has_a_rule():
    for cls in MESSAGE_TYPES:
        bufs = getattr(cls, "BUFFERS", ())
        assert set(FIELD_RULES[cls.TYPE]) == {f.name for f in fields(cls) if f.name not in bufs}, cls


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_samples_pass_their_rules_in_json_form(msg):
    assert from_wire(*_json_form(msg)) == msg


@pytest.mark.parametrize("field,value,named", [
    ("task_id", 7, "task_id"), ("task_id", "", "task_id"), ("task_id", "x" * 257, "task_id"),
    ("task_id", "\ud800", "task_id"), ("submitted_at", "1.0", "submitted_at"), ("submitted_at", True, "submitted_at"),
    ("submitted_at", math.nan, "submitted_at"), ("submitted_at", -5.0, "submitted_at"),
    ("flags", {"targets": [[0]]}, "flags.targets"), ("flags", {"targets": [True]}, "flags.targets"),
    ("flags", {"targets": "0"}, "flags.targets"), ("flags", {"retries": 1.5}, "flags.retries"),
    ("flags", {"timeout": "soon"}, "flags.timeout"), ("flags", {"label": ["x"]}, "flags.label"),
    ("flags", {"label": "x" * 2000}, "flags.label"), ("flags", {"bogus": 1}, "flags.bogus"),
    ("flags", {"after": {"dependencies": [1]}}, "flags.after.dependencies"),
    ("flags", {"after": {"dependencies": ["a"], "all": "yes"}}, "flags.after.all"),
    ("flags", {"follow": {"dependencies": ["a"], "success": False}}, "flags.follow"),
    ("flags", {"after": ["a"]}, "flags.after"), ("flags", [], "flags"),
])
def test_a_bad_submit_field_is_named_and_carries_the_task_id(field, value, named):
    header, buffers = _json_form(Submit(task_id="t1", flags=TaskFlags(), submitted_at=1.0, payload=b"p"))
    header[field] = value
    with pytest.raises(InvalidField) as info:
        from_wire(header, buffers)
    assert info.value.field == named and info.value.msg_type == "submit"
    assert info.value.task_id == (None if field == "task_id" else "t1")
    assert repr(named) in str(info.value)


_DONE = {"t": "done", "task_id": "t", "attempt": 0, "status": "ok", "started_at": None, "completed_at": 1.0}


@pytest.mark.parametrize("header,named", [
    (dict(_DONE, attempt=-1), "attempt"),
    (dict(_DONE, attempt=2**32), "attempt"),
    (dict(_DONE, status="fine"), "status"),
    (dict(_DONE, completed_at=math.inf), "completed_at"),
    (dict(_DONE, status="error", ename=3), "ename"),
    ({"t": "register", "uuid": "u", "pid": "12", "hostname": "h"}, "pid"),
    ({"t": "register", "uuid": "", "pid": 12, "hostname": "h"}, "uuid"),
    ({"t": "req", "rid": "1", "op": "engines", "args": {}}, "rid"),
    ({"t": "req", "rid": 1, "op": 5, "args": {}}, "op"),
    ({"t": "req", "rid": 1, "op": "engines", "args": []}, "args"),
    ({"t": "auth", "role": "admin", "nonce": "n", "mac": "m"}, "role"),
    ({"t": "engines", "ids": [0, "1"]}, "ids"),
    ({"t": "rep", "rid": 1, "ok": 1}, "ok"),
    ({"t": "registered", "engine_id": 0, "hb_period_s": 0}, "hb_period_s"),
])
def test_bad_fields_of_other_types_are_named(header, named):
    with pytest.raises(InvalidField) as info:
        from_wire(header, [])
    assert info.value.field == named


def test_binary_headers_check_the_id_and_the_times():
    good = proto.encode_frame(*to_wire(TaskDone(task_id="t", attempt=0, status="ok", started_at=1.0,
                                                completed_at=2.0, result=b"r")))
    [(head, bufs)] = proto.FrameDecoder().feed(good)
    assert type(head) is bytes and from_wire(head, bufs).task_id == "t"
    nan = head[:6] + struct.pack("!d", math.nan) + head[14:]
    with pytest.raises(InvalidField, match="started_at"):
        from_wire(nan, bufs)
    with pytest.raises(InvalidField, match="task_id"):
        from_wire(head[:-1], bufs)                              # an empty task id
    with pytest.raises(InvalidField, match="task_id"):
        from_wire(head + b"x" * 300, bufs)                      # an id beyond 256 characters


@pytest.mark.parametrize("op,args,named", [
    ("abort", {"ids": [[0]]}, "args.ids"), ("abort", {"ids": "abc"}, "args.ids"), ("abort", {}, "args.ids"),
    ("get_result", {"ids": [1]}, "args.ids"), ("purge", {"ids": [None]}, "args.ids"),
    ("shutdown", {"targets": ["0"]}, "args.targets"), ("shutdown", {"hub": "yes"}, "args.hub"),
    ("queue_status", {"verbose": 1}, "args.verbose"), ("db_query", {"query": []}, "args.query"),
    ("engines", {"extra": 1}, "args.extra"), ("abort", [], "args"),
])
def test_request_arguments_are_checked_per_op(op, args, named):
    with pytest.raises(InvalidField) as info:
        check_request_args(op, args, rid=4)
    assert info.value.field == named and info.value.rid == 4


def test_every_request_op_the_controller_answers_has_argument_rules():
    from real_cluster.hub_requests import RequestHandler
    ops = {name[3:] for name in dir(RequestHandler) if name.startswith("op_")}
    assert ops <= set(REQUEST_ARGS), ops - set(REQUEST_ARGS)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=300) | st.sampled_from(["\ud800", "ok", "error", "client", "engine", "t", ""]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["targets", "after", "follow", "retries", "timeout", "label", "dependencies", "all",
                         "success", "failure", "x"]), inner, max_size=4),
    max_leaves=12)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data(), _JSON)
def test_any_value_in_any_header_field_is_refused_or_forwardable(msg, data, value):
    header, buffers = _json_form(msg)
    fields = sorted(FIELD_RULES[msg.TYPE])
    if not fields:
        return
    field = data.draw(st.sampled_from(fields))
    if field == "flags" and data.draw(st.booleans()):      # sometimes one flag, not the whole object
        header["flags"] = dict(header["flags"], **{data.draw(st.sampled_from(list(header["flags"]))): value})
    else:
        header[field] = value
    try:
        got = from_wire(header, buffers)
    except InvalidField as exc:
        assert exc.field.split(".")[0] == field
        return
    except ProtocolError:
        return
    frame = proto.encode_frame(*to_wire(got))
    [(h2, b2)] = proto.FrameDecoder().feed(frame)                # accepted: it can be forwarded ...
    again = from_wire(h2, b2)
    assert type(again) is type(got)                              # ... and reads back as itself: compared as frames,
    assert proto.encode_frame(*to_wire(again)) == frame          # since an opaque JSON value may hold NaN != NaN


def test_a_reply_holding_nan_is_forwarded_as_itself():
    """A Reply's value is opaque JSON: NaN passes and comes back as NaN (the fuzz test above found it)."""
    frame = proto.encode_frame(*to_wire(Reply(rid=3, ok=True, value=[float("nan"), {"x": float("inf")}])))
    got = from_wire(*proto.FrameDecoder().feed(frame)[0])
    assert got.rid == 3 and math.isnan(got.value[0]) and got.value[1] == {"x": float("inf")}


def test_a_result_within_the_rules_always_fits_one_frame():
    text = "x" * (proto.DEFAULT_LIMITS.max_header - 800)          # what an engine's TaskDone header can carry
    res = TaskResult(task_id="t" * 256, status="error", engine_id=1, submitted_at=1.0, started_at=1.0,
                     completed_at=1.0, received_at=1.0, ename="E" * 64, evalue=text, traceback=None,
                     engine_info={"engine_id": 1, "engine_uuid": "u" * 32, "method": "apply"}, label="L" * 1024)
    done = TaskDone(task_id="t" * 256, attempt=0, status="error", started_at=1.0, completed_at=1.0, ename="E" * 64,
                    evalue=text)
    assert len(proto.encode_frame(*to_wire(done))) < proto.DEFAULT_LIMITS.max_header   # the controller accepts it
    frame = proto.encode_frame(*to_wire(res))                   # ... and the result it makes fits a frame
    assert from_wire(*proto.FrameDecoder(proto.RESULT_LIMITS).feed(frame)[0]) == res
    dep = Dependency(["a"], success=True)
    assert from_wire(*_json_form(Submit(task_id="s", flags=TaskFlags(after=dep), submitted_at=1.0,
                                        payload=b""))).flags.after == dep
