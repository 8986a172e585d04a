"""The task database's writer thread, on real SQLite files: queued writes commit in bounded group commits (rows and
bytes), a lock held by another connection delays them without blocking the caller, a final row is never rewritten,
and a task id is never used twice (queued, stored or purged). Small batches asked for by the loop commit inline (on
the caller's thread), yet a lock held elsewhere still never blocks the caller, and the WAL is still checkpointed."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

import os

from real_cluster.taskdb import (
    INLINE_CHECKPOINT_EVERY, INLINE_MAX_BYTES, INLINE_MAX_ROWS, WRITE_CHUNK_BYTES, WRITE_CHUNK_ROWS, TaskDB,
    TaskIdInUse,
)

pytestmark = pytest.mark.timeout(60)


class _Commits:
    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def commit(self, seq: int) -> None:
        with self.lock:
            self.seqs.append(seq)

    def error(self, exc: BaseException) -> None:
        self.errors.append(exc)


def test_a_locked_database_delays_writes_and_the_backlog_lands_in_bounded_chunks(tmp_path):
    path = str(tmp_path / "tasks.db")
    seen = _Commits()
    db = TaskDB(path, on_commit=seen.commit, on_error=seen.error)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")                      # another process's lock, as far as SQLite can tell
    n = WRITE_CHUNK_ROWS * 2 + 500
    started = time.monotonic()
    for i in range(n):
        db.add_task(f"t{i}", "c", {}, float(i), b"p")
    assert time.monotonic() - started < 5.0               # queueing never waits for the lock (~0.1 s here)
    deadline = time.monotonic() + 20
    while not seen.errors and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen.errors and seen.errors[0].sqlite_errorname.startswith("SQLITE_BUSY")
    assert db.committed_seq == 0 and db.dirty
    other.execute("ROLLBACK")
    other.close()
    assert db.wait_committed(timeout_s=30)
    steps = [b - a for a, b in zip([0] + seen.seqs, seen.seqs)]
    assert sum(steps) == n and max(steps) <= WRITE_CHUNK_ROWS and len(steps) >= 3
    assert db.hub_history()[:3] == ["t0", "t1", "t2"] and len(db.hub_history()) == n
    db.close()


def test_big_payloads_commit_in_chunks_of_bounded_bytes(tmp_path):
    seen = _Commits()
    db = TaskDB(str(tmp_path / "tasks.db"), on_commit=seen.commit)
    other = sqlite3.connect(str(tmp_path / "tasks.db"), isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")                      # hold the writer back until the whole backlog is queued
    mib = 1 << 20
    n = WRITE_CHUNK_BYTES // mib * 3
    for i in range(n):
        db.add_task(f"big{i}", "c", {}, float(i), bytes(mib))
    other.execute("ROLLBACK")
    other.close()
    assert db.wait_committed(timeout_s=30)
    steps = [b - a for a, b in zip([0] + seen.seqs, seen.seqs)]
    assert sum(steps) == n and max(steps) * mib <= WRITE_CHUNK_BYTES + mib and len(steps) >= 3
    db.close()


def test_a_final_row_is_never_rewritten_and_ids_are_never_reused(tmp_path):
    path = str(tmp_path / "tasks.db")
    db = TaskDB(path)
    db.add_task("a", "c", {"label": "x"}, 1.0, b"pa")
    assert db.is_id_used("a")                             # queued, not yet committed: already taken
    db.finish_task("a", "ok", 0, 2.0, 3.0, 4.0, b"first")
    db.finish_task("a", "error", 1, 5.0, 6.0, 7.0, None, "ValueError", "late")     # a second outcome: ignored
    db.add_task("b", "c", {}, 2.0, b"pb")
    db.finish_task("b", "ok", 0, 2.0, 3.0, 4.0, b"r")
    assert db.wait_committed()
    assert db.query({"msg_id": "a"}, keys=["status", "result", "engine_id"]) == [
        {"msg_id": "a", "status": "ok", "result": b"first", "engine_id": 0}]
    assert db.purge(["b"]) == ["b"] and db.wait_committed()
    assert db.is_id_used("a") and db.is_id_used("b") and not db.is_id_used("c")    # purged ids stay taken
    db.close()
    db = TaskDB(path)                                      # and after a restart
    assert db.is_id_used("b") and db.hub_history() == ["a"]
    db.close()
    mem = TaskDB(":memory:")
    mem.add_task("a", "c", {}, 1.0, b"p")
    with pytest.raises(TaskIdInUse):
        mem.add_task("a", "c", {}, 1.0, b"other")
    assert mem.query({"msg_id": "a"}, keys=["payload"]) == [{"msg_id": "a", "payload": b"p"}]
    mem.close()


class _Loop:
    """The event loop's `call_later`, run by hand: `turn()` runs what is due, as one loop turn would."""

    def __init__(self) -> None:
        self.due: list = []

    def schedule(self, delay_s: float, fn) -> None:
        self.due.append(fn)

    def turn(self) -> None:
        due, self.due = self.due, []
        for fn in due:
            fn()


def _count(path: str, sql: str) -> int:
    con = sqlite3.connect(path, timeout=10)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def _wait_idle(db: TaskDB) -> None:
    deadline = time.monotonic() + 10
    while not db._writer_idle:             # the writer thread has parked (it starts idle, after its connect)
        assert time.monotonic() < deadline, "the writer thread never became idle"
        time.sleep(0.005)


def test_a_small_batch_commits_inline_on_the_callers_thread_and_is_on_disk(tmp_path):
    path = str(tmp_path / "tasks.db")
    threads: list[int] = []
    loop = _Loop()
    db = TaskDB(path, on_commit=lambda seq: threads.append(threading.get_ident()), schedule=loop.schedule)
    _wait_idle(db)
    for i in range(10):
        db.add_task(f"t{i}", "c", {}, float(i), b"p")
    db.finish_task("t0", "ok", 0, 1.0, 2.0, 3.0, b"r")
    db.request_commit()
    assert db.dirty and _count(path, "SELECT count(*) FROM tasks") == 0      # nothing before the loop turn
    loop.turn()
    assert not db.dirty and db.inline_commits == 1 and threads == [threading.get_ident()]
    assert _count(path, "SELECT count(*) FROM tasks") == 10                   # another connection sees it
    assert _count(path, "SELECT count(*) FROM tasks WHERE status='ok'") == 1
    db.close()


def test_a_batch_of_inline_max_rows_commits_inline_and_a_bigger_one_goes_to_the_writer_thread(tmp_path):
    path = str(tmp_path / "tasks.db")
    threads: list[int] = []
    loop = _Loop()
    db = TaskDB(path, on_commit=lambda seq: threads.append(threading.get_ident()), schedule=loop.schedule)
    _wait_idle(db)
    for i in range(INLINE_MAX_ROWS):
        db.add_task(f"t{i}", "c", {}, float(i), b"p")
    db.request_commit()
    loop.turn()
    assert not db.dirty and db.inline_commits == 1 and threads == [threading.get_ident()]
    _wait_idle(db)
    for i in range(INLINE_MAX_ROWS, 2 * INLINE_MAX_ROWS + 1):      # one more than an inline commit takes
        db.add_task(f"t{i}", "c", {}, float(i), b"p")
    db.request_commit()
    loop.turn()                                 # the loop's turn hands it over: no commit on this thread
    assert db.inline_commits == 1 and not loop.due
    assert db.wait_committed(timeout_s=30)
    assert len(threads) == 2 and threads[1] != threading.get_ident()
    assert _count(path, "SELECT count(*) FROM tasks") == 2 * INLINE_MAX_ROWS + 1
    db.close()


def test_a_write_too_big_for_inline_goes_to_the_writer_thread(tmp_path):
    path = str(tmp_path / "tasks.db")
    threads: list[int] = []
    loop = _Loop()
    db = TaskDB(path, on_commit=lambda seq: threads.append(threading.get_ident()), schedule=loop.schedule)
    _wait_idle(db)
    db.add_task("big", "c", {}, 0.0, bytes(INLINE_MAX_BYTES + 1))
    db.request_commit()
    loop.turn()
    assert db.wait_committed(timeout_s=30)
    assert db.inline_commits == 0 and threads and threading.get_ident() not in threads
    assert _count(path, "SELECT count(*) FROM tasks") == 1
    db.close()


def test_a_lock_held_elsewhere_fails_the_inline_commit_at_once_and_the_writer_lands_it_later(tmp_path):
    path = str(tmp_path / "tasks.db")
    seen = _Commits()
    loop = _Loop()
    db = TaskDB(path, on_commit=seen.commit, on_error=seen.error, schedule=loop.schedule)
    _wait_idle(db)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")                      # another process's lock, as far as SQLite can tell
    try:
        db.add_task("t0", "c", {}, 0.0, b"p")
        db.request_commit()
        started = time.monotonic()
        loop.turn()                                       # the inline try: busy timeout 0, then the writer's turn
        assert time.monotonic() - started < 0.5, "the caller waited for another connection's lock"
        assert db.inline_commits == 0 and db.dirty
        deadline = time.monotonic() + 20
        while not seen.errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen.errors and seen.errors[0].sqlite_errorname.startswith("SQLITE_BUSY")
        db.add_task("t1", "c", {}, 1.0, b"p")             # while the writer retries, nothing commits inline
        db.request_commit()
        loop.turn()
        assert db.inline_commits == 0 and db.committed_seq == 0
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert db.wait_committed(timeout_s=30)
    assert _count(path, "SELECT count(*) FROM tasks") == 2 and db.inline_commits == 0
    db.close()


def test_inline_commits_never_checkpoint_but_the_writer_does(tmp_path):
    path = str(tmp_path / "tasks.db")
    loop = _Loop()
    db = TaskDB(path, on_commit=lambda seq: None, schedule=loop.schedule)
    _wait_idle(db)
    wal = tmp_path / "tasks.db-wal"
    payload = bytes(16 << 10)
    for i in range(INLINE_CHECKPOINT_EVERY - 1):
        db.add_task(f"t{i}", "c", {}, float(i), payload)
        db.request_commit()
        loop.turn()
        _wait_idle(db)
    assert db.inline_commits == INLINE_CHECKPOINT_EVERY - 1
    grown = os.path.getsize(wal)
    assert grown > 4 << 20                                # past SQLite's own autocheckpoint (1000 pages): none ran
    db.add_task("last", "c", {}, 0.0, payload)
    db.request_commit()
    loop.turn()
    _wait_idle(db)                                        # the writer checkpointed: the next commit restarts the WAL
    db.add_task("after", "c", {}, 0.0, b"p")
    db.request_commit()
    loop.turn()
    assert db.inline_commits == INLINE_CHECKPOINT_EVERY + 1
    assert _count(path, "SELECT count(*) FROM tasks") == INLINE_CHECKPOINT_EVERY + 1
    con = sqlite3.connect(path)
    try:
        busy, log_frames, checkpointed = con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        con.close()
    assert log_frames < 50, f"the WAL was not checkpointed and restarted: {log_frames} frames"
    db.close()


def _row(path: str, msg_id: str) -> tuple:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT status, engine_id, started, completed, received, result, attempts, payload "
                           "FROM tasks WHERE msg_id=?", (msg_id,)).fetchone()
    finally:
        con.close()


def test_a_success_whose_insert_is_still_queued_is_inserted_final_with_the_same_row(tmp_path):
    """A success queued while its insert waits (the writer idle) folds into the insert: one row write, same row."""
    path = str(tmp_path / "tasks.db")
    loop = _Loop()
    db = TaskDB(path, schedule=loop.schedule)
    _wait_idle(db)
    db.add_task("a", "c", {}, 1.0, b"pa")
    db.add_task("b", "c", {}, 1.0, b"pb")
    db.set_attempts("a", 1)
    db.finish_task("a", "ok", 3, 2.0, 3.0, 4.0, b"ra", answer="answer-a", attempts=1)
    assert [op[1].split(" (")[0] for op in db._ops].count("INSERT INTO tasks") == 2
    assert len(db._ops) == 3 and db.dirty                        # two inserts, one dispatch count: no update
    assert db.unsaved_answer("a") == "answer-a"                  # told to a client, not committed yet
    db.request_commit()
    loop.turn()
    assert not db.dirty and db.unsaved_answer("a") is None
    assert _row(path, "a") == ("ok", 3, 2.0, 3.0, 4.0, b"ra", 1, b"pa")
    assert _row(path, "b")[0] == "pending" and _row(path, "b")[6] == 0
    db.finish_task("b", "ok", 1, 2.0, 3.0, 4.0, b"rb", attempts=1)      # its insert committed: an update
    db.request_commit()
    loop.turn()
    assert _row(path, "b") == ("ok", 1, 2.0, 3.0, 4.0, b"rb", 1, b"pb")
    db.close()


def test_a_success_is_not_folded_into_an_insert_the_writer_may_be_committing(tmp_path):
    """While the writer thread holds a batch (not idle), the outcome is queued as an update and still lands."""
    path = str(tmp_path / "tasks.db")
    other = sqlite3.connect(path, isolation_level=None)
    db = TaskDB(path)                                  # no schedule: every write wakes the writer
    other.execute("BEGIN EXCLUSIVE")                   # the writer takes the insert and waits for this lock
    db.add_task("a", "c", {}, 1.0, b"pa")
    deadline = time.monotonic() + 10
    while db._writer_idle or not db._ops:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    db.finish_task("a", "ok", 0, 2.0, 3.0, 4.0, b"ra", attempts=1)
    assert len(db._ops) == 2 and "UPDATE" in db._ops[1][1]
    other.execute("ROLLBACK")
    other.close()
    assert db.wait_committed(timeout_s=30)
    assert _row(path, "a") == ("ok", 0, 2.0, 3.0, 4.0, b"ra", 1, b"pa")
    db.close()


def test_a_success_whose_insert_is_in_the_same_commit_is_written_as_one_final_row(tmp_path):
    """In a burst the fold is refused (the insert is in the redo log already): the commit that takes both the insert
    and the outcome writes one final row, no update; a task without an outcome, or whose insert committed earlier,
    is written as before."""
    path = str(tmp_path / "tasks.db")
    loop = _Loop()
    db = TaskDB(path, schedule=loop.schedule, redo=True)
    _wait_idle(db)
    db.add_task("z", "c", {}, 1.0, b"pz")
    db.request_commit()
    loop.turn()                                              # z's insert is in SQLite
    db.add_task("a", "c", {}, 1.0, b"pa")
    db.add_task("b", "c", {}, 1.0, b"pb")
    db.set_attempts("a", 1)
    db.request_durable()
    loop.turn()                                              # a and b are in the redo log: no fold now
    db.finish_task("a", "ok", 3, 2.0, 3.0, 4.0, b"ra", attempts=1)
    db.finish_task("z", "ok", 1, 2.0, 3.0, 4.0, b"rz", attempts=1)
    assert sum("UPDATE tasks SET status='ok'" in op[1] for op in db._ops) == 2     # both queued as updates
    statements: list[str] = []
    db._inline.set_trace_callback(statements.append)
    db.request_commit()
    loop.turn()                                              # one inline commit of the lot
    assert not db.dirty
    assert sum(s.startswith("UPDATE tasks SET status='ok'") for s in statements) == 1      # z's alone
    assert sum(s.startswith("UPDATE tasks SET attempts") for s in statements) == 0        # a's count is in its row
    assert sum(s.startswith("INSERT INTO tasks") for s in statements) == 2                # a final, b pending
    assert _row(path, "a") == ("ok", 3, 2.0, 3.0, 4.0, b"ra", 1, b"pa")
    assert _row(path, "b") == ("pending", None, None, None, None, None, 0, b"pb")
    assert _row(path, "z") == ("ok", 1, 2.0, 3.0, 4.0, b"rz", 1, b"pz")
    db.close()


def test_answers_are_forgotten_oldest_first_as_their_rows_commit(tmp_path):
    """`forget_committed` drops exactly the answers whose writes committed, front first, over many partial
    commits (an abort of 100,000 queued tasks does this; the speed is bench material, the rule is tested here)."""
    loop = _Loop()
    db = TaskDB(str(tmp_path / "tasks.db"), schedule=loop.schedule)
    _wait_idle(db)
    n = 20_000
    for i in range(n):
        db.add_task(f"t{i}", "c", {}, 1.0, b"p")
    db.request_commit()
    loop.turn()
    seqs = [db.finish_task(f"t{i}", "error", None, None, None, 2.0, None, "E", "e", "", answer=i) for i in range(n)]
    assert db.unsaved_answer("t0") == 0 and db.unsaved_answer(f"t{n - 1}") == n - 1
    start = db.committed_seq
    for step, cut in enumerate(range(1_000, n + 1, 1_000)):
        db.committed_seq = seqs[cut - 1]                # as the writer sets it when a chunk commits
        db.forget_committed()
        assert len(db._unsaved) == n - cut, step
        assert db.unsaved_answer(f"t{cut - 1}") is None
        if cut < n:
            assert db.unsaved_answer(f"t{cut}") == cut
    db.committed_seq = start                            # the real writes are still queued: close commits them
    db.close()


def test_the_label_index_holds_labelled_tasks_only_and_an_older_full_index_is_rebuilt_so(tmp_path):
    path = str(tmp_path / "tasks.db")
    TaskDB(path).close()
    con = sqlite3.connect(path)                 # a database written before: the label index held every row
    con.executescript("DROP INDEX tasks_label; CREATE INDEX tasks_label ON tasks(label);")
    con.close()
    loop = _Loop()
    db = TaskDB(path, schedule=loop.schedule)
    _wait_idle(db)
    assert "WHERE label IS NOT NULL" in db._db.execute("SELECT sql FROM sqlite_master WHERE name='tasks_label'").fetchone()[0]
    for i in range(6):
        db.add_task(f"t{i}", "c", {"label": "even"} if i % 2 == 0 else {}, float(i), b"p")
    db.request_commit()
    loop.turn()
    assert not db.dirty
    plan = " ".join(str(r) for r in db._db.execute("EXPLAIN QUERY PLAN SELECT msg_id FROM tasks WHERE label = ?", ("x",)))
    assert "tasks_label" in plan                # `label = x` implies NOT NULL: the partial index serves it
    assert [r["msg_id"] for r in db.query({"label": "even"})] == ["t0", "t2", "t4"]
    assert [r["msg_id"] for r in db.query({"label": None})] == ["t1", "t3", "t5"]
    assert _count(path, "SELECT count(*) FROM tasks INDEXED BY tasks_label WHERE label IS NOT NULL") == 3
    db.close()
