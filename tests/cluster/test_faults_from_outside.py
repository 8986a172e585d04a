"""Faults on a live cluster, from outside the processes: an engine SIGKILLed mid-task (retried elsewhere), an
engine hung with SIGSTOP past the heartbeat limit and then resumed (retried, and its late answer ignored), the
controller SIGKILLed and restarted on the same key and port (engines come back by themselves, finished results
come from SQLite, in-flight work gets a clear error), a client that vanishes mid-map (another client collects
its results), and the task database becoming unwritable (`chattr +i`, which stops root too) or unusable at
start. After every fault: each task ran at most once per attempt, and no process is left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from _wait import run_on_every_engine, wait_until

from real_cluster import Client
from real_cluster.error import ClusterError, ConnectionFailed, EngineError, RemoteError
from real_cluster.profile import CLIENT_FILE, read_connection_file

pytestmark = pytest.mark.timeout(120)


def _logged_sleep(tag, seconds, log_path):
    """Append `tag pid` to a run log (one line per start of a run; pid: the engine's, the worker's parent),
    sleep, return the tag."""
    import os
    import time
    with open(log_path, "a") as fh:
        fh.write(f"{tag} {os.getppid()}\n")
    time.sleep(seconds)
    return tag


def _runs(log_path: Path) -> list[tuple[str, int]]:
    if not log_path.exists():
        return []
    return [(t, int(p)) for t, p in (line.split() for line in log_path.read_text().splitlines())]


def _saved(rc: Client, ids: list[str], statuses: set[str]) -> bool:
    """Are these tasks' rows in SQLite with one of `statuses`? (db_query writes the queued batch first.)"""
    rows = rc.db_query({"msg_id": {"$in": list(ids)}}, ["status"])
    return len(rows) == len(ids) and all(r["status"] in statuses for r in rows)


def _records_by_task(rc: Client) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in rc.records():
        out.setdefault(r.task_id, []).append(r)
    for recs in out.values():
        recs.sort(key=lambda r: r.attempt)
        assert len({r.attempt for r in recs}) == len(recs), "an attempt was recorded twice"
    return out


def _assert_all_gone(procs) -> None:
    for p in procs:
        assert p.poll() is not None, f"process {p.pid} is still running"


def test_engine_sigkilled_mid_task_is_retried_and_leaves_client_ids(make_cluster, tmp_path):
    cluster = make_cluster(3)
    rc = cluster.client
    log_path = tmp_path / "runs"
    v = rc.load_balanced_view(retries=1)
    ar = v.map_async(_logged_sleep, [f"t{i}" for i in range(9)], [1.0] * 9, [str(log_path)] * 9)
    wait_until(lambda: len(_runs(log_path)) >= 1, 15, "a task to start")   # killed while it still sleeps:
    victim_tag, victim_pid = _runs(log_path)[0]                              # (waiting for three let it finish)
    victim = next(p for p in cluster.engines if p.pid == victim_pid)
    os.kill(victim_pid, signal.SIGKILL)
    assert victim.wait(5) == -signal.SIGKILL
    assert ar.get(30) == [f"t{i}" for i in range(9)]
    wait_until(lambda: len(rc.ids) == 2, 5, "the dead engine to leave client.ids")
    runs = Counter(tag for tag, _ in _runs(log_path))
    recs = _records_by_task(rc)
    by_tag = dict(zip([f"t{i}" for i in range(9)], ar.msg_ids))
    assert [str(r.outcome) for r in recs[by_tag[victim_tag]]] == ["engine_lost", "ok"]
    assert runs[victim_tag] == 2                              # once per attempt
    for tag, tid in by_tag.items():
        assert runs[tag] == len(recs[tid])                    # every other task: one attempt, one run
    assert v.apply_sync(abs, -3) == 3                         # the cluster keeps serving
    procs = [cluster.controller, *cluster.engines]
    cluster.stop()
    _assert_all_gone(procs)


def test_engine_hung_past_heartbeat_is_retried_and_its_late_answer_ignored(make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--hb-period", "0.2", "--hb-misses", "5"])
    rc = cluster.client
    log_path = tmp_path / "runs"
    v = rc.load_balanced_view(retries=1)
    ar = v.apply_async(_logged_sleep, "slow", 1.5, str(log_path))
    wait_until(lambda: len(_runs(log_path)) == 1, 10, "the task to start")
    _, pid = _runs(log_path)[0]
    hung_id = ar.engine_id if ar.engine_id is not None else None
    os.kill(pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        wait_until(lambda: len(rc.ids) == 1, 10, "the hung engine to be declared lost")
        assert time.monotonic() - t0 < 5
        assert ar.get(20) == "slow"                           # attempt 1 ran on the other engine
    finally:
        os.kill(pid, signal.SIGCONT)
    # the resumed engine finishes attempt 0 into a closed connection, then registers again under a new id
    wait_until(lambda: len(rc.ids) == 2, 15, "the resumed engine to register again")
    assert hung_id is None or hung_id not in rc.ids
    run_on_every_engine(rc, 15)                               # a third run of the task would have happened by now
    recs = _records_by_task(rc)[ar.msg_ids[0]]
    assert [str(r.outcome) for r in recs] == ["engine_lost", "ok"]
    assert [r.engine_id for r in recs][0] != recs[1].engine_id
    assert len(_runs(log_path)) == 2                          # one run per attempt
    assert rc.get_result(ar.msg_ids[0]).get(5) == "slow"
    procs = [cluster.controller, *cluster.engines]
    cluster.stop()
    _assert_all_gone(procs)


def test_controller_sigkilled_and_restarted_engines_come_back(make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--reuse"])
    old = cluster.client
    info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    log_path = tmp_path / "runs"
    v = old.load_balanced_view()
    finished = v.map_async(_logged_sleep, ["a", "b", "c"], [0] * 3, [str(log_path)] * 3)
    assert finished.get(10) == ["a", "b", "c"]
    wait_until(lambda: _saved(old, finished.msg_ids, {"ok"}), 10, "the finished tasks' rows in SQLite")
    in_flight = v.apply_async(_logged_sleep, "inflight", 1.5, str(log_path))
    wait_until(lambda: len(_runs(log_path)) == 4, 10, "the in-flight task to start")
    # database writes are batched (50 ms): a crash loses the last batch, so wait until the row has landed
    wait_until(lambda: _saved(old, in_flight.msg_ids, {"pending"}), 10, "the in-flight task's row in SQLite")
    engine_pids = [p.pid for p in cluster.engines]
    cluster.controller.send_signal(signal.SIGKILL)
    cluster.controller.wait(5)
    with pytest.raises(ConnectionFailed):                     # a clear error for the work that was in flight
        in_flight.get(10)
    with pytest.raises(ConnectionFailed):
        v.apply_async(abs, 1)
    old.close()
    cluster.client = None
    cluster.start_controller()                                # --reuse: same key and port
    new_info = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    assert (new_info.port, new_info.key) == (info.port, info.key)
    rc = cluster.client = Client(cluster.dir / "security" / CLIENT_FILE, timeout=10)
    rc.wait_for_engines(2, 30)                                # the same engine processes registered again
    assert all(p.poll() is None for p in cluster.engines) and [p.pid for p in cluster.engines] == engine_pids
    assert rc.get_result(finished.msg_ids).get(10) == [["a"], ["b"], ["c"]]     # one chunk per map task
    with pytest.raises(EngineError, match="stopped while .* no retries left"):   # it ran at the kill and has no retries left
        rc.get_result(in_flight.msg_ids[0]).get(10)
    assert rc.load_balanced_view().map_sync(abs, [-1, -2, -3, -4]) == [1, 2, 3, 4]
    run_on_every_engine(rc, 15)                               # the in-flight task was never run again
    assert Counter(t for t, _ in _runs(log_path)) == {"a": 1, "b": 1, "c": 1, "inflight": 1}
    procs = [cluster.controller, *cluster.engines]
    cluster.stop()
    _assert_all_gone(procs)


_VANISHING_CLIENT = r"""
import json, os, sys, time
from real_cluster import Client
def work(i, log_path):
    import time
    with open(log_path, "a") as fh:
        fh.write(f"t{i} 0\n")
    time.sleep(0.05)
    return i * i
rc = Client(sys.argv[1], timeout=10)
ar = rc.load_balanced_view().map_async(work, range(40), [sys.argv[2]] * 40)
rc.queue_status()                 # a round trip: every Submit reached the controller before it
print(json.dumps(ar.msg_ids), flush=True)
os._exit(0)                       # vanish without closing anything
"""


def test_client_vanishing_mid_map_its_tasks_complete_for_another_client(make_cluster, tmp_path):
    cluster = make_cluster(2)
    log_path = tmp_path / "runs"
    out = subprocess.run([sys.executable, "-c", _VANISHING_CLIENT, str(cluster.dir / "security" / CLIENT_FILE),
                          str(log_path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    ids = json.loads(out.stdout.strip().splitlines()[-1])
    assert len(ids) == 40
    assert len(_runs(log_path)) < 40                          # the client was gone before the map finished
    rc = cluster.client
    assert rc.get_result(ids).get(30) == [[i * i] for i in range(40)]             # one chunk per map task
    recs = _records_by_task(rc)
    assert all([str(r.outcome) for r in recs[t]] == ["ok"] for t in ids)
    assert sorted(Counter(t for t, _ in _runs(log_path)).values()) == [1] * 40


def _chattr(flag: str, *paths: Path) -> bool:
    res = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True)
    return res.returncode == 0


def test_unwritable_task_database_gives_a_clear_error_and_loses_nothing(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    v = rc.load_balanced_view()
    before = v.map_async(abs, range(-5, 0))
    assert before.get(10) == [5, 4, 3, 2, 1]
    wait_until(lambda: _saved(rc, before.msg_ids, {"ok"}), 10, "the first tasks' rows in SQLite")
    db = cluster.dir / "tasks.db"
    # every file of the database, the redo log included (not -shm: it is mmapped, SIGBUS if frozen)
    files = [p for p in (db, Path(f"{db}-wal"), Path(f"{db}.redo")) if p.exists()]
    assert Path(f"{db}.redo") in files
    if not _chattr("+i", *files):
        pytest.skip("chattr +i is not available here")
    try:
        if os.access(db, os.W_OK) and _write_allowed(db):
            pytest.skip("an immutable file is still writable here")
        during = v.apply_async(abs, -10)                      # accepted (the first write to fail): its answer waits
        controller_log = cluster.dir / "log" / "controller.log"
        wait_until(lambda: "new submissions are refused" in controller_log.read_text(), 20, "the writer to fail")
        with pytest.raises(ClusterError, match="task database unavailable"):
            rc.hub_history()
        with pytest.raises(ClusterError, match="task database unavailable"):
            rc.db_query({"msg_id": before.msg_ids[0]})
        with pytest.raises(RemoteError, match="task database unavailable.*not accepted"):
            v.apply_sync(abs, -11)                            # nothing is accepted that could not be stored
        assert cluster.controller.poll() is None              # no crash
        assert not during.ready()
    finally:
        assert _chattr("-i", *files)
    assert during.get(20) == 10                               # the answer leaves once its row is stored
    assert v.apply_sync(abs, -11) == 11

    def history_once_writable() -> list[str] | None:
        try:
            return rc.hub_history()
        except ClusterError:
            return None

    history = wait_until(history_once_writable, 10, "the queued writes to land once the disk recovers")
    assert set(before.msg_ids + during.msg_ids) <= set(history)
    assert rc.get_result(during.msg_ids).get(10) == [10]
    recs = _records_by_task(rc)
    assert all(len(recs[t]) == 1 for t in before.msg_ids + during.msg_ids)
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "task database write failed" in log and "task database error answering 'hub_history'" in log


def _write_allowed(path: Path) -> bool:
    try:
        with open(path, "ab"):
            return True
    except OSError:
        return False


def test_controller_refuses_to_start_on_an_unusable_database(lab_dir):
    from real_cluster.profile import profile_dir
    pdir = profile_dir(f"baddb{os.getpid()}")
    (pdir / "tasks.db").mkdir()                               # the database path is a directory
    out = subprocess.run([sys.executable, "-m", "real_cluster.controller_app", "--profile", pdir.name[8:],
                          "--log", str(pdir / "log" / "c.log")], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "controller:" in out.stderr and "database" in out.stderr and "Traceback" not in out.stderr
