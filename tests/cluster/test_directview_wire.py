"""The `direct` task flag (DirectView tasks) on the wire: it round-trips in a Submit and in the task database's
flags dict, it is validated where it is built (TaskFlags) and where it arrives (wire_fields: InvalidField
naming `flags.direct` and carrying the task id, so the controller fails that task instead of closing)."""

from __future__ import annotations

import pytest

from real_cluster import protocol as proto
from real_cluster.error import InvalidField
from real_cluster.messages import Submit, TaskFlags, from_wire, to_wire
from sched_lab.core import Dependency


def _round_trip(msg):
    [(header, buffers)] = proto.FrameDecoder().feed(proto.encode_frame(*to_wire(msg)))
    return from_wire(header, buffers)


def test_direct_flag_round_trips():
    flags = TaskFlags(targets=(3,), direct=True, label="L")
    msg = Submit(task_id="d1", flags=flags, submitted_at=1.0, payload=b"p")
    assert _round_trip(msg) == msg and _round_trip(msg).flags.direct is True
    assert flags.to_dict()["direct"] is True and TaskFlags.from_dict(flags.to_dict()) == flags
    assert "direct" not in TaskFlags(targets=(3,)).to_dict()          # ordinary tasks' rows are unchanged
    assert TaskFlags.from_dict(TaskFlags(targets=(3,)).to_dict()).direct is False


@pytest.mark.parametrize("kwargs,problem", [
    ({}, "exactly one engine"), ({"targets": (1, 2)}, "exactly one engine"),
    ({"targets": (1,), "after": Dependency(["a"])}, "after/follow"),
    ({"targets": (1,), "follow": Dependency(["a"])}, "after/follow"),
])
def test_direct_flag_is_checked_where_it_is_built(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        TaskFlags(direct=True, **kwargs)
    with pytest.raises(ValueError, match="true or false"):
        TaskFlags(targets=(1,), direct="yes")


@pytest.mark.parametrize("flags,problem", [
    ({"direct": True}, "exactly one engine"), ({"direct": True, "targets": [0, 1]}, "exactly one engine"),
    ({"direct": "yes", "targets": [0]}, "true or false"),
    ({"direct": True, "targets": [0], "after": {"dependencies": ["x"]}}, "after/follow"),
])
def test_a_bad_direct_flag_on_the_wire_is_named_with_the_task_id(flags, problem):
    header = {"t": "submit", "task_id": "d2", "flags": flags, "submitted_at": 1.0, "nb": 1}
    with pytest.raises(InvalidField) as info:
        from_wire(header, [b"p"])
    assert info.value.field == "flags.direct" and info.value.task_id == "d2" and problem in str(info.value)
