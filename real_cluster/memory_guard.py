"""Bounded controller memory: results wait in the task database for a client that stops reading; idle partial
frames time out; one cap on the bytes held in incomplete frames across all connections.

How this works. `send_result` hands a finished task's result to a client unless more than
`client_out_cap_bytes` are already queued to it (frames not yet taken by the kernel); then only the
task id is kept, in order, and `pump` (every `PUMP_PERIOD_S`) sends the waiting results again from
the task database (its query API; the row was written when the task finished) as the client drains.
Every connection's frame decoder reports the bytes it holds in an unfinished frame to one
`FrameBudget`; the connection that pushes the total past its cap is closed (aio_link.Link). `sweep`
closes an authenticated connection whose unfinished frame has not grown for `partial_frame_timeout_s`.
Everything else a client is sent (request replies, refusals, engine lists) cannot be fetched again later,
so it is bounded at its source: `check_reads` stops reading a client's requests once more than
`client_out_cap_bytes` are queued to it (its requests wait in its own socket buffers, not here), and
`pump` resumes reading once it has drained below half the cap. Requests that wait for a commit (the
controller answers only after the writes before them are durable) are counted per client too: past
MAX_DEFERRED_REQUESTS it is not read until they are answered (a locked or full disk cannot make a
flood of requests pile up here).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

from .messages import TaskResult, to_wire
from .protocol import encode_frame

if TYPE_CHECKING:
    from .aio_link import Link
    from .taskdb import TaskDB

log = logging.getLogger("real_cluster.controller")
PUMP_PERIOD_S = 0.05
MAX_DEFERRED_REQUESTS = 1024    # a client's requests waiting for a commit (a locked disk) beyond this: stop reading it
SWEEP_PERIOD_S = 1.0
RESEND_CHUNK = 64
RESEND_CHUNKS_PER_TURN = 8
RESULT_KEYS = ["status", "engine_id", "submitted", "started", "completed", "received", "ename", "evalue",
               "traceback", "engine_info", "label", "result", "stdout", "stderr"]     # a result's columns
_FINAL = ("ok", "error")


@dataclass(slots=True)
class FrameBudget:
    """Bytes held in unfinished frames by every connection together, and the most allowed (`cap`)."""

    cap: int
    held: int = 0


def result_from_row(task_id: str, r: dict[str, Any]) -> TaskResult:
    """The TaskResult of a finished task's database row."""
    return TaskResult(task_id=task_id, status=r["status"], engine_id=r["engine_id"], submitted_at=r["submitted"],
                      started_at=r["started"], completed_at=r["completed"], received_at=r["received"],
                      ename=r["ename"], evalue=r["evalue"], traceback=r["traceback"], engine_info=r["engine_info"],
                      label=r["label"], result=r["result"], stdout=r["stdout"] or "", stderr=r["stderr"] or "")


class MemoryGuard:
    """Keeps what the controller holds per peer bounded (see the module docstring)."""

    def __init__(self, db: TaskDB, client_out_cap_bytes: int, partial_frame_timeout_s: float,
                 incomplete_frames_cap_bytes: int):
        self.db = db
        self.client_out_cap = client_out_cap_bytes
        self.partial_frame_timeout_s = partial_frame_timeout_s
        self.budget = FrameBudget(incomplete_frames_cap_bytes)
        self.unsent: dict[Link, deque[str]] = {}
        self._partial: dict[Link, tuple[int, float]] = {}
        self._db_failing = False
        self.reads_paused: set[Link] = set()    # clients whose requests we stopped reading (see check_reads)
        self.deferred: dict[Link, int] = {}      # per client: requests read, not answered yet (waiting for a commit)
        self._continued: set[Link] = set()     # links whose pumping goes on at the next loop turn

    # ------------------------------------------------------------------------------ results
    def send_result(self, link: Link, result: TaskResult, batched: bool = False) -> None:
        """Send a finished (database-backed) result, or keep its id for later if the client is not reading."""
        if not self._keep_for_later(link, result.task_id):
            link.send_result_frame(encode_frame(*to_wire(result)), batched)

    def send_result_frame(self, link: Link, task_id: str, frame: bytes, batched: bool = False) -> None:
        """`send_result` for a result already encoded (messages.result_ok_frame)."""
        if not self._keep_for_later(link, task_id):
            link.send_result_frame(frame, batched)

    def _keep_for_later(self, link: Link, task_id: str) -> bool:
        """True if this result waits in the database (its client is not reading, or is gone): its id is kept."""
        if link in self.unsent or link.write_backlog() >= self.client_out_cap:
            if not link.closed:
                if link not in self.unsent:
                    log.info("client %s is not reading (%d bytes queued): its results wait in the task database",
                             link.peer, link.write_backlog())
                    self.unsent[link] = deque()
                self.unsent[link].append(task_id)
                self.db.request_commit()           # nobody waits for this row: commit it now, not at the next tick
            return True
        return False

    def forget(self, link: Link) -> None:
        """The connection closed: drop what was kept for it (a new connection asks with get_result)."""
        self.unsent.pop(link, None)
        self._partial.pop(link, None)
        self._continued.discard(link)
        self.reads_paused.discard(link)
        self.deferred.pop(link, None)

    # ----------------------------------------------------------------- replies (not results)
    def request_read(self, link: Link) -> None:
        """A client's request is waiting to be answered (check_reads counts it)."""
        self.deferred[link] = self.deferred.get(link, 0) + 1

    def request_answered(self, link: Link) -> None:
        left = self.deferred.get(link, 0) - 1
        if left > 0:
            self.deferred[link] = left
        else:
            self.deferred.pop(link, None)

    def check_reads(self, link: Link) -> None:
        """After a client's message: past the cap of bytes queued to it (or of requests waiting for a commit),
        stop reading it until it drains."""
        if link in self.reads_paused or link.transport is None:
            return
        backlog, waiting = link.write_backlog(), self.deferred.get(link, 0)
        if backlog < self.client_out_cap and waiting <= MAX_DEFERRED_REQUESTS:
            return
        if backlog >= self.client_out_cap:
            log.info("client %s is not reading (%d bytes queued): its requests are not read until it drains",
                     link.peer, backlog)
        else:
            log.info("client %s has %d requests waiting for the database: its requests are not read until they "
                     "are answered", link.peer, waiting)
        self.reads_paused.add(link)
        link.reads_held = True              # (a read slice's yield does not resume it: aio_link.py)
        link.transport.pause_reading()

    def resume_reads(self) -> None:
        """Read again from paused clients that have drained below half the cap."""
        for link in list(self.reads_paused):
            if link.closed or link.transport is None or link.transport.is_closing():
                self.reads_paused.discard(link)
            elif (link.write_backlog() < self.client_out_cap // 2
                  and self.deferred.get(link, 0) <= MAX_DEFERRED_REQUESTS // 2):
                self.reads_paused.discard(link)
                link.release_reads()

    def undelivered(self) -> set[str]:
        """The tasks whose results wait in the database for their client (a purge must leave them)."""
        return set().union(*self.unsent.values()) if self.unsent else set()

    def send_stored(self, link: Link, ids: list[str]) -> None:
        """Send finished results whose rows have committed, read from the database a chunk at a time while the client
        has room; the rest wait for `pump` like a slow reader's (get_result of many large results: only what fits
        in `client_out_cap` is loaded at once)."""
        if ids and not link.closed:
            self.unsent.setdefault(link, deque()).extend(ids)
            self._pump(link)

    def pump(self) -> None:
        """Send waiting results to every client that has room again."""
        for link in list(self.unsent):
            self._pump(link)

    def _pump_on(self, link: Link) -> None:
        self._continued.discard(link)
        self._pump(link)

    def _pump(self, link: Link) -> None:
        """Send `link`'s waiting results while it has room, RESEND_CHUNKS_PER_TURN chunks per loop turn (the rest on
        the next turns: a get_result of 100,000 small results held the loop ~2 s in one)."""
        if link.closed or link not in self.unsent:
            self.unsent.pop(link, None)
            return
        ids = self.unsent[link]
        for _ in range(RESEND_CHUNKS_PER_TURN):
            if not ids or link.write_backlog() >= self.client_out_cap:
                break
            head = [ids[i] for i in range(min(RESEND_CHUNK, len(ids)))]
            try:                            # as many as fit in the room left (at least one): sizes first
                sizes = self.db.result_sizes(head)
                room, n = self.client_out_cap - link.write_backlog(), 0
                while n < len(head) and (n == 0 or room > 0):
                    room -= sizes.get(head[n], 0)
                    n += 1
                rows = {r["msg_id"]: r for r in self.db.query({"msg_id": {"$in": head[:n]}}, ["msg_id", *RESULT_KEYS])}
            except sqlite3.Error as exc:      # retried at the next pump
                if not self._db_failing:
                    log.error("task database: cannot read results waiting for a client: %s", exc)
                self._db_failing = True
                break
            chunk = [ids.popleft() for _ in range(n)]
            self._db_failing = False
            missing = next((i for i, tid in enumerate(chunk)            # or its final write not committed yet
                            if tid not in rows or rows[tid]["status"] not in _FINAL), len(chunk))
            for tid in chunk[:missing]:
                link.send(result_from_row(tid, rows[tid]))
            if missing < len(chunk):           # not final in the database (yet): from there on, next time
                ids.extendleft(reversed(chunk[missing:]))
                break
        else:
            if ids and link not in self._continued and link.write_backlog() < self.client_out_cap:
                self._continued.add(link)
                asyncio.get_running_loop().call_soon(self._pump_on, link)
        if not ids:
            del self.unsent[link]

    # ------------------------------------------------------------------------ partial frames
    def sweep(self, links: Iterable[Link], now: float) -> None:
        """Close connections whose unfinished frame has not grown for `partial_frame_timeout_s`."""
        seen = self._partial
        for link in links:
            held = link.partial_bytes
            if not held:
                seen.pop(link, None)
                continue
            last = seen.get(link)
            if last is None or last[0] != held:
                seen[link] = (held, now)
            elif now - last[1] >= self.partial_frame_timeout_s:
                log.warning("closing %s connection from %s: %d bytes of an unfinished frame and nothing more for "
                            "%.0f s", link.role, link.peer, held, now - last[1])
                seen.pop(link, None)
                link.close(f"an unfinished frame idle for {now - last[1]:.0f} s")

    async def run(self, links: Any) -> None:
        """Pump waiting results and sweep idle partial frames until cancelled (`links()` gives the peers)."""
        next_sweep = time.monotonic()
        while True:
            await asyncio.sleep(PUMP_PERIOD_S)
            try:
                if self.unsent:
                    self.pump()
                if self.reads_paused:
                    self.resume_reads()
                now = time.monotonic()
                if now >= next_sweep:
                    self.sweep(links(), now)
                    next_sweep = now + min(SWEEP_PERIOD_S, self.partial_frame_timeout_s / 4)
            except Exception:
                log.exception("memory guard failed; continuing")
