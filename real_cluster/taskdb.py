"""The controller's task database: SQLite, a file in the profile (durable) or in memory.

Every task's row holds its flags, timestamps (seconds since the epoch, to the microsecond), engine, status
(`pending` | `ok` | `error`), the opaque request payload and result bytes, and the error fields.
The core's TaskRecords (one per attempt) go to a second table. Writes are queued and committed
in batches (`flush`), one transaction per batch; every read flushes first, so reads see all writes.
Queries take ipyparallel's Mongo-style form: `{"label": "x", "submitted": {"$gt": t}}` with the
operators `$lt $gt $lte $gte $eq $ne $in $nin $exists $mod`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from sched_lab.core.model import TaskRecord

COLUMNS = ("msg_id", "client_id", "label", "flags", "submitted", "started", "completed", "received",
           "engine_id", "status", "payload", "result", "ename", "evalue", "traceback", "engine_info",
           "resubmitted", "resubmit_of", "stdout", "stderr")
_BLOBS = ("payload", "result")
_JSON = ("flags", "engine_info")
_OPS = {"$lt": "<", "$gt": ">", "$lte": "<=", "$gte": ">=", "$eq": "=", "$ne": "!="}
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS tasks (msg_id TEXT PRIMARY KEY, client_id TEXT, label TEXT, flags TEXT,
    submitted REAL, started REAL, completed REAL, received REAL, engine_id INTEGER, status TEXT,
    payload BLOB, result BLOB, ename TEXT, evalue TEXT, traceback TEXT, engine_info TEXT,
    resubmitted TEXT, resubmit_of TEXT, stdout TEXT, stderr TEXT);
CREATE INDEX IF NOT EXISTS tasks_label ON tasks(label);
CREATE INDEX IF NOT EXISTS tasks_submitted ON tasks(submitted);
CREATE TABLE IF NOT EXISTS records ({", ".join(TaskRecord.fields())});
"""


def _us(ts: float | None) -> float | None:
    """A timestamp rounded to the microsecond, the resolution of the datetimes clients compare it with."""
    return None if ts is None else round(ts, 6)


class TaskDB:
    """A task database at `path` (a file, or ":memory:")."""

    def __init__(self, path: str = ":memory:"):
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
        for name in ("stdout", "stderr"):           # a database written before output capture
            if name not in have:
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} TEXT")
        self._inserts: list[tuple] = []
        self._updates: list[tuple] = []
        self._records: list[tuple] = []
        self._other: list[tuple[str, tuple]] = []

    @property
    def dirty(self) -> bool:
        """Whether writes are waiting for `flush`."""
        return bool(self._inserts or self._updates or self._records or self._other)

    # ------------------------------------------------------------------------------ writes
    def add_task(self, msg_id: str, client_id: str | None, flags: dict[str, Any], submitted: float | None,
                 payload: bytes, resubmit_of: str | None = None) -> None:
        """Queue a new pending task."""
        self._inserts.append((msg_id, client_id, flags.get("label"), json.dumps(flags), _us(submitted), None, None,
                              None, None, "pending", payload, None, None, None, None, None, None, resubmit_of,
                              None, None))

    def finish_task(self, msg_id: str, status: str, engine_id: int | None, started: float | None,
                    completed: float | None, received: float, result: bytes | None, ename: str | None = None,
                    evalue: str | None = None, traceback: str | None = None,
                    engine_info: dict | None = None, stdout: str = "", stderr: str = "") -> None:
        """Queue a task's final outcome (with the output it printed, as captured by its engine)."""
        self._updates.append((status, engine_id, _us(started), _us(completed), _us(received), result, ename, evalue,
                              traceback, json.dumps(engine_info) if engine_info else None, stdout or None,
                              stderr or None, msg_id))

    def set_resubmitted(self, msg_id: str, new_id: str) -> None:
        """Queue: `msg_id` was resubmitted as `new_id`."""
        self._other.append(("UPDATE tasks SET resubmitted=? WHERE msg_id=?", (new_id, msg_id)))

    def add_records(self, records: Iterable[TaskRecord]) -> None:
        """Queue the core's per-attempt records."""
        self._records.extend((str(row[0]), *row[1:]) for row in (r.to_row() for r in records))

    def flush(self) -> None:
        """Commit every queued write in one transaction.

        Raises sqlite3.Error when the disk or database refuses the writes; they stay queued (in order,
        ahead of later ones) and the next `flush` tries again, so a disk that recovers loses nothing.
        """
        if not self.dirty:
            return
        inserts, updates, records, other = self._inserts, self._updates, self._records, self._other
        self._inserts, self._updates, self._records, self._other = [], [], [], []
        try:
            self._commit(inserts, updates, records, other)
        except BaseException:
            self._inserts, self._updates = inserts + self._inserts, updates + self._updates
            self._records, self._other = records + self._records, other + self._other
            raise

    def _commit(self, inserts: list[tuple], updates: list[tuple], records: list[tuple],
                other: list[tuple[str, tuple]]) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            if inserts:
                db.executemany(f"INSERT OR REPLACE INTO tasks VALUES ({','.join('?' * len(COLUMNS))})", inserts)
            if updates:
                db.executemany("UPDATE tasks SET status=?, engine_id=?, started=?, completed=?, received=?, "
                               "result=?, ename=?, evalue=?, traceback=?, engine_info=?, stdout=?, stderr=? WHERE msg_id=?", updates)
            if records:
                db.executemany(f"INSERT INTO records VALUES ({','.join('?' * len(TaskRecord.fields()))})", records)
            for sql, args in other:
                db.execute(sql, args)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def fail_pending(self, received: float, ename: str, evalue: str) -> int:
        """Mark every task still pending (left over from a previous controller) as failed; returns how many."""
        self.flush()
        cur = self._db.execute("UPDATE tasks SET status='error', ename=?, evalue=?, received=? WHERE status='pending'",
                               (ename, evalue, received))
        return cur.rowcount

    def purge(self, msg_ids: list[str] | None) -> list[str]:
        """Delete finished tasks (all when `msg_ids` is None); returns the ids deleted."""
        self.flush()
        if msg_ids is None:
            ids = [r[0] for r in self._db.execute("SELECT msg_id FROM tasks WHERE status != 'pending'")]
        else:
            ids = []
            for lo in range(0, len(msg_ids), 500):       # SQLite caps the number of variables per statement
                part = msg_ids[lo:lo + 500]
                ids.extend(r[0] for r in self._db.execute(
                    f"SELECT msg_id FROM tasks WHERE status != 'pending' AND msg_id IN ({','.join('?' * len(part))})",
                    part))
        try:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM tasks WHERE msg_id=?", [(i,) for i in ids])
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return ids

    # ------------------------------------------------------------------------------- reads
    def get(self, msg_id: str) -> dict[str, Any] | None:
        """One task's row as a dict (None when unknown)."""
        rows = self.query({"msg_id": msg_id})
        return rows[0] if rows else None

    def hub_history(self) -> list[str]:
        """Every task id, oldest submission first."""
        self.flush()
        return [r[0] for r in self._db.execute("SELECT msg_id FROM tasks ORDER BY submitted, rowid")]

    def query(self, query: dict[str, Any], keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows matching a Mongo-style query; `keys` selects columns (msg_id always; blobs only if asked)."""
        self.flush()
        if keys is None:
            cols = [c for c in COLUMNS if c not in _BLOBS]
        else:
            bad = [k for k in keys if k not in COLUMNS]
            if bad:
                raise KeyError(f"unknown task fields {bad}")
            cols = ["msg_id"] + [k for k in keys if k != "msg_id"]
        where, args = self._where(query)
        sql = f"SELECT {', '.join(cols)} FROM tasks{where} ORDER BY submitted, rowid"
        out = []
        for row in self._db.execute(sql, args):
            rec = dict(zip(cols, row))
            for name in _JSON:
                if rec.get(name):
                    rec[name] = json.loads(rec[name])
            out.append(rec)
        return out

    def records(self) -> list[TaskRecord]:
        """Every stored TaskRecord (task ids as strings)."""
        self.flush()
        return [TaskRecord.from_row(row) for row in self._db.execute("SELECT * FROM records")]

    @staticmethod
    def _where(query: dict[str, Any]) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        args: list[Any] = []
        if not isinstance(query, dict):
            raise TypeError("a query is a dict of field -> value or {operator: value}")
        for key, cond in query.items():
            if key not in COLUMNS or key in _BLOBS:
                raise KeyError(f"cannot query on {key!r}")
            conds = cond if isinstance(cond, dict) else {"$eq": cond}
            for op, value in conds.items():
                if op in ("$in", "$nin"):
                    values = list(value)
                    neg = "NOT " if op == "$nin" else ""
                    clauses.append(f"{key} {neg}IN ({','.join('?' * len(values))})" if values
                                   else ("1=1" if neg else "1=0"))
                    args.extend(values)
                elif op == "$exists":
                    clauses.append(f"{key} IS {'NOT ' if value else ''}NULL")
                elif op == "$mod":
                    if (not isinstance(value, (list, tuple)) or len(value) != 2
                            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value) or not value[0]):
                        raise ValueError(f"$mod takes [divisor, remainder] (ints, divisor not 0), not {value!r}")
                    clauses.append(f"{key} % ? = ?")
                    args.extend(value)
                elif op in _OPS:
                    if value is None and op in ("$eq", "$ne"):
                        clauses.append(f"{key} IS {'NOT ' if op == '$ne' else ''}NULL")
                    else:
                        clauses.append(f"{key} {_OPS[op]} ?")
                        args.append(value)
                else:
                    raise KeyError(f"unsupported query operator {op!r}")
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def close(self) -> None:
        """Flush and close."""
        try:
            self.flush()
        finally:
            self._db.close()
