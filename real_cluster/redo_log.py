"""The task database's redo log: an answer is durable once its writes are appended here, before SQLite has them.

Why. A client must not hear of a task before the controller's records of it survive a controller SIGKILL
(durable.py). A SQLite commit gives that, but costs the event loop ~70-90 µs for one task's rows (WAL,
synchronous=NORMAL: a table page, an index page and a WAL header rewritten, ~15 system calls), and
an `apply_sync` round trip waited for it. One `write` of the same writes to an append-only file survives
a SIGKILL just as well (both stop at the page cache: neither survives a power loss) and costs ~4 µs, so
an answer now waits for that, and the SQLite commit follows a little later with company
(taskdb.py: `request_durable`). A database locked by another process no longer holds answers either.

The file (`<database>.redo`, created 0600 next to the database):

    header   MAGIC (8) | token (16 random bytes, new each time the controller opens the database)
    record   length (u32) | crc32 of the body (u32) | body: marshal of [[seq, sql, args, nbytes], ...]

A record is a run of the task database's queued writes (TaskDB._ops) in sequence order. Each SQLite
commit also stores (token, the highest seq it holds) in table `redo_mark`, in the same transaction, so
whatever the log holds past that mark is exactly what SQLite lacks. Opening the database (`open_log`)
replays those writes in one transaction that moves the mark past them, then starts the log afresh under
a new token (the file first, then the mark: a crash in between leaves nothing to replay twice). A record
cut short or damaged ends the log (only a machine crash or a bad disk makes one); what follows it is
ignored and reported. Large writes (over MAX_APPEND_BYTES of payloads and results at once) are not logged:
their answers wait for SQLite as before (the log would copy them, and saves little on a large commit).
A write that fails (a full disk) is cut back off the file and the log steps aside:
answers wait for SQLite commits again until SQLite holds everything, then the log resumes. If the log
cannot be cut back, it stays off for the process's life (appending after a torn record would hide it).
The body is marshal, not pickle: this process's own file, and loading it runs no code.
"""

from __future__ import annotations

import logging
import marshal
import os
import sqlite3
import struct
import zlib
from typing import Any, Callable

log = logging.getLogger("real_cluster.taskdb")

MAGIC = b"SLREDO1\n"
TOKEN_BYTES = 16
HEADER_BYTES = len(MAGIC) + TOKEN_BYTES
RECORD = struct.Struct("!II")           # body length, crc32 of the body
TRUNCATE_BYTES = 1 << 20                # past this size, the log starts over once SQLite holds all it says
MAX_APPEND_BYTES = 256 << 10            # writes carrying more payload/result bytes than this wait for SQLite instead
MARK_SCHEMA = "CREATE TABLE IF NOT EXISTS redo_mark (id INTEGER PRIMARY KEY CHECK (id = 0), token BLOB, seq INTEGER)"
SET_MARK = "INSERT OR REPLACE INTO redo_mark (id, token, seq) VALUES (0, ?, ?)"

Op = tuple[int, str, Any, int]          # a queued write: (seq, sql, args, payload/result bytes)
Commit = Callable[..., None]            # TaskDB._commit(db, chunk, mark=(token, seq))


class RedoLogError(sqlite3.OperationalError):
    """The redo log holds writes the database would not take at open: nothing is lost, the log is kept."""


def read(path: str) -> tuple[bytes | None, list[Op], int]:
    """(token, the writes in order, bytes ignored after a damaged or cut record) of the log at `path`;
    (None, [], 0) when there is no log or no complete header."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return None, [], 0
    if len(data) < HEADER_BYTES or not data.startswith(MAGIC):
        return None, [], len(data)
    token, pos = data[len(MAGIC):HEADER_BYTES], HEADER_BYTES
    ops: list[Op] = []
    while pos + RECORD.size <= len(data):
        n, crc = RECORD.unpack_from(data, pos)
        body = data[pos + RECORD.size:pos + RECORD.size + n]
        if len(body) < n or zlib.crc32(body) != crc:
            break
        try:
            ops.extend(tuple(op) for op in marshal.loads(body))
        except (ValueError, EOFError, TypeError):
            break
        pos += RECORD.size + n
    return token, ops, len(data) - pos


class RedoLog:
    """The open log of one database (see the module docstring). Used from one thread, the event loop's."""

    def __init__(self, path: str, token: bytes, fd: int):
        self.path, self.token, self._fd = path, token, fd
        self.size = HEADER_BYTES
        self.logged_seq = 0             # every write up to here is in the log (or in SQLite)
        self.off_until: int | None = None       # after a failed append: off until SQLite holds this seq
        self.dead = False               # the file could not be cut back after a failed append: off for good

    def usable(self, committed_seq: int) -> bool:
        """Whether answers may rely on the log now (not after a failed append until SQLite has caught up)."""
        if self.dead:
            return False
        if self.off_until is not None:
            if committed_seq < self.off_until:
                return False
            self.off_until = None
            log.warning("task database: the redo log is written again (answers no longer wait for SQLite)")
        return True

    def append(self, ops: list[Op], committed_seq: int, queued_seq: int) -> bool:
        """Append `ops` (consecutive writes past logged_seq) in one write; False if the write failed (then the
        log is off until SQLite holds `queued_seq`). Starts the file over first if it is long and moot."""
        if self.size > TRUNCATE_BYTES and committed_seq >= self.logged_seq:
            try:
                os.ftruncate(self._fd, HEADER_BYTES)
                self.size = HEADER_BYTES
            except OSError as exc:
                log.warning("task database: could not shorten the redo log (it grows on): %s", exc)
        body = marshal.dumps(ops, 4)
        try:
            written = os.writev(self._fd, (RECORD.pack(len(body), zlib.crc32(body)), body))
            if written != RECORD.size + len(body):
                raise OSError(f"short write ({written} of {RECORD.size + len(body)} bytes)")
        except OSError as exc:
            self._cut_back(exc, queued_seq)
            return False
        self.size += RECORD.size + len(body)
        self.logged_seq = ops[-1][0]
        return True

    def _cut_back(self, exc: OSError, queued_seq: int) -> None:
        try:
            os.ftruncate(self._fd, self.size)
        except OSError as exc2:
            self.dead = True
            log.error("task database: the redo log could not be written (%s) nor cut back (%s): it stays off; "
                      "answers wait for SQLite commits", exc, exc2)
            return
        self.off_until = queued_seq
        log.warning("task database: the redo log could not be written (%s); answers wait for SQLite commits until "
                    "it holds every write", exc)

    def reset(self) -> None:
        """Empty the log (every write it holds is in SQLite: a clean close)."""
        if not self.dead:
            try:
                os.ftruncate(self._fd, HEADER_BYTES)
                self.size = HEADER_BYTES
            except OSError as exc:
                log.warning("task database: could not empty the redo log at close (replayed at the next open, "
                            "harmlessly): %s", exc)

    def close(self) -> None:
        os.close(self._fd)


def _connect(db_path: str, busy_timeout_s: float) -> sqlite3.Connection:
    con = sqlite3.connect(db_path, isolation_level=None, timeout=busy_timeout_s)
    con.execute("PRAGMA synchronous=NORMAL")
    con.execute(MARK_SCHEMA)
    return con


def replay(path: str, db_path: str, commit: Commit, busy_timeout_s: float) -> None:
    """Commit into the database at `db_path` what the log at `path` holds past the database's mark (nothing
    if there is no log). Raises RedoLogError (the log kept) if the database refuses it."""
    con = _connect(db_path, busy_timeout_s)
    try:
        _replay(con, path, commit)
    finally:
        con.close()


def _replay(con: sqlite3.Connection, path: str, commit: Commit) -> None:
    token, ops, ignored = read(path)
    if ignored:
        log.warning("task database: %d bytes at the end of the redo log were cut short or damaged and are "
                    "ignored (a machine crash?); no answer was sent for the writes they held", ignored)
    if not ops:
        return
    mark = con.execute("SELECT token, seq FROM redo_mark WHERE id = 0").fetchone()
    done = mark[1] if mark is not None and mark[0] == token else 0
    todo = [op for op in ops if op[0] > done]
    if todo:
        try:
            commit(con, todo, mark=(token, todo[-1][0]))
        except sqlite3.Error as exc:
            raise RedoLogError(f"task database: the redo log {path} holds {len(todo)} writes the database would not "
                               f"take ({exc}); nothing is lost, the log is kept: start again once the database "
                               f"accepts writes") from exc
        log.info("task database: %d writes replayed from the redo log", len(todo))


def open_log(path: str, db_path: str, commit: Commit, busy_timeout_s: float) -> RedoLog | None:
    """`replay`, then start the log afresh; returns it (None if the file cannot be written: answers then wait for
    SQLite). Raises RedoLogError (the log kept) if the database refuses the replay."""
    con = _connect(db_path, busy_timeout_s)
    try:
        _replay(con, path, commit)
        fresh = os.urandom(TOKEN_BYTES)
        fd = -1
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            os.ftruncate(fd, 0)                 # the file first, then the mark (see the module docstring)
            if os.write(fd, MAGIC + fresh) != HEADER_BYTES:
                raise OSError("short write of the header")
        except OSError as exc:
            if fd >= 0:
                os.close(fd)
            log.warning("task database: no redo log (%s): answers wait for SQLite commits", exc)
            return None
        try:                    # (each commit sets the mark too: this one only tidies an old token away)
            con.execute(SET_MARK, (fresh, 0))
        except sqlite3.Error as exc:
            log.info("task database: the redo mark is set at the first commit instead (%s)", exc)
        return RedoLog(path, fresh, fd)
    finally:
        con.close()
