"""The controller's task database: SQLite, a file in the profile (durable) or in memory.

Every task's row holds its flags, timestamps (seconds since the epoch, to the microsecond), engine, status
(`pending` | `ok` | `error`), the number of attempts dispatched, the opaque request payload and
result bytes, and the error fields. The core's TaskRecords (one per attempt) go to a second table;
the ids of purged tasks to a third, so that a task id is never used twice in one database.
Queries take ipyparallel's Mongo-style form: `{"label": "x", "submitted": {"$gt": t}}` with the
operators `$lt $gt $lte $gte $eq $ne $in $nin $exists $mod`.

How this works. Writes never run on the caller's thread for a file database: each write is queued
with a sequence number and a writer thread (its own SQLite connection) commits the queue in group
commits of at most WRITE_CHUNK_ROWS rows / WRITE_CHUNK_BYTES bytes, then calls `on_commit(seq)`
(thread-safe hand-off is the caller's job). Given `schedule`, it commits when asked (`request_commit`:
an answer waits for its rows) rather than after every write. While the database refuses writes (disk full, locked by
another process, read-only) the writer keeps the queue, calls `on_error(exc)` once, and retries
with backoff; the backlog lands chunk by chunk once it can. Reads run on the caller's connection
and see committed rows only: the controller reads once the writes before a request have committed.
An in-memory database has no writer thread: writes run at once and are committed when they return.

Inline commits. Handing a batch to the writer thread costs two thread wake-ups and a GIL tug of war
(futex storms: strace of the controller in bench_live.py), more than the commit itself (~0.06 ms, WAL,
synchronous=NORMAL). So when the caller's loop asks for a commit (`request_commit`) while the writer is
idle, the commit runs right there on a connection of its own that never waits for a lock (busy timeout 0)
and never checkpoints (the writer does, every INLINE_CHECKPOINT_EVERY inline commits), if the batch is small
(INLINE_MAX_ROWS, INLINE_MAX_BYTES). A bigger batch — a burst's — goes to the writer thread: there its commit
runs beside the loop (sqlite3 lets go of the GIL while it writes), so the loop keeps handing out tasks (paired
runs, bench_live.py workloads: burst +8.6 %, CPU per task -5 to -7 % against bounded chunks inline). Anything
else — a lock held by another process, a full disk — falls back to the writer thread too, which waits,
retries and reports as described above; `on_commit` is called the same way.

Redo log (the controller's database: `redo=True`; redo_log.py). An answer needs its writes to survive a
SIGKILL, not to be in SQLite yet: `request_durable` appends them to the redo log in one write at the next
loop turn (~4 µs where the inline commit took ~70-90 µs of the loop, in an `apply_sync` round trip) and tells
`on_commit`. It asks for no commit: SQLite takes those writes at the owner's next `request_commit` (the
controller's, every DB_FLUSH_INTERVAL_S, or a query's), which hands them to the writer thread. Once woken, the
writer commits whatever is queued for as long as writes keep coming, so in a steady `apply_sync` stream it commits
every 2-3 round trips rather than once a flush (strace; committing only what was asked for measured no better:
docs/performance-history.md, "A waiting caller reads its own answers"). (A
lazy commit asked for after each append ran inline every ~5 ms, ~0.2 ms of the loop each time, and held up
whatever message came meanwhile: `benchmarks/bench_ab.py`, 24 paired blocks, round trip 0.96x and the cluster's
CPU per round trip 0.96x without it.)
`durable_seq` counts what is in either; `committed_seq` (what reads see) only SQLite. Opening the database
replays what the log holds past SQLite's mark.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Collection, Iterable
from typing import Any

from sched_lab.core.model import TaskRecord

from .fncache import whole_payload
from .redo_log import MAX_APPEND_BYTES, open_log, replay
from .taskdb_fast import IdFilter, _us, install_fast_adapters  # noqa: F401 (install_fast_adapters: re-exported)
from .taskdb_sql import (
    _ATTEMPTS, _ERROR_FULL, _FINISH_OK, _FINISH_PENDING, _FUNCTION, _INSERT, _INSERT_OK, _RECORDS, _SCHEMA, commit,
)

log = logging.getLogger("real_cluster.taskdb")
COLUMNS = ("msg_id", "client_id", "label", "flags", "submitted", "started", "completed", "received",
           "engine_id", "status", "payload", "result", "ename", "evalue", "traceback", "engine_info",
           "resubmitted", "resubmit_of", "stdout", "stderr", "attempts")
_BLOBS = ("payload", "result")
ON_REQUEST = ("error_full",)    # columns a query returns only when asked for by name (not in COLUMNS: not inserted)
_JSON = ("flags", "engine_info")
_OPS = {"$lt": "<", "$gt": ">", "$lte": "<=", "$gte": ">=", "$eq": "=", "$ne": "!="}
WRITE_CHUNK_ROWS = 2000            # one transaction holds at most this many queued writes ...
WRITE_CHUNK_BYTES = 8 << 20        # ... or about this many payload/result bytes (a backlog lands in bounded bites)
GROUP_COMMIT_WAIT_S = 0.005        # a lazy commit request (answers already batched) waits this long for company
WRITE_RETRY_MAX_S = 2.0            # while the database refuses writes, retry at most this far apart
WRITER_BUSY_TIMEOUT_S = 1.0        # the writer waits this long for another process's lock per attempt
INLINE_MAX_ROWS = 32               # a batch of more writes than this ... (a burst: its commits run beside the loop,
INLINE_MAX_BYTES = 256 << 10       # ... or payload/result bytes goes to the writer thread   which keeps dispatching)
INLINE_CHECKPOINT_EVERY = 256      # inline commits between two WAL checkpoints by the writer thread
REDO_OPEN_TIMEOUT_S = 10.0         # replaying the redo log at open waits this long for another process's lock


class TaskIdInUse(ValueError):
    """A submission reused a task id this database already holds (or once held: purged ids stay taken)."""


class TaskDB:
    """A task database at `path` (a file, or ":memory:").

    `on_commit(seq)` / `on_error(exc)` are called from the writer thread (file databases only). With
    `schedule(delay_s, fn)` (the event loop's call_later), the writer commits when asked
    (`request_commit`, at most once per loop turn) rather than after every write.
    """

    def __init__(self, path: str = ":memory:", on_commit: Callable[[int], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 schedule: Callable[[float, Callable[[], None]], Any] | None = None, redo: bool = False):
        self.path = path
        self.memory = path == ":memory:"
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   timeout=0.05)    # reads on the event loop never wait long for a lock
        if not self.memory:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "WHERE" not in self._db.execute("SELECT sql FROM sqlite_master WHERE name='tasks_label'").fetchone()[0]:
            try:                                # an older database's full index (locked by another: kept, it works)
                self._db.executescript("BEGIN IMMEDIATE; DROP INDEX tasks_label;" + _SCHEMA + "COMMIT;")
            except sqlite3.OperationalError:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
        have = {row[1] for row in self._db.execute("PRAGMA table_info(tasks)")}
        for name, kind in (("stdout", "TEXT"), ("stderr", "TEXT"), ("attempts", "INTEGER DEFAULT 0"),
                           ("error_full", "TEXT")):
            if name not in have:                    # a database written by an older version
                self._db.execute(f"ALTER TABLE tasks ADD COLUMN {name} {kind}")
        # the redo log (redo_log.py; the controller's database only): replayed here, before anything is read
        self.redo = open_log(path + ".redo", path, self._commit, REDO_OPEN_TIMEOUT_S) \
            if redo and not self.memory else None
        if not redo and not self.memory and os.path.exists(path + ".redo"):     # left by a controller that had one
            replay(path + ".redo", path, self._commit, REDO_OPEN_TIMEOUT_S)
            os.unlink(path + ".redo")
        self._log_scheduled = False          # a redo log append is scheduled
        self.queued_seq = 0                  # writes queued so far
        self.committed_seq = 0               # writes committed so far
        self.error: BaseException | None = None       # the writer's latest failure, None once it succeeds again
        self._on_commit = on_commit
        self._on_error = on_error
        self._ops: list[tuple[int, str, tuple, int]] = []      # (seq, sql, args, payload/result bytes)
        self.queued_bytes = 0             # payload/result bytes queued and not yet committed (backpressure)
        self._new_ids: deque[tuple[int, str]] = deque()     # inserts not committed yet (for is_id_used)
        self._new_set: set[str] = set()
        self._insert_seq: dict[str, int] = {}    # queued inserts of tasks not finished yet: id -> write seq (folding)
        # outcomes queued, not committed (oldest first). An OrderedDict, not a dict: `forget_committed` drops from
        # the front, and a dict's first key after front deletions is found by scanning past every deleted slot
        # (an abort of 100,000 queued tasks spent 4.9 s of the controller's CPU there, under cProfile)
        self._unsaved: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self._fn_queued: OrderedDict[bytes, tuple[int, bytes]] = OrderedDict()  # function bytes not committed yet
        self._ids = IdFilter()
        for (msg_id,) in self._db.execute("SELECT msg_id FROM tasks UNION ALL SELECT msg_id FROM purged"):
            self._ids.add(msg_id)
        self._lock = threading.Lock()           # the queue's; `with self._lock` is cheaper than the Condition's
        self._cond = threading.Condition(self._lock)
        self._flags_doc: Any = None             # the last flags dict stored and its JSON (one dict serves most tasks)
        self._flags_json = ""
        self._writer_idle = False            # the writer waits for work: the next write must wake it
        self._schedule = schedule
        self._wake_scheduled = False         # a wake-up at once is scheduled
        self._lazy_scheduled = False         # a wake-up after GROUP_COMMIT_WAIT_S is scheduled
        self._closing = False
        self.commits = 0                     # transactions committed by the writer (group commit: << writes)
        self.inline_commits = 0              # ... of them committed inline, on the caller's loop
        self._checkpoint_due = False         # the writer should checkpoint the WAL (inline commits never do)
        self._inline: sqlite3.Connection | None = None
        self._writer: threading.Thread | None = None
        if not self.memory:
            self._inline = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
            self._inline.execute("PRAGMA synchronous=NORMAL")
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
            self._writer = threading.Thread(target=self._write_loop, name="taskdb-writer", daemon=True)
            self._writer.start()

    @property
    def dirty(self) -> bool:
        """Whether queued writes have not been committed yet."""
        return self.committed_seq < self.queued_seq

    @property
    def durable_seq(self) -> int:
        """Writes up to here survive a SIGKILL of this process: committed, or in the redo log."""
        redo = self.redo
        return self.committed_seq if redo is None or redo.logged_seq < self.committed_seq else redo.logged_seq

    def _mark(self, chunk: list[tuple[int, str, Any, int]]) -> tuple[bytes, int] | None:
        return None if self.redo is None else (self.redo.token, chunk[-1][0])

    # ------------------------------------------------------------------------------ writes
    def _queue(self, sql: str, args: tuple, nbytes: int = 0) -> int:
        if self.memory:
            (self._db.executemany if sql == _RECORDS else self._db.execute)(sql, args)
            self.queued_seq += 1
            self.committed_seq = self.queued_seq
            return self.queued_seq
        with self._lock:
            self.queued_seq += 1
            self._ops.append((self.queued_seq, sql, args, nbytes))
            self.queued_bytes += nbytes
            if self._writer_idle and self._schedule is None:
                self._writer_idle = False
                self._cond.notify()
            return self.queued_seq

    def request_commit(self, lazy: bool = False) -> None:
        """Someone waits for the writes queued so far: have the writer commit them (at most once per loop turn).

        With `schedule`, writes alone do not wake the writer: a submission, its dispatch and its outcome
        usually share one commit, made when an answer needs it (bench_live.py, apply_sync round trip).
        `lazy`: the answer can wait GROUP_COMMIT_WAIT_S, so that a burst shares fewer, bigger commits
        (bench_live.py, async burst).
        """
        if not self._writer_idle or not self.dirty:
            return
        if self._schedule is None:
            self._wake()
        elif not lazy:
            if not self._wake_scheduled:
                self._wake_scheduled = True
                self._schedule(0, self._commit_soon)
        elif not self._lazy_scheduled and not self._wake_scheduled:
            self._lazy_scheduled = True
            self._schedule(GROUP_COMMIT_WAIT_S, self._commit_soon)

    def request_durable(self, lazy: bool = False) -> None:
        """An answer waits for the writes queued so far to survive a SIGKILL: with a redo log, they are appended to
        it at the next loop turn (one write) and committed to SQLite at the owner's next `request_commit`; else
        `request_commit`."""
        redo = self.redo
        if lazy or redo is None or self._schedule is None or not redo.usable(self.committed_seq):
            return self.request_commit(lazy)
        if not self._log_scheduled and self.durable_seq < self.queued_seq:
            self._log_scheduled = True
            self._schedule(0, self._log_soon)

    def _log_soon(self) -> None:
        """Append every write not yet durable to the redo log and tell `on_commit` (no commit asked for: see the
        module doc, "Redo log")."""
        self._log_scheduled = False
        redo = self.redo
        assert redo is not None
        with self._lock:
            ops = self._ops                 # (uncommitted, consecutive: the first is committed_seq + 1 <= durable + 1)
            todo = ops[self.durable_seq + 1 - ops[0][0]:] if ops else ops
            queued = self.queued_seq
        if todo and (sum(op[3] for op in todo) > MAX_APPEND_BYTES or not redo.append(todo, self.committed_seq, queued)):
            return self.request_commit()        # large: SQLite takes it (the log would copy it all)
        if self._on_commit is not None:
            self._on_commit(self.durable_seq)

    def _commit_soon(self) -> None:
        """A scheduled commit request: inline if the batch is small and the writer idle, else by the writer."""
        if not self._commit_inline():
            self._wake()

    def _wake(self) -> None:
        with self._cond:
            self._wake_scheduled = self._lazy_scheduled = False
            if self._writer_idle:
                self._writer_idle = False
                self._cond.notify()

    def _commit_inline(self) -> bool:
        """Commit the queued writes here and now if they are few (see "Inline commits"); False if the writer must
        take them.

        Runs under the writer's lock while the writer is idle, so the two never commit at once; a lock held
        by anyone else fails at once (busy timeout 0) and leaves the batch to the writer.
        """
        with self._cond:
            self._wake_scheduled = self._lazy_scheduled = False
            ops = self._ops
            if self._inline is None or not self._writer_idle or not ops or self._closing or self.error is not None \
                    or len(ops) > INLINE_MAX_ROWS or self.queued_bytes > INLINE_MAX_BYTES:
                return False
            try:
                self._commit(self._inline, ops, self._mark(ops))
            except sqlite3.Error as exc:
                log.debug("inline commit failed, the writer thread takes the batch: %s", exc)
                return False
            seq = ops[-1][0]
            ops.clear()
            self.queued_bytes = 0
            self.committed_seq = seq
            self.commits += 1
            self.inline_commits += 1
            if self.inline_commits % INLINE_CHECKPOINT_EVERY == 0:
                self._checkpoint_due = True
                self._writer_idle = False
                self._cond.notify()
        if self._on_commit is not None:
            self._on_commit(seq)
        return True

    def is_id_used(self, msg_id: str) -> bool:
        """Whether `msg_id` names a stored, queued or purged task; raises sqlite3.Error if it cannot be read."""
        if msg_id not in self._ids:
            return False
        new = self._new_ids
        while new and new[0][0] <= self.committed_seq:
            self._new_set.discard(new.popleft()[1])
        if msg_id in self._new_set:
            return True
        return self._db.execute("SELECT 1 FROM tasks WHERE msg_id=? UNION ALL SELECT 1 FROM purged WHERE msg_id=?",
                                (msg_id, msg_id)).fetchone() is not None

    def add_task(self, msg_id: str, client_id: str | None, flags: dict[str, Any], submitted: float | None,
                 payload: bytes, resubmit_of: str | None = None) -> int:
        """Queue a new pending task; returns its write's sequence number.

        A task id already stored raises TaskIdInUse (in memory) or is refused by the writer (logged).
        """
        if self.memory and self.is_id_used(msg_id):
            raise TaskIdInUse(f"task id {msg_id!r} is already in use")
        self._ids.add(msg_id)
        if flags is not self._flags_doc:        # the caller passes one dict for the default flags: dumped once
            self._flags_doc, self._flags_json = flags, json.dumps(flags)
        seq = self._queue(_INSERT, (msg_id, client_id, flags.get("label"), self._flags_json, _us(submitted), payload,
                                    resubmit_of), len(payload))
        if not self.memory:
            self._new_ids.append((seq, msg_id))
            self._new_set.add(msg_id)
            self._insert_seq[msg_id] = seq
        return seq

    def set_attempts(self, msg_id: str, attempts: int) -> int:
        """Queue: the task's `attempts`-th run (counting from 1) was dispatched (a restart retries or fails it)."""
        return self._queue(_ATTEMPTS, (attempts, msg_id))

    def finish_task(self, msg_id: str, status: str, engine_id: int | None, started: float | None,
                    completed: float | None, received: float, result: bytes | None, ename: str | None = None,
                    evalue: str | None = None, traceback: str | None = None,
                    engine_info: dict | None = None, stdout: str = "", stderr: str = "", answer: Any = None,
                    attempts: int | None = None) -> int:
        """Queue a task's final outcome, with the output it printed (a row already final is never rewritten).

        `attempts`, when given, is the dispatch count as of this outcome (its last `set_attempts`): a success
        then writes it with the outcome and the dispatch counts of that task in the same commit are skipped.

        A success whose insert has not left the queue yet is folded into it (`_fold`: the row is inserted final).
        `answer` (what the caller told clients, e.g. the TaskResult) is kept until the row has committed:
        `unsaved_answer(msg_id)` returns it meanwhile, when the row itself still reads as pending.
        """
        insert_seq = self._insert_seq.pop(msg_id, None)
        if status == "ok" and ename is None and evalue is None and traceback is None and not engine_info \
                and not stdout and not stderr and attempts is not None:
            stamps = _us(started), _us(completed), _us(received)    # (rounded once, for whichever write follows)
            if insert_seq is not None and self._fold(insert_seq, msg_id, (engine_id, *stamps, result, attempts)):
                seq = self.queued_seq       # (the answer's stamp: later than anything before it, as below)
            else:                           # (refused once the insert is in the redo log: most of a burst's tasks)
                seq = self._queue(_FINISH_OK, (engine_id, *stamps, result, attempts, msg_id),
                                  len(result) if result else 0)
        else:
            seq = self._queue(_FINISH_PENDING, (status, engine_id, _us(started), _us(completed), _us(received), result,
                                                ename, evalue, traceback,
                                                json.dumps(engine_info) if engine_info else None,
                                                stdout or None, stderr or None, msg_id),
                              len(result) if result else 0)
        if answer is not None and self.dirty:
            self._unsaved[msg_id] = (seq, answer)
        return seq

    def _fold(self, insert_seq: int, msg_id: str, outcome: tuple) -> bool:
        """Make the queued insert `insert_seq` of `msg_id` write the finished row (`outcome`: _INSERT_OK's last
        columns); False if it cannot (committed or being committed: then the outcome is queued as an update).

        Only while the writer is idle (under its lock): then no queued write is in flight, and an inline commit
        runs on this same thread. The queue holds consecutive sequence numbers, so the insert is found by index.
        """
        with self._lock:
            ops = self._ops
            if not self._writer_idle or not ops or (self.redo is not None and insert_seq <= self.redo.logged_seq):
                return False            # (an insert already in the redo log: the outcome must be a write of its own)
            i = insert_seq - ops[0][0]
            if i < 0 or i >= len(ops) or ops[i][1] != _INSERT or ops[i][2][0] != msg_id:
                return False
            _, _, args, nbytes = ops[i]
            extra = len(outcome[4]) if outcome[4] else 0
            ops[i] = (insert_seq, _INSERT_OK, (*args, *outcome), nbytes + extra)
            self.queued_bytes += extra
            return True

    def add_function(self, digest: bytes, fn_bytes: bytes) -> int:
        """Queue the bytes of a function that tasks name by digest (fncache.py; kept once, never rewritten)."""
        seq = self._queue(_FUNCTION, (digest, fn_bytes), len(fn_bytes))
        if not self.memory:
            self._fn_queued.pop(digest, None)
            self._fn_queued[digest] = (seq, fn_bytes)
        return seq

    def function_bytes(self, digest: bytes) -> bytes | None:
        """The bytes of the function named `digest` (queued or stored), or None. Raises sqlite3.Error."""
        queued = self._fn_queued.get(digest)
        if queued is not None:
            return queued[1]
        row = self._db.execute("SELECT bytes FROM functions WHERE digest=?", (digest,)).fetchone()
        return row[0] if row is not None else None

    def keep_error_text(self, msg_id: str, text: str) -> int:
        """Queue the whole error text of a finished task (column error_full, written once; callers cap it: 1 MiB)."""
        return self._queue(_ERROR_FULL, (text, msg_id), len(text))

    def unsaved_answer(self, msg_id: str) -> Any:
        """The `answer` given with a task's outcome whose row has not committed yet, else None."""
        self.forget_committed()
        item = self._unsaved.get(msg_id)
        return item[1] if item is not None else None

    def forget_committed(self) -> None:
        """Drop the answers whose rows have committed (call after commits)."""
        unsaved, done = self._unsaved, self.committed_seq
        while unsaved and next(iter(unsaved.values()))[0] <= done:
            unsaved.popitem(last=False)
        queued = self._fn_queued
        while queued and next(iter(queued.values()))[0] <= done:
            queued.popitem(last=False)

    def set_resubmitted(self, msg_id: str, new_id: str) -> int:
        """Queue: `msg_id` was resubmitted as `new_id`."""
        return self._queue("UPDATE tasks SET resubmitted=? WHERE msg_id=?", (new_id, msg_id))

    def add_records(self, records: Iterable[TaskRecord]) -> int:
        """Queue the core's per-attempt records."""
        return self.add_record_rows([r.to_row() for r in records])

    def add_record_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Queue records given as rows in `TaskRecord.fields()` order (as a RecordSink receives them; the outcome
        an Outcome or its string): one queued write for all of them. (`str` makes an Outcome an exact str, which
        sqlite3 binds without an adapter search, in a C call where `.value` took two Python ones.)"""
        if not rows:
            return self.queued_seq
        return self._queue(_RECORDS, [(str(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], str(r[7]),
                                       *r[8:]) for r in rows])

    def purge(self, msg_ids: list[str] | None, keep: Collection[str] = ()) -> list[str]:
        """Queue the deletion of finished tasks (all when `msg_ids` is None) but those in `keep`; returns the ids
        (from committed rows). The ids stay taken (table `purged`): a later submission cannot reuse them.
        """
        self._check_readable()
        if msg_ids is None:
            ids = [r[0] for r in self._db.execute("SELECT msg_id FROM tasks WHERE status != 'pending'")]
        else:
            ids = [i for i, row in self.rows_by_id(msg_ids, ["status"]).items() if row["status"] != "pending"]
        if keep:
            ids = [i for i in ids if i not in keep]
        for i in ids:
            self._queue("INSERT OR IGNORE INTO purged VALUES (?)", (i,))
            self._queue("DELETE FROM tasks WHERE msg_id=?", (i,))
        return ids

    # ------------------------------------------------------------------------------ writer
    def _write_loop(self) -> None:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=WRITER_BUSY_TIMEOUT_S)
        db.execute("PRAGMA synchronous=NORMAL")   # per connection: in WAL mode a commit survives a process kill
        delay = 0.0
        try:
            while True:
                with self._cond:
                    while not self._ops and not self._closing and not self._checkpoint_due:
                        self._writer_idle = True
                        self._cond.wait()
                    self._writer_idle = False
                    checkpoint, self._checkpoint_due = self._checkpoint_due, False
                    if not self._ops and not checkpoint:
                        return
                if checkpoint:                  # inline commits never checkpoint: the WAL is folded back here
                    try:
                        db.execute("PRAGMA wal_checkpoint(PASSIVE)")
                    except sqlite3.Error as exc:
                        log.warning("task database: WAL checkpoint failed (tried again later): %s", exc)
                    continue
                with self._cond:
                    chunk = self._ops[:WRITE_CHUNK_ROWS]       # a quick copy: the event loop waits for this lock
                size = 0
                for n, op in enumerate(chunk):
                    size += op[3]
                    if size >= WRITE_CHUNK_BYTES:
                        del chunk[n + 1:]
                        break
                try:
                    self._commit(db, chunk, self._mark(chunk))
                except sqlite3.Error as exc:
                    if self.error is None and self._on_error is not None:
                        self._on_error(exc)
                    self.error = exc
                    if self._closing and delay >= WRITE_RETRY_MAX_S:
                        log.error("task database: %d queued writes are lost at stop: %s", len(self._ops), exc)
                        return
                    delay = min(max(delay * 2, 0.05), WRITE_RETRY_MAX_S)
                    with self._cond:
                        self._cond.wait(delay)
                    continue
                delay = 0.0
                with self._cond:
                    del self._ops[:len(chunk)]
                    self.queued_bytes -= sum(op[3] for op in chunk)
                    self.committed_seq = chunk[-1][0]
                self.commits += 1
                if self.error is not None:
                    log.warning("task database writes succeed again")
                    self.error = None
                if self._on_commit is not None:
                    self._on_commit(chunk[-1][0])
        finally:
            db.close()

    _commit = staticmethod(commit)     # (taskdb_sql.py)

    def wait_committed(self, seq: int | None = None, timeout_s: float = 10.0) -> bool:
        """Block until write `seq` (default: every write queued so far) has committed; False on timeout."""
        target = self.queued_seq if seq is None else seq
        deadline = time.monotonic() + timeout_s
        while self.committed_seq < target:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    # ------------------------------------------------------------------------------- reads
    def _check_readable(self) -> None:
        if self.error is not None and self.dirty:
            raise sqlite3.OperationalError(f"{self.error} ({self.queued_seq - self.committed_seq} writes waiting)")

    def pending_rows(self) -> list[dict[str, Any]]:
        """Tasks not final (left by a controller that died) in the order they arrived (a dependency before its
        dependents), with payload and attempts."""
        cols = ("msg_id", "client_id", "flags", "submitted", "payload", "attempts")
        rows = self._db.execute(f"SELECT {', '.join(cols)} FROM tasks WHERE status='pending' ORDER BY rowid")
        return [dict(zip(cols, row), flags=json.loads(row[2])) for row in rows]

    def outcomes(self, msg_ids: Iterable[str]) -> dict[str, tuple[bool, int | None]]:
        """Of these ids, the finished tasks': id -> (succeeded, engine id). Pending, purged or unknown ids are left out."""
        ids = list(msg_ids)
        out: dict[str, tuple[bool, int | None]] = {}
        for lo in range(0, len(ids), 500):               # SQLite caps the number of variables per statement
            part = ids[lo:lo + 500]
            out.update((r[0], (r[1] == "ok", r[2])) for r in self._db.execute(
                f"SELECT msg_id, status, engine_id FROM tasks WHERE status != 'pending' AND msg_id IN "
                f"({','.join('?' * len(part))})", part))
        return out

    def get(self, msg_id: str) -> dict[str, Any] | None:
        """One task's row as a dict (None when unknown)."""
        rows = self.query({"msg_id": msg_id})
        return rows[0] if rows else None

    def rows_by_id(self, msg_ids: list[str], keys: list[str]) -> dict[str, dict[str, Any]]:
        """`query` of these tasks' `keys`, 500 ids a statement (SQLite caps its variables): msg_id -> row."""
        out: dict[str, dict[str, Any]] = {}
        for lo in range(0, len(msg_ids), 500):
            out.update((row["msg_id"], row) for row in self.query({"msg_id": {"$in": msg_ids[lo:lo + 500]}}, keys))
        return out

    def result_sizes(self, msg_ids: list[str]) -> dict[str, int]:
        """Bytes of each stored task's result and output, without reading them (at most 500 ids)."""
        self._check_readable()
        return dict(self._db.execute(
            "SELECT msg_id, coalesce(length(result), 0) + coalesce(length(stdout), 0) + coalesce(length(stderr), 0) "
            f"FROM tasks WHERE msg_id IN ({','.join('?' * len(msg_ids))})", msg_ids))

    def hub_history(self) -> list[str]:
        """Every task id, oldest submission first."""
        self._check_readable()
        return [r[0] for r in self._db.execute("SELECT msg_id FROM tasks ORDER BY submitted, rowid")]

    def query(self, query: dict[str, Any], keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Rows matching a Mongo-style query; `keys` selects columns (msg_id always; blobs only if asked)."""
        self._check_readable()
        if keys is None:
            cols = [c for c in COLUMNS if c not in _BLOBS]
        else:
            bad = [k for k in keys if k not in COLUMNS and k not in ON_REQUEST]
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
        if "payload" in cols:           # a call kept by its function's digest is answered whole (fncache.py)
            for rec in out:
                rec["payload"] = whole_payload(rec["payload"], self.function_bytes)
        return out

    def records(self) -> list[TaskRecord]:
        """Every stored TaskRecord (task ids as strings)."""
        self._check_readable()
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

    def close(self, timeout_s: float = 10.0) -> None:
        """Commit what is queued (waiting up to `timeout_s` while the database refuses writes), then close.

        Raises sqlite3.OperationalError naming how many writes were lost if they could not land.
        """
        if self._writer is not None:
            with self._cond:
                self._closing = True
                self._cond.notify()
            self._writer.join(timeout_s)
            lost = self.queued_seq - self.committed_seq
            log.info("task database: %d writes in %d commits (%d inline)", self.committed_seq, self.commits,
                     self.inline_commits)
            if self._inline is not None:
                self._inline.close()
            self._db.close()
            if self.redo is not None:
                if not lost:
                    self.redo.reset()       # SQLite holds it all; else the next open replays what was answered
                self.redo.close()
            if lost:
                raise sqlite3.OperationalError(
                    f"{lost} queued writes could not be committed: {self.error}"
                    + (f" (the {self.redo.logged_seq - self.committed_seq} answered for are in the redo log and "
                       f"land at the next start)" if self.redo is not None and self.redo.logged_seq > self.committed_seq
                       else ""))
        else:
            self._db.close()
