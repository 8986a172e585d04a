"""Durable answers: the controller tells a client nothing before the task database holds what came before it.

How this works. Every task-database write gets a sequence number (TaskDB.queued_seq); the task
database reports the highest one that would survive a controller SIGKILL (`durable_seq`: appended to
its redo log, redo_log.py, or committed to SQLite) and the highest committed one. A message to a
client is stamped with the sequence number of the last write queued before it; it leaves once that
write is durable (one redo-log append or group commit releases every message stamped up to it).
Requests that read the database wait for the commit itself, so they see every write made before they
arrived. Messages leave in arrival order, so a client's messages never overtake each other; requests
run in arrival order, after the messages stamped before them (a request waiting for a commit, e.g.
while another process locks the database, holds up no answer: they wait in a queue of their own).
When the database refuses writes for a reason other than a lock (disk full, read-only, I/O error),
the controller stops accepting submissions (see Controller) and answers requests at once, with clear
errors where they need the database: only task results wait for the disk (when the redo log cannot
take them either), a client waiting for a reply must not.
Engines are never held: a task may run before its row is committed, but nobody hears about it.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any, Callable

from . import protocol as proto
from .aio_link import Link
from .messages import TaskResult, to_wire
from .taskdb import TaskDB


log = logging.getLogger("real_cluster.controller")


class CommitGate:
    """Holds client-bound messages until the writes queued before them are durable, and deferred requests until
    they have committed."""

    def __init__(self, db: TaskDB):
        self.db = db
        self.failing = False            # set by the controller while the database refuses writes (not just locked)
        self._held: deque[tuple[int, Link, bytes, bool]] = deque()     # (seq, link, frame, batched)
        self._requests: deque[tuple[int, Link, Callable[[], None]]] = deque()     # (seq, link, run)

    @property
    def held(self) -> int:
        """How many messages and requests are waiting for the database."""
        return len(self._held) + len(self._requests)

    def _clear(self, seq: int) -> bool:
        return not self._held and self.db.durable_seq >= seq

    def send(self, link: Link, msg: Any, batched: bool = False) -> None:
        """Send `msg` to a client once every write queued so far has committed (at once if it has)."""
        seq = self.db.queued_seq
        if (self.failing and not isinstance(msg, TaskResult)) or self._clear(seq):
            (Link.send_batched if batched else Link.send)(link, msg)
        else:       # encoded now: a message too large fails its sender at once
            self._hold(seq, link, proto.encode_frame(*to_wire(msg)), batched)

    def send_result_frame(self, link: Link, frame: bytes, batched: bool = False) -> None:
        """`send` for a task result already encoded (the controller's hot path: no TaskResult built)."""
        seq = self.db.queued_seq
        if self._clear(seq):
            Link.send_result_frame(link, frame, batched)
        else:
            self._hold(seq, link, frame, batched)

    def _hold(self, seq: int, link: Link, frame: bytes, batched: bool) -> None:
        self._held.append((seq, link, frame, batched))
        if isinstance(link, GatedLink):
            link.held_bytes += len(frame)             # counted in its backlog (the MemoryGuard's cap)
        self.db.request_durable(lazy=batched)     # a batched answer may wait a little anyway

    def later(self, link: Link, run: Callable[[], None]) -> None:
        """Call `run` once every write queued so far has committed (at once if it has, or while failing)."""
        if self.failing or (not self._held and not self._requests and self.db.committed_seq >= self.db.queued_seq):
            run()
        else:
            self._requests.append((self.db.queued_seq, link, run))
            self.db.request_commit()

    def release(self, flush: bool = False) -> None:
        """Send everything whose writes are durable and run the requests whose writes have committed, in order;
        while failing, run every deferred request too.

        `flush`: write what was released at once rather than at the end of this loop turn (after an inline
        commit, when nothing else is coming: bench_live.py, round trip)."""
        held, requests = self._held, self._requests
        released: set[Link] = set()
        durable = self.db.durable_seq
        while held and held[0][0] <= durable:
            _, link, frame, _batched = held.popleft()
            if isinstance(link, GatedLink):
                link.held_bytes -= len(frame)
            if not link.closed:     # (to be flushed below: no flush of its own scheduled, bench_cpu_split.py)
                (link.queue_frame if flush else link.send_encoded)(frame)
                released.add(link)
        committed = self.db.committed_seq       # (<= durable: the messages stamped before a request went first)
        while requests and (self.failing or requests[0][0] <= committed):
            _, link, run = requests.popleft()
            try:
                run()
            except Exception:       # one failing request must not hold up the answers behind it
                log.exception("error answering a deferred request from %s", link.peer)
        if flush:
            for link in released:
                link.flush()


class GatedLink(Link):
    """A controller-side Link: once it is a client's, everything sent to it goes through the CommitGate."""

    def __init__(self, gate: CommitGate, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.held_bytes = 0             # frames for this peer the gate holds until their writes commit

    def write_backlog(self) -> int:
        """Bytes queued to this peer: those waiting for a commit as well as those the kernel has not taken."""
        return super().write_backlog() + self.held_bytes

    def send(self, msg: Any) -> None:
        if self.role == "client":
            self.gate.send(self, msg)
        else:
            super().send(msg)

    def send_batched(self, msg: Any) -> None:
        if self.role == "client":
            self.gate.send(self, msg, batched=True)
        else:
            super().send_batched(msg)

    def send_result_frame(self, frame: bytes, batched: bool = False) -> None:
        if self.role == "client":
            self.gate.send_result_frame(self, frame, batched)
        else:
            super().send_result_frame(frame, batched)

    def send_now(self, msg: Any) -> None:
        """Send without waiting for the database (only for refusals: they promise nothing)."""
        super().send(msg)
