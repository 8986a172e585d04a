"""Recovery after a controller SIGKILL, decided by the core (TaskRestored, core/restore.py), on a live cluster:
a task queued behind a dependency that fails because of the kill fails ImpossibleDependency (the same rule
as without a crash) and never runs; attempts used before the kill are not granted again and keep their
numbers. Executions are counted with marker files, attempts read from the database file."""

from __future__ import annotations

from collections import Counter

import pytest
from _marker_db import restart_controller, rows as _rows, runs as _runs
from _wait import wait_until

from real_cluster.error import EngineError, ImpossibleDependency, RemoteError

pytestmark = pytest.mark.timeout(180)


def _run(tag, marker_dir, sleep_on=(), raise_on=(), seconds=30.0):
    """Leave a marker per run (`<tag>.<n>`); on run n sleep `seconds` if n in sleep_on, raise if n in raise_on."""
    import os
    import time
    n = 1 + sum(1 for name in os.listdir(marker_dir) if name.split(".")[0] == tag)
    open(os.path.join(marker_dir, f"{tag}.{n}"), "w").close()
    if n in sleep_on:
        time.sleep(seconds)
    if n in raise_on:
        raise ValueError(f"{tag} run {n}")
    return tag


def test_restart_judges_dependents_and_retries_in_the_core(make_cluster, tmp_path):
    cluster = make_cluster(3, controller_args=["--reuse"])   # dep, r and r's retry each on their own engine
    rc = cluster.client
    v = rc.load_balanced_view()
    m = str(tmp_path)
    failed_before = v.apply_async(_run, "f", m, raise_on=(1,))
    with pytest.raises(RemoteError, match="f run 1"):
        failed_before.get(30)
    with v.temp_flags(retries=0):
        dep = v.apply_async(_run, "dep", m, sleep_on=(1,))           # running at the kill, no retries left
    with v.temp_flags(retries=2):
        retried = v.apply_async(_run, "r", m, sleep_on=(2,), raise_on=(1, 2, 3))    # attempt 1 out at the kill
    wait_until(lambda: _runs(tmp_path, "dep") == 1 and _runs(tmp_path, "r") == 2, 30, "dep and r's second run")
    with v.temp_flags(after=[dep]):
        behind = v.apply_async(_run, "behind", m)                    # waits for dep
    with v.temp_flags(after=[failed_before], retries=3):
        never = v.apply_async(_run, "never", m)                      # fails at once: its dep failed
    with pytest.raises(ImpossibleDependency):
        never.get(30)
    rc.queue_status()                                                # an answer after every submission above
    assert not behind.ready()
    rc = restart_controller(cluster, 3)
    with pytest.raises(EngineError, match="no retries left"):
        rc.get_result(dep.msg_ids[0]).get(30)
    with pytest.raises(ImpossibleDependency):                        # as without the kill: its dependency failed
        rc.get_result(behind.msg_ids[0]).get(30)
    with pytest.raises(RemoteError, match="r run 3"):                # its last retry, and no more
        rc.get_result(retried.msg_ids[0]).get(30)
    assert rc.load_balanced_view().map_sync(abs, [-1, -2, -3]) == [1, 2, 3]
    assert {t: _runs(tmp_path, t) for t in ("f", "dep", "r", "behind", "never")} == {
        "f": 1, "dep": 1, "r": 3, "behind": 0, "never": 0}
    rc.queue_status()       # a request: answered once every write so far has committed (an answer needs less)
    db = cluster.dir / "tasks.db"
    rid = retried.msg_ids[0]
    assert _rows(db, "SELECT status, attempts FROM tasks WHERE msg_id=?", (rid,)) == [("error", 3)]
    def error_attempts() -> Counter:                 # the core's records reach the database within ~50 ms
        return Counter(a for (a,) in _rows(db, "SELECT attempt FROM records WHERE task_id=? AND outcome='error'",
                                           (rid,)))
    wait_until(lambda: sum(error_attempts().values()) >= 2, 10, "r's records")
    assert error_attempts() == Counter({0: 1, 2: 1})  # attempt 1 died with the controller; none numbered twice
    assert _rows(db, "SELECT ename FROM tasks WHERE msg_id=?", (behind.msg_ids[0],)) == [("ImpossibleDependency",)]
