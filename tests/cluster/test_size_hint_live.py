"""`size_hint` from the live client (issue 13): the view flag reaches `choice.task.size_hint` in a user's scheme
running on the controller (a scheme module that records what its law sees), travels in the task's flags
(database, resubmit) and bad values are refused before anything is sent."""

from __future__ import annotations

import json

import pytest

from real_cluster.messages import TaskFlags

pytestmark = pytest.mark.timeout(120)

_RECORDER = '''
import json
from sched_lab import register_scheme

def law(choice):
    with open({log!r}, "a") as fh:
        fh.write(json.dumps([choice.task.task_id, choice.task.size_hint]) + "\\n")
    return choice.candidates[0]

register_scheme("hintrecorder", law, summary="records the size hints its law sees")
'''


def test_size_hint_reaches_a_user_scheme_on_the_controller(make_cluster, tmp_path):
    log = tmp_path / "seen.jsonl"
    module = tmp_path / "hint_recorder.py"
    module.write_text(_RECORDER.format(log=str(log)))
    cluster = make_cluster(2, scheme="hintrecorder", scheme_modules=[str(module)])
    rc = cluster.client
    v = rc.load_balanced_view()
    plain = v.apply_async(abs, -1)
    with v.temp_flags(size_hint=2.5):
        hinted = v.apply_async(abs, -2)
        mapped = v.map_async(abs, [-3, -4], chunksize=1)
    v.set_flags(size_hint=0)
    zero = v.apply_async(abs, -5)
    assert [plain.get(30), hinted.get(30), mapped.get(30), zero.get(30)] == [1, 2, [3, 4], 5]
    seen = dict(json.loads(line) for line in log.read_text().splitlines())
    assert seen[plain.msg_ids[0]] is None
    assert seen[hinted.msg_ids[0]] == 2.5
    assert [seen[i] for i in mapped.msg_ids] == [2.5, 2.5]
    assert seen[zero.msg_ids[0]] == 0.0
    row = rc.db_query({"msg_id": hinted.msg_ids[0]}, ["msg_id"])
    assert row, "the hinted task is in the database"
    again = rc.resubmit(hinted.msg_ids)                # the same flags: the scheme sees the hint again
    assert again.get(30) == 2
    seen = dict(json.loads(line) for line in log.read_text().splitlines())
    assert seen[again.msg_ids[0]] == 2.5


def test_bad_size_hints_are_refused_before_sending(make_cluster):
    cluster = make_cluster(1)
    v = cluster.client.load_balanced_view()
    for bad in (-1, float("nan"), float("inf"), "big", True):
        with pytest.raises((ValueError, TypeError)):
            v.set_flags(size_hint=bad)
    assert v.size_hint is None
    assert TaskFlags.from_dict(TaskFlags(size_hint=3).to_dict()) == TaskFlags(size_hint=3.0)
    assert "size_hint" not in TaskFlags().to_dict()
