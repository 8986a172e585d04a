"""Never lost, never doubled, on a live cluster: task ids are never reused (a second submission with a known id
is refused and the first row is untouched); after a controller SIGKILL and restart every task the controller
had answered after is there with its stored outcome, queued tasks run, running ones are retried or fail
EngineError (none is "no such task", none TaskAborted); a database locked by another process delays writes,
not the event loop nor answers (the redo log holds them: they survive a SIGKILL during the lock). Executions
are counted with marker files, rows in the database file itself."""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from _marker_db import locked, rows as _rows, runs as _runs
from _wait import wait_until

from real_cluster import Client
from real_cluster.error import ClusterError, ConnectionFailed, EngineError, RemoteError
from real_cluster.profile import CLIENT_FILE

pytestmark = pytest.mark.timeout(180)


def _mark(tag, marker_dir, seconds=0.0):
    """Leave one marker file per run (`<tag>.<pid>.<n>`), sleep, return the tag."""
    import os
    import time
    import uuid
    open(os.path.join(marker_dir, f"{tag}.{os.getpid()}.{uuid.uuid4().hex[:8]}"), "w").close()
    time.sleep(seconds)
    return tag


def _twin(rc: Client, path: Path) -> Client:
    """A second client whose next task id is `rc`'s first one (as a buggy or hostile client would send)."""
    twin = Client(path, timeout=10)
    twin._id_prefix = rc._id_prefix
    twin._id_seq = itertools.count()
    return twin


def test_a_reused_task_id_is_refused_and_the_original_row_is_untouched(make_cluster, tmp_path):
    cluster = make_cluster(1)
    rc = cluster.client
    path = cluster.dir / "security" / CLIENT_FILE
    v = rc.load_balanced_view()
    first = v.apply_async(_mark, "first", str(tmp_path))
    assert first.get(20) == "first"
    tid = first.msg_ids[0]
    twin = _twin(rc, path)
    try:
        again = twin.load_balanced_view().apply_async(_mark, "second", str(tmp_path))
        assert again.msg_ids == [tid]
        with pytest.raises(RemoteError, match="ValueError: task id"):
            again.get(20)
        assert rc.get_result(tid).get(10) == "first"                      # the original row is untouched
        rc.queue_status()               # answered once every write so far has committed (answers wait for less)
        assert _rows(cluster.dir / "tasks.db", "SELECT status, label FROM tasks WHERE msg_id=?", (tid,)) == [
            ("ok", None)]
        busy = v.apply_async(_mark, "busy", str(tmp_path), 1.0)              # reuse of a task still running
        wait_until(lambda: _runs(tmp_path, "busy") == 1, 20, "the busy task to start")
        twin._id_prefix, twin._id_seq = rc._id_prefix, itertools.count(1)
        clash = twin.load_balanced_view().apply_async(_mark, "clash", str(tmp_path))
        assert clash.msg_ids == busy.msg_ids
        with pytest.raises(RemoteError, match="ValueError: task id .* already in use"):
            clash.get(20)
        assert busy.get(20) == "busy"
    finally:
        twin.close()
    assert rc.get_result(tid).get(10) == "first"
    rc.purge_results(tid)                                # a purged id stays taken
    twin = _twin(rc, path)
    try:
        with pytest.raises(RemoteError, match="ValueError: task id .* already in use"):
            twin.load_balanced_view().apply_async(_mark, "third", str(tmp_path)).get(20)
    finally:
        twin.close()
    assert (_runs(tmp_path, "first"), _runs(tmp_path, "second"), _runs(tmp_path, "clash"),
            _runs(tmp_path, "third"), _runs(tmp_path, "busy")) == (1, 0, 0, 0, 1)
    rc.queue_status()                   # the purge's reply needed its writes durable; this one, committed
    db = cluster.dir / "tasks.db"
    assert _rows(db, "SELECT count(*) FROM tasks WHERE msg_id=?", (busy.msg_ids[0],)) == [(1,)]
    assert _rows(db, "SELECT status, label FROM tasks WHERE msg_id=?", (busy.msg_ids[0],)) == [("ok", None)]
    assert _rows(db, "SELECT count(*) FROM tasks WHERE msg_id=?", (tid,)) == [(0,)]     # purged, not replaced
    assert rc.load_balanced_view().apply_sync(abs, -3) == 3                              # the cluster serves on


def test_sigkill_after_answers_loses_nothing_and_aborts_nothing(make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--reuse"])
    rc = cluster.client
    path = cluster.dir / "security" / CLIENT_FILE
    v = rc.load_balanced_view()
    done = v.map_async(_mark, [f"d{i}" for i in range(20)], [str(tmp_path)] * 20)
    assert done.get(30) == [f"d{i}" for i in range(20)]
    with v.temp_flags(retries=0):
        l0 = v.apply_async(_mark, "l0", str(tmp_path), 2.0)                # running at the kill, no retries
    with v.temp_flags(retries=1):
        l1 = v.apply_async(_mark, "l1", str(tmp_path), 2.0)                # running at the kill, one retry
    wait_until(lambda: _runs(tmp_path, "l0") == 1 and _runs(tmp_path, "l1") == 1, 20, "both long tasks to start")
    queued = [v.apply_async(_mark, f"q{i}", str(tmp_path)) for i in range(200)]     # both engines busy: they queue
    status = rc.queue_status()                      # an answer after every submission above
    assert status["unassigned"] == 200
    cluster.controller.send_signal(signal.SIGKILL)
    cluster.controller.wait(10)
    with pytest.raises(ConnectionFailed):
        queued[0].get(10)
    rc.close()
    cluster.client = None
    cluster.start_controller()                      # --reuse: the engines come back by themselves
    rc = cluster.client = Client(path, timeout=10)
    rc.wait_for_engines(2, 60)
    assert rc.get_result(done.msg_ids).get(30) == [[f"d{i}"] for i in range(20)]
    with pytest.raises(EngineError, match="no retries left"):
        rc.get_result(l0.msg_ids[0]).get(30)
    assert rc.get_result(l1.msg_ids[0]).get(30) == "l1"
    ids = [ar.msg_ids[0] for ar in queued]
    assert rc.get_result(ids).get(60) == [f"q{i}" for i in range(200)]
    rc.queue_status()                   # a request: answered once every write so far has committed
    db = cluster.dir / "tasks.db"
    rows = dict(_rows(db, "SELECT status, count(*) FROM tasks GROUP BY status"))
    assert rows == {"ok": 20 + 1 + 200, "error": 1}
    assert _rows(db, "SELECT count(*) FROM tasks WHERE ename='TaskAborted'") == [(0,)]
    assert [_runs(tmp_path, f"d{i}") for i in range(20)] == [1] * 20
    assert [_runs(tmp_path, f"q{i}") for i in range(200)] == [1] * 200
    assert (_runs(tmp_path, "l0"), _runs(tmp_path, "l1")) == (1, 2)       # l1 ran again (its retry), l0 did not


def test_a_database_locked_by_another_process_delays_writes_not_the_loop_nor_answers(make_cluster, tmp_path):
    cluster = make_cluster(2, controller_args=["--hb-period", "0.5", "--hb-misses", "4"])    # lost after 2 s
    rc = cluster.client
    v = rc.load_balanced_view()
    assert v.map_sync(abs, range(-4, 0)) == [4, 3, 2, 1]
    rc.queue_status()                   # answered once every write so far has committed (answers wait for less)
    db = cluster.dir / "tasks.db"
    history: list = []
    reader = threading.Thread(target=lambda: history.append(rc.hub_history()), daemon=True)
    with locked(db):
        held_at = time.monotonic()
        during, waits = [], []
        for i in range(10):             # one task every 0.6 s: each is dispatched and answered while writes wait
            sent = time.monotonic()
            during.append(v.apply_async(_mark, f"w{i}", str(tmp_path)))
            assert during[-1].get(30) == f"w{i}"        # its rows are in the redo log (redo_log.py)
            waits.append(time.monotonic() - sent)
            if i == 0:
                reader.start()          # a read of the database: it waits for w0's rows to commit
            assert rc.ids == [0, 1], "an engine was lost while the database was locked"
            time.sleep(max(0.0, 0.6 * (i + 1) - (time.monotonic() - held_at)))
        assert time.monotonic() - held_at > 5.0                 # past a heartbeat limit (2 s) and SQLite's 5 s wait
        assert max(waits) < 2.0, f"a task waited for the database: {[round(w, 2) for w in waits]}"
        assert cluster.controller.poll() is None
        assert reader.is_alive() and not history, "a read did not wait for the rows it must see"
        assert _rows(db, "SELECT count(*) FROM tasks WHERE status='ok'") == [(4,)]     # none committed yet
    reader.join(30)
    assert set(ar.msg_ids[0] for ar in during) <= set(history[0])     # the read, once the rows committed
    assert sorted(rc.ids) == [0, 1]                   # no engine was lost (a lost one comes back as 2, 3)
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "engine 0 lost" not in log and "engine 1 lost" not in log
    assert _rows(db, "SELECT count(*) FROM tasks WHERE status='ok'") == [(14,)]


def test_answers_given_while_the_database_is_locked_survive_a_sigkill(make_cluster, tmp_path):
    cluster = make_cluster(1, controller_args=["--reuse"])
    rc = cluster.client
    path = cluster.dir / "security" / CLIENT_FILE
    v = rc.load_balanced_view()
    assert v.map_sync(abs, range(-3, 0)) == [3, 2, 1]
    rc.queue_status()                   # answered once every write so far has committed
    db = cluster.dir / "tasks.db"
    with locked(db):
        answered = [v.apply_async(_mark, f"k{i}", str(tmp_path)) for i in range(5)]
        assert [ar.get(30) for ar in answered] == [f"k{i}" for i in range(5)]
        ids = [ar.msg_ids[0] for ar in answered]
        cluster.controller.send_signal(signal.SIGKILL)
        cluster.controller.wait(10)
    marks = ",".join("?" * len(ids))
    assert _rows(db, f"SELECT count(*) FROM tasks WHERE msg_id IN ({marks})", tuple(ids)) == [(0,)]  # SQLite lacks them
    rc.close()
    cluster.client = None
    cluster.start_controller()          # replays the redo log before it serves anyone
    rc = cluster.client = Client(path, timeout=10)
    assert rc.get_result(ids).get(30) == [f"k{i}" for i in range(5)]
    assert _rows(db, f"SELECT count(*) FROM tasks WHERE status='ok' AND msg_id IN ({marks})", tuple(ids)) == [(5,)]
    assert [_runs(tmp_path, f"k{i}") for i in range(5)] == [1] * 5        # answered once, never run again
    assert re.search(r"\d+ writes replayed from the redo log", (cluster.dir / "log" / "controller.log").read_text())


def test_without_the_redo_log_answers_wait_for_the_commit(make_cluster, tmp_path):
    cluster = make_cluster(1, controller_args=["--no-redo-log"])
    v = cluster.client.load_balanced_view()
    assert v.map_sync(abs, range(-3, 0)) == [3, 2, 1]
    db = cluster.dir / "tasks.db"
    assert not Path(f"{db}.redo").exists()
    with locked(db):
        ar = v.apply_async(_mark, "n0", str(tmp_path))
        wait_until(lambda: _runs(tmp_path, "n0") == 1, 20, "the task to run")
        assert not ar.wait(0.5)         # a logged answer would be here within a round trip (~1 ms): none commits
    assert ar.get(30) == "n0"


@pytest.fixture
def full_disk_profile(lab_dir):
    """A profile directory on its own 16 MiB tmpfs (unmounted at the end, after the test's cluster stopped)."""
    name = f"full{os.getpid()}"
    pdir = lab_dir / f"profile_{name}"
    pdir.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(pdir)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield name, pdir
    finally:
        subprocess.run(["umount", "-l", str(pdir)], check=True, timeout=30)


def _fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 16))
        except OSError:
            pass


def test_a_full_disk_gives_clear_errors_and_every_row_lands_when_space_is_back(full_disk_profile, make_cluster):
    name, pdir = full_disk_profile
    cluster = make_cluster(1, profile=name)
    rc = cluster.client
    v = rc.load_balanced_view()
    assert v.map_sync(abs, range(-3, 0)) == [3, 2, 1]
    rc.queue_status()                     # answered once every write so far (records included) has committed
    filler = pdir / "filler"
    _fill(filler)
    accepted = [v.apply_async(len, bytes(1 << 20))]                        # 1 MiB: no room for its row
    log_path = pdir / "log" / "controller.log"
    wait_until(lambda: log_path.exists() and "new submissions are refused" in log_path.read_text(), 30,
                "the writer to report the full disk")
    refused = v.apply_async(len, b"y")
    with pytest.raises(RemoteError, match="ClusterError: task database unavailable .*full.*not accepted"):
        refused.get(20)
    with pytest.raises(ClusterError, match="task database unavailable.*full"):
        rc.hub_history()
    assert rc.ids == [0] and cluster.controller.poll() is None
    assert not any(ar.ready() for ar in accepted)                 # answered only once their rows are stored
    filler.unlink()                                               # space is back: the backlog lands
    assert [ar.get(60) for ar in accepted] == [1 << 20]
    assert v.apply_sync(len, b"zz") == 2                          # submissions are accepted again
    ids = [ar.msg_ids[0] for ar in accepted]
    assert set(ids) <= set(rc.hub_history()) and refused.msg_ids[0] not in rc.hub_history()
    cluster.stop()
    db = pdir / "tasks.db"
    assert _rows(db, "SELECT count(*) FROM tasks WHERE status='ok'") == [(3 + 1 + 1,)]
    assert _rows(db, "SELECT count(*) FROM tasks WHERE msg_id=?", (refused.msg_ids[0],)) == [(0,)]
    log = log_path.read_text()
    assert "database or disk is full" in log and "task database writes succeed again" in log


def test_a_reply_too_large_for_a_header_still_arrives_while_answers_wait_for_commits(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    ars = rc.load_balanced_view().map_async(abs, range(3000), chunksize=1)    # results and writes in flight
    rows = rc.db_query({"msg_id": {"$in": ars.msg_ids}}, keys=["status"])    # a reply that travels as a buffer
    assert len(rows) == 3000 and {r["status"] for r in rows} <= {"pending", "ok"}
    assert ars.get(120) == list(range(3000))
