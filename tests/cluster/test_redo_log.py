"""The task database's redo log (real_cluster/redo_log.py): what an answer waited for survives a SIGKILL.

Each "crash" is a real process that writes through a real TaskDB on a real SQLite file and ends with
os._exit (no close, no commit, no flush of Python state: as a SIGKILL leaves it); a fresh TaskDB then
opens the same files. Counts are of rows in the database file itself.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _marker_db import locked
from _wait import wait_until

from real_cluster import redo_log
from real_cluster.taskdb import TaskDB

_CHILD = textwrap.dedent(r"""
    import json, os, sys, time
    from real_cluster.taskdb import TaskDB
    plan = json.loads(sys.argv[2])
    due = []
    db = TaskDB(sys.argv[1], schedule=lambda delay, fn: due.append(fn), redo=True)

    def writer_idle():                   # the writer thread waits for work (it must not take queued writes)
        deadline = time.monotonic() + 30
        while not db._writer_idle:
            assert time.monotonic() < deadline, "the writer thread never went idle"
            time.sleep(0.001)

    writer_idle()

    def run_due():
        while due:
            due.pop(0)()

    for step in plan:
        kind, tid = step[0], step[1] if len(step) > 1 else None
        if kind == "add":
            db.add_task(tid, "c", {"label": None}, 1_700_000_000.25, b"payload-" + tid.encode())
        elif kind == "ok":
            db.finish_task(tid, "ok", 0, 1_700_000_001.5, 1_700_000_002.5, 1_700_000_003.5, b"result-" + tid.encode(),
                           answer=tid, attempts=1)
        elif kind == "function":         # a function's bytes, kept once for the tasks naming it by digest
            db.add_function(tid.encode().ljust(16, b"-"), b"function-bytes-" + tid.encode())
            assert db.function_bytes(tid.encode().ljust(16, b"-")) == b"function-bytes-" + tid.encode()   # queued
        elif kind == "record":
            db.add_record_rows([(tid, 0, 0, 1.0, 2.0, 3.0, 4.0, "ok", None, 0, 0, "lru", None)])
        elif kind == "durable":          # an answer waits: the redo log append runs at the next loop turn
            db.request_durable()
            fns = [fn for fn in due if fn.__name__ == "_log_soon"]
            due[:] = [fn for fn in due if fn.__name__ != "_log_soon"]
            for fn in fns:
                fn()
        elif kind == "commit":           # the SQLite commit itself
            db.request_commit()
            run_due()
            assert db.wait_committed(timeout_s=10)
            writer_idle()                # (a commit request with nothing left wakes the writer: let it sleep again)
    print(json.dumps({"durable": db.durable_seq, "committed": db.committed_seq, "queued": db.queued_seq}), flush=True)
    os._exit(0)                          # no close, no commit: what a SIGKILL leaves
""")


def _crash_after(db_path: Path, plan: list[list[str]]) -> dict:
    """Run `plan` in a child process that ends without closing; returns its final sequence numbers."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(db_path), json.dumps(plan)], capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _q(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def _reopen(db_path: Path) -> TaskDB:
    return TaskDB(str(db_path), schedule=lambda delay, fn: None, redo=True)


def test_writes_an_answer_waited_for_survive_a_kill_and_replay_once(tmp_path):
    path = tmp_path / "tasks.db"
    seqs = _crash_after(path, [["add", "a"], ["ok", "a"], ["record", "a"], ["durable"],
                               ["add", "b"]])           # b: queued, never waited for
    assert seqs["committed"] == 0 and seqs["durable"] == seqs["queued"] - 1      # all but b
    assert _q(path, "SELECT count(*) FROM tasks") == [(0,)]        # SQLite never had them
    db = _reopen(path)
    db.close()
    assert _q(path, "SELECT msg_id, status, payload, result, started, attempts FROM tasks") == [
        ("a", "ok", b"payload-a", b"result-a", 1_700_000_001.5, 1)]
    assert _q(path, "SELECT task_id, outcome FROM records") == [("a", "ok")]
    assert os.path.getsize(str(path) + ".redo") == redo_log.HEADER_BYTES      # a clean close leaves it empty
    assert os.stat(str(path) + ".redo").st_mode & 0o077 == 0                   # it holds payloads: owner only
    _reopen(path).close()                                           # opened again: nothing replayed twice
    assert _q(path, "SELECT count(*) FROM tasks") == [(1,)] and _q(path, "SELECT count(*) FROM records") == [(1,)]


def test_a_functions_bytes_logged_with_its_task_survive_a_kill(tmp_path):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["function", "f"], ["add", "a"], ["durable"], ["function", "g"]])   # g: never waited for
    db = _reopen(path)
    try:
        assert db.function_bytes(b"f".ljust(16, b"-")) == b"function-bytes-f"     # from the table, replayed
        assert db.function_bytes(b"g".ljust(16, b"-")) is None
    finally:
        db.close()
    assert _q(path, "SELECT count(*) FROM functions") == [(1,)]


def test_a_logged_answer_asks_for_no_commit_sqlite_takes_it_at_the_next_request(tmp_path):
    # (a commit asked for after every append ran inline on the controller's loop every few ms and held up the
    # messages that came meanwhile: the apply_sync round trip, taskdb.py "Redo log")
    due: list = []
    told: list[int] = []
    db = TaskDB(str(tmp_path / "tasks.db"), schedule=lambda delay, fn: due.append((delay, fn)),
                on_commit=told.append, redo=True)
    try:
        wait_until(lambda: db._writer_idle, 30, "the writer thread to wait for work (else it commits what we queue)",
                   interval_s=0.001)
        db.add_task("a", "c", {"label": None}, 1.0, b"x")
        db.finish_task("a", "ok", 0, 2.0, 3.0, 4.0, b"r", answer="a", attempts=1)
        db.request_durable()
        assert [fn.__name__ for _, fn in due] == ["_log_soon"]
        due.pop()[1]()                                      # the append: durable, told, and nothing more asked for
        queued = db.queued_seq
        assert queued >= 1 and db.durable_seq == queued and told == [queued] and db.committed_seq == 0
        assert due == []
        db.request_commit()                                 # the owner's next commit (the controller: every 50 ms)
        assert [(delay, fn.__name__) for delay, fn in due] == [(0, "_commit_soon")]
        due.pop()[1]()
        assert db.wait_committed(timeout_s=10) and db.committed_seq == queued
        assert _q(tmp_path / "tasks.db", "SELECT msg_id, status, result FROM tasks") == [("a", "ok", b"r")]
    finally:
        db.close()


def test_only_what_sqlite_lacks_is_replayed(tmp_path):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["record", "a"], ["durable"], ["commit"],      # in SQLite and in the log
                        ["add", "b"], ["record", "b"], ["durable"]])                 # in the log only
    assert _q(path, "SELECT msg_id FROM tasks") == [("a",)]
    _reopen(path).close()
    assert sorted(_q(path, "SELECT msg_id FROM tasks")) == [("a",), ("b",)]
    assert sorted(_q(path, "SELECT task_id FROM records")) == [("a",), ("b",)]       # a's record not doubled


def test_a_kill_between_the_replay_and_the_fresh_log_replays_nothing_twice(tmp_path):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["record", "a"], ["durable"]])
    redo = Path(str(path) + ".redo")
    old_log = redo.read_bytes()
    token, ops, _ = redo_log.read(str(redo))
    _reopen(path).close()                                   # replayed: one commit that set the mark to (token, last)
    redo.write_bytes(old_log)                               # the state a kill right after that commit leaves: the
    con = sqlite3.connect(path)                             # old log, and the mark the replay's commit set
    with con:
        con.execute(redo_log.SET_MARK, (token, ops[-1][0]))
    con.close()
    _reopen(path).close()
    assert _q(path, "SELECT count(*) FROM tasks") == [(1,)] and _q(path, "SELECT count(*) FROM records") == [(1,)]


def test_a_database_opened_without_a_log_still_replays_the_one_left(tmp_path):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["durable"]])
    TaskDB(str(path), schedule=lambda delay, fn: None).close()     # a controller started with --no-redo-log
    assert _q(path, "SELECT msg_id FROM tasks") == [("a",)]
    assert not os.path.exists(str(path) + ".redo")


def test_an_outcome_after_its_insert_was_logged_is_logged_too(tmp_path):
    # a queued insert already in the log must not have its outcome folded into it (the log holds the old insert)
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["durable"], ["ok", "a"], ["durable"]])
    _reopen(path).close()
    assert _q(path, "SELECT status, result FROM tasks WHERE msg_id='a'") == [("ok", b"result-a")]


def test_a_record_cut_short_ends_the_log_and_is_reported(tmp_path, caplog):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["durable"], ["add", "b"], ["durable"]])
    redo = Path(str(path) + ".redo")
    data = redo.read_bytes()
    redo.write_bytes(data[:-3])                             # b's record torn (a machine crash mid-write)
    with caplog.at_level("WARNING", logger="real_cluster.taskdb"):
        _reopen(path).close()
    assert _q(path, "SELECT msg_id FROM tasks") == [("a",)]
    assert "cut short or damaged" in caplog.text
    token, ops, ignored = redo_log.read(str(redo))
    assert token is not None and ops == [] and ignored == 0        # started afresh


def test_a_replay_the_database_refuses_fails_clearly_and_keeps_the_log(tmp_path, monkeypatch):
    path = tmp_path / "tasks.db"
    _crash_after(path, [["add", "a"], ["durable"]])
    redo = Path(str(path) + ".redo")
    before = redo.read_bytes()
    monkeypatch.setattr("real_cluster.taskdb.REDO_OPEN_TIMEOUT_S", 0.2)
    with locked(path):
        with pytest.raises(redo_log.RedoLogError, match="holds 1 writes .*nothing is lost, the log is kept"):
            _reopen(path)
        assert redo.read_bytes() == before
    _reopen(path).close()                                   # the lock gone: it lands
    assert _q(path, "SELECT msg_id, status FROM tasks") == [("a", "pending")]


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (unmounted at the end)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=True, timeout=30)


def test_a_full_disk_turns_the_log_off_until_sqlite_holds_everything(small_fs):
    due: list = []
    told: list[int] = []
    db = TaskDB(str(small_fs / "tasks.db"), schedule=lambda delay, fn: due.append(fn), on_commit=told.append,
                redo=True)
    try:
        redo = db.redo
        assert redo is not None
        wait_until(lambda: db._writer_idle, 30, "the writer thread to wait for work (else it commits what we queue)",
                   interval_s=0.001)
        db.add_task("a", "c", {"label": None}, 1.0, b"x")
        db.request_durable()
        due.pop(0)()                                        # the append
        assert db.durable_seq == 1 and db.committed_seq == 0 and told == [1]
        size = os.path.getsize(redo.path)
        filler = small_fs / "filler"
        with open(filler, "wb", buffering=0) as fh:         # fill the file system
            try:
                while True:
                    fh.write(b"\0" * 65536)
            except OSError:
                pass
        db.add_task("b", "c", {"label": None}, 1.0, b"y" * 200_000)     # no room for its log record
        db.request_durable()
        for fn in [fn for fn in due if fn.__name__ == "_log_soon"]:
            fn()
        assert db.durable_seq == 1 and told == [1]          # not durable: its answer waits
        assert os.path.getsize(redo.path) == size           # the failed record was cut back off
        assert not redo.usable(db.committed_seq) and redo.off_until == 2
        filler.unlink()                                     # space is back: SQLite takes everything
        db.request_commit()
        while due:
            due.pop(0)()
        assert db.wait_committed(timeout_s=10) and db.committed_seq == 2
        assert redo.usable(db.committed_seq)                # the log is written again
        db.add_task("c", "c", {"label": None}, 1.0, b"z")
        db.request_durable()
        for fn in [fn for fn in due if fn.__name__ == "_log_soon"]:
            fn()
        assert db.durable_seq == 3 and db.committed_seq == 2
    finally:
        db.close()
