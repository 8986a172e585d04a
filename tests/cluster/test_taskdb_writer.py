"""The task database's writer thread, on real SQLite files: queued writes commit in bounded group commits (rows and
bytes), a lock held by another connection delays them without blocking the caller, a final row is never rewritten,
and a task id is never used twice (queued, stored or purged)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from real_cluster.taskdb import WRITE_CHUNK_BYTES, WRITE_CHUNK_ROWS, TaskDB, TaskIdInUse

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
