"""The task database's schema and statements, and the commit of one chunk of queued writes (taskdb.py).

One executemany per kind of write, a success whose insert is in the same chunk written as one final row; see
`commit`. Apart from taskdb.py so that the writer's one transaction reads on its own.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import Any

from sched_lab.core.model import TaskRecord

from .redo_log import SET_MARK

log = logging.getLogger("real_cluster.taskdb")

# tasks_label holds labelled rows only (a query `label = x` uses it): an unlabelled task's commit writes one index page
# less (strace of 1,000 one-task commits: 9 -> 7 pwrites each). A database from before keeps its full index
# until opened here, then it is rebuilt partial (see TaskDB.__init__)
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (msg_id TEXT PRIMARY KEY, client_id TEXT, label TEXT, flags TEXT,
    submitted REAL, started REAL, completed REAL, received REAL, engine_id INTEGER, status TEXT,
    payload BLOB, result BLOB, ename TEXT, evalue TEXT, traceback TEXT, engine_info TEXT,
    resubmitted TEXT, resubmit_of TEXT, stdout TEXT, stderr TEXT, attempts INTEGER DEFAULT 0,
    error_full TEXT);   -- error_full: the whole error text (<= 1 MiB characters) when evalue/traceback were cut
CREATE INDEX IF NOT EXISTS tasks_label ON tasks(label) WHERE label IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_submitted ON tasks(submitted);
CREATE TABLE IF NOT EXISTS records ({", ".join(TaskRecord.fields())});
CREATE TABLE IF NOT EXISTS purged (msg_id TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS functions (digest BLOB PRIMARY KEY, bytes BLOB);  -- fncache.py: tasks name them by digest
"""
# A new row names only the columns it sets (the others are NULL, attempts 0): fewer parameters to bind
_INSERT = ("INSERT INTO tasks (msg_id, client_id, label, flags, submitted, status, payload, resubmit_of) "
           "VALUES (?,?,?,?,?,'pending',?,?)")
_FINISH_PENDING = ("UPDATE tasks SET status=?, engine_id=?, started=?, completed=?, received=?, result=?, ename=?, "
                   "evalue=?, traceback=?, engine_info=?, stdout=?, stderr=? WHERE msg_id=? AND status='pending'")
# ... and so does the usual outcome, a success that printed nothing (its other columns are still NULL); it
# sets attempts too, so that a dispatch count queued in the same commit need not be written (see commit)
_FINISH_OK = ("UPDATE tasks SET status='ok', engine_id=?, started=?, completed=?, received=?, result=?, attempts=? "
              "WHERE msg_id=? AND status='pending'")
# ... and a task whose success arrives while its insert still waits in the queue (the writer idle: nothing in flight)
# is inserted final, in one row write instead of an insert and an update (see finish_task; callgrind of a commit
# of insert + outcome + record: ~18k instructions per task less, bench_cpu_split.py)
_INSERT_OK = ("INSERT INTO tasks (msg_id, client_id, label, flags, submitted, status, payload, resubmit_of, engine_id, "
              "started, completed, received, result, attempts) VALUES (?,?,?,?,?,'ok',?,?,?,?,?,?,?,?)")
_RECORDS = f"INSERT INTO records VALUES ({','.join('?' * len(TaskRecord.fields()))})"     # args: a list of rows
_ATTEMPTS = "UPDATE tasks SET attempts=? WHERE msg_id=? AND status='pending'"
_FUNCTION = "INSERT OR IGNORE INTO functions (digest, bytes) VALUES (?, ?)"
_ERROR_FULL = "UPDATE tasks SET error_full=? WHERE msg_id=? AND error_full IS NULL"
_KIND_ORDER = {_INSERT: 0, _INSERT_OK: 0, _ATTEMPTS: 1, _FINISH_PENDING: 2, _FINISH_OK: 2, _RECORDS: 3}


def commit(db: sqlite3.Connection, chunk: list[tuple[int, str, Any, int]], mark: tuple | None = None) -> None:
    """Commit one chunk of queued writes `(seq, sql, args, nbytes)` in one transaction, with the redo log's `mark`.

    One executemany per kind of write (bench_live.py, burst): inserts, then dispatch counts, then outcomes,
    then records, then the rest in queue order. A row's own writes keep their order (a task is inserted
    before it is dispatched, dispatched before it ends), and the transaction commits them all or none."""
    kinds: dict[str, list] = {}
    rest: list[tuple[str, list]] = []       # other writes: runs of one statement, in queue order
    for op in chunk:
        sql = op[1]
        if sql in _KIND_ORDER:
            rows = kinds.get(sql)
            if rows is None:
                rows = kinds[sql] = []
            if sql == _RECORDS:
                rows.extend(op[2])
            else:
                rows.append(op[2])
        elif rest and rest[-1][0] == sql:
            rest[-1][1].append(op[2])
        else:
            rest.append((sql, [op[2]]))
    if _INSERT in kinds and _FINISH_OK in kinds:
        _merge_successes(kinds)
    if _ATTEMPTS in kinds and (_FINISH_OK in kinds or _INSERT_OK in kinds):    # a success sets attempts itself:
        done = {args[-1] for args in kinds.get(_FINISH_OK, ())}                # its counts are moot
        done.update(args[0] for args in kinds.get(_INSERT_OK, ()))
        kinds[_ATTEMPTS] = [args for args in kinds[_ATTEMPTS] if args[1] not in done]
    db.execute("BEGIN IMMEDIATE")
    try:
        for sql, rows in sorted(kinds.items(), key=lambda kv: _KIND_ORDER[kv[0]]) + rest:
            try:
                db.executemany(sql, rows)
            except sqlite3.IntegrityError:    # a duplicate the controller let through: refuse that row alone
                for args in rows:
                    try:
                        db.execute(sql, args)
                    except sqlite3.IntegrityError as exc:
                        log.error("task database refused a write (%s): %s", exc, args[:1])
        if mark is not None:                # (token, last seq): what the redo log holds past it, SQLite lacks
            db.execute(SET_MARK, mark)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _merge_successes(kinds: dict[str, list]) -> None:
    """A success whose insert is in the same commit is written as one final row (_INSERT_OK), as `_fold` does
    in the queue: in a burst the fold is mostly refused (the insert is in the redo log already). Measured on
    chunks shaped like a burst's (300 tasks: inserts, dispatch counts, successes, records; WAL, on a file):
    6.0 -> 5.75 µs of `commit` a task. Small: the update finds its row in pages the insert just wrote; most of the
    writer thread's ~20 µs a burst task is its wake-ups and its turns at the GIL, not SQL."""
    finishes: dict[str, tuple] = {}
    later: list[tuple] = []                 # a second outcome for one id (never sent): left as it was, after
    for args in kinds[_FINISH_OK]:
        if args[-1] in finishes:
            later.append(args)
        else:
            finishes[args[-1]] = args
    inserts: list[tuple] = []
    merged: list[tuple] = []
    for args in kinds[_INSERT]:
        outcome = finishes.pop(args[0], None)
        if outcome is None:
            inserts.append(args)
        else:                               # _INSERT's columns, then _FINISH_OK's but the id
            merged.append((*args, *outcome[:-1]))
    if not merged:
        return
    for sql, rows in ((_INSERT, inserts), (_FINISH_OK, [*finishes.values(), *later])):
        if rows:
            kinds[sql] = rows
        else:
            del kinds[sql]
    kinds.setdefault(_INSERT_OK, []).extend(merged)
