"""Each scheme places live tasks exactly as the core decides: the controller records every core event and
the actions it carried out (--journal); replaying the events into a fresh TaskScheduler with the same
scheme, hwm and seed must give identical actions, and every task's result must come from the engine the
core dispatched it to. Also the placement order of fresh engines (newest first) under leastload and lru."""

from __future__ import annotations

import pickle
import random
import time

import pytest

from sched_lab.core import SCHEMES, Deliver, Dispatch, TaskScheduler

pytestmark = pytest.mark.timeout(90)


def _journal(path):
    out = []
    with open(path, "rb") as fh:
        while True:
            try:
                out.append(pickle.load(fh))
            except EOFError:
                return out


@pytest.mark.parametrize("scheme,hwm", [(s, 0 if s in ("plainrandom", "twobin", "weighted", "powerofd") else 1)
                                        for s in sorted(SCHEMES)])
def test_live_placement_is_the_cores_decision(make_cluster, tmp_path, scheme, hwm):
    journal = tmp_path / "journal.pkl"
    cluster = make_cluster(3, scheme=scheme, hwm=hwm, db="memory",
                           controller_args=["--seed", "11", "--journal", str(journal)])
    v = cluster.client.load_balanced_view()
    ars = [v.apply_async(time.sleep, 0.01 * (i % 4)) for i in range(24)]
    for ar in ars:
        ar.get(20)
    engine_of = {ar.msg_ids[0]: ar.engine_id for ar in ars}
    cluster.stop()
    entries = _journal(journal)
    assert len(entries) >= 24 * 2 + 3
    replay = TaskScheduler(scheme, hwm, rng=random.Random(11))
    for event, actions in entries:
        assert replay.handle(event) == actions, f"core and live controller disagree on {event!r}"
    delivered = {a.task_id: a.engine_id for _, acts in entries for a in acts if isinstance(a, Deliver)}
    assert delivered == engine_of
    used = {a.engine_id for _, acts in entries for a in acts if isinstance(a, Dispatch)}
    assert len(used) >= 2


@pytest.mark.parametrize("scheme", ["leastload", "lru"])
def test_fresh_engines_are_used_newest_first(make_cluster, scheme):
    cluster = make_cluster(3, scheme=scheme, db="memory")
    v = cluster.client.load_balanced_view()
    ars = [v.apply_async(time.sleep, 0.3) for _ in range(3)]
    assert [ar.get(10) or ar.engine_id for ar in ars] == [2, 1, 0]
