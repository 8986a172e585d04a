"""The controller: hub, task database and `sched_lab.core.TaskScheduler`, over asyncio sockets.

How this works. The controller only translates. Socket messages become core events
(Register -> EngineJoined, Submit -> TaskSubmitted, TaskDone -> TaskFinished or DependencyUnmet,
a dropped engine connection or missed heartbeats -> EngineLost, abort -> AbortRequested, ...);
the actions the core returns become messages (Dispatch -> RunTask to that engine, Deliver and
Fail -> TaskResult to every subscribed client, Cancel -> CancelTask, StartTimer/CancelTimer ->
`loop.call_later` whose firing is fed back as TimerFired). No scheduling, dependency, retry or
timeout rule lives here. Task payloads and results are forwarded as opaque bytes, never unpickled.
Every task's row goes to the task database (batched writes), and the core's records too.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import random
import sqlite3
import time
from dataclasses import dataclass, replace
from typing import Any

from sched_lab.core import (
    Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch, DispatchFailed, EngineJoined,
    EngineLost, Event, Fail, Outcome, RecordList, SchedulerMisuse, StartTimer, TaskFinished, TaskScheduler,
    TaskSubmitted, TimerFired, WorkerDied,
)
from sched_lab.core.model import TASK_ABORTED
from sched_lab.core.options import check_hwm, check_scheme
from sched_lab.core.pump import EventPump
from sched_lab.core.scheme_api import load_scheme_modules

from . import protocol as proto
from .aio_link import Link
from .hub_requests import RequestHandler
from .messages import (
    CancelTask, EnginesChanged, Heartbeat, Register, Registered, Request, RunTask, StopEngine, Submit, TaskDone,
    TaskResult,
)
from .task_table import EngineConn, PendingTask, TaskTable, spec_for
from .taskdb import TaskDB

log = logging.getLogger("real_cluster.controller")
DB_FLUSH_INTERVAL_S = 0.05
BATCH_RESULTS_IN_FLIGHT = 16       # a client with this many tasks still pending gets its results batched
CLIENT_READ_BYTES = 8192            # a client's burst is read in slices, engines' replies go between (bench_live.py, 1 ms tasks)
DB_RETRY_MAX_S = 2.0                # while the database refuses writes, retry at most this far apart
MAX_UNAUTHENTICATED = 64            # connections still in the handshake; beyond this the oldest is closed


@dataclass(frozen=True, slots=True)
class ControllerConfig:
    """How to run a controller. `db_path` ":memory:" keeps the task database in memory."""

    key: str
    host: str = "127.0.0.1"
    port: int = 0
    scheme: str = "leastload"
    hwm: int = 1
    db_path: str = ":memory:"
    hb_period_s: float = 1.0
    hb_misses: int = 5
    seed: int | None = None
    journal_path: str | None = None
    scheme_modules: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme_modules", tuple(self.scheme_modules))
        if self.hb_period_s <= 0 or self.hb_misses < 1:
            raise ValueError("hb_period_s must be > 0 and hb_misses >= 1")
        load_scheme_modules(self.scheme_modules)     # the same files the simulator loads, before the check
        object.__setattr__(self, "scheme", check_scheme(self.scheme))
        check_hwm(self.hwm)


class Controller:
    """One controller. `await start()` binds and returns; `await wait_stopped()`; `stop()` ends it."""

    def __init__(self, config: ControllerConfig):
        self.config = config
        self.db = TaskDB(config.db_path)
        self._records = RecordList()
        self.scheduler = TaskScheduler(config.scheme, config.hwm, rng=random.Random(config.seed), records=self._records)
        self.engines: dict[int, EngineConn] = {}
        self.clients: set[Link] = set()
        self.pending = TaskTable()         # shared with the request handlers
        self.port: int | None = None
        self._next_engine_id = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._server: asyncio.AbstractServer | None = None
        self._stopped: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._journal = open(config.journal_path, "ab") if config.journal_path else None
        self._pump = EventPump(self.scheduler, {
            Dispatch: self._do_dispatch, Deliver: self._deliver, Fail: self._do_fail, Cancel: self._do_cancel,
            StartTimer: self._do_start_timer, CancelTimer: self._do_cancel_timer,
        }, on_handled=self._write_journal if self._journal else None)
        self.requests = RequestHandler(self.pending, self.engines, self.scheduler, self.db, feed=self.feed,
                                       save_records=self.save_records, stop=self.stop)
        self._dispatched: set[Link] = set()  # engine links with a RunTask queued since the last engine reply
        self._unauthenticated: dict[Link, None] = {}     # insertion order: oldest first
        self._evicted = 0
        self._evicted_logged_at = 0.0

    # --------------------------------------------------------------------------- lifecycle
    async def start(self) -> int:
        """Bind the listening socket and start housekeeping; returns the port."""
        self._stopped = asyncio.Event()
        n = self.db.fail_pending(time.time(), "TaskAborted", "the controller stopped while this task was in flight")
        if n:
            log.warning("marked %d tasks left pending by a previous controller as aborted", n)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._new_link, self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._tasks = [asyncio.ensure_future(self._heartbeat_monitor()), asyncio.ensure_future(self._db_flusher())]
        log.info("controller listening on %s:%d (scheme=%s hwm=%d db=%s)", self.config.host, self.port,
                 self.config.scheme, self.config.hwm, self.config.db_path)
        return self.port

    async def wait_stopped(self) -> None:
        assert self._stopped is not None
        await self._stopped.wait()

    def stop(self) -> None:
        """Stop engines, close every connection, flush the database."""
        if self._stopped is None or self._stopped.is_set():
            return
        log.info("controller stopping")
        for eng in list(self.engines.values()):
            eng.link.send(StopEngine())
            eng.link.flush()
        for link in list(self.clients):
            link.close("controller stopping")
        if self._server:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        for handle in self._timers.values():
            handle.cancel()
        try:
            self.save_records()
            self.db.close()
        except sqlite3.Error as exc:
            log.error("task database: final write failed, unsaved rows are lost: %s", exc)
        if self._journal:
            self._journal.close()
        self._stopped.set()

    def _new_link(self) -> Link:
        if len(self._unauthenticated) >= MAX_UNAUTHENTICATED:     # a flood: drop the oldest half-open handshake
            oldest = next(iter(self._unauthenticated))
            del self._unauthenticated[oldest]
            oldest.close(f"more than {MAX_UNAUTHENTICATED} unauthenticated connections")
            self._evicted += 1
            now = time.monotonic()
            if now - self._evicted_logged_at >= 1.0:
                log.warning("closed %d unauthenticated connections: more than %d were waiting for a handshake",
                            self._evicted, MAX_UNAUTHENTICATED)
                self._evicted, self._evicted_logged_at = 0, now
        link = Link(self.config.key, server=True, on_message=self._on_message, on_ready=self._on_ready,
                    on_close=self._on_close, log=log)
        self._unauthenticated[link] = None
        return link

    # ------------------------------------------------------------------------- connections
    def _on_ready(self, link: Link) -> None:
        self._unauthenticated.pop(link, None)
        log.info("authenticated %s from %s", link.role, link.peer)
        if link.role == "client":
            self.clients.add(link)
            link.limit_reads(CLIENT_READ_BYTES)
            link.send(EnginesChanged(ids=tuple(sorted(self.engines))))

    def _on_close(self, link: Link, reason: str) -> None:
        self._unauthenticated.pop(link, None)
        if not link.authenticated:
            log.info("unauthenticated connection from %s ended: %s", link.peer, reason)
        if link.role == "client":
            self.clients.discard(link)
            self.pending.client_gone(link)
        elif isinstance(link.state, EngineConn):
            self._engine_lost(link.state.engine_id, reason)

    def _on_message(self, link: Link, msg: Any) -> None:
        if link.role == "engine":
            eng = link.state
            if eng is None:
                if not isinstance(msg, Register):
                    raise proto.ProtocolError(f"engine sent {type(msg).__name__} before registering")
                return self._register(link, msg)
            eng.last_seen = time.monotonic()
            if isinstance(msg, TaskDone):
                self._task_done(eng, msg)
            elif not isinstance(msg, Heartbeat):
                raise proto.ProtocolError(f"unexpected {type(msg).__name__} from engine {eng.engine_id}")
        elif isinstance(msg, Submit):
            self._submit(link, msg)
        elif isinstance(msg, Request):
            self.requests.handle(link, msg)
        else:
            raise proto.ProtocolError(f"unexpected {type(msg).__name__} from a client")

    def _register(self, link: Link, msg: Register) -> None:
        eid = self._next_engine_id
        self._next_engine_id += 1
        link.state = EngineConn(eid, msg.uuid, msg.pid, link, time.monotonic())
        self.engines[eid] = link.state
        link.send(Registered(engine_id=eid, hb_period_s=self.config.hb_period_s,
                             liveness_s=self.config.hb_period_s * self.config.hb_misses))
        log.info("engine %d registered (pid %d, uuid %s, speed %g, labels %s)", eid, msg.pid, msg.uuid,
                 msg.speed, ",".join(msg.labels) or "-")
        self._broadcast_engines()
        self.feed(EngineJoined(time.time(), eid, float(msg.speed), frozenset(msg.labels)))

    def _engine_lost(self, eid: int, reason: str) -> None:
        eng = self.engines.pop(eid, None)
        if eng is None:
            return
        log.warning("engine %d lost: %s", eid, reason)
        eng.link.close(reason)
        self._broadcast_engines()
        self.feed(EngineLost(time.time(), eid, reason))

    def _broadcast_engines(self) -> None:
        msg = EnginesChanged(ids=tuple(sorted(self.engines)))
        for link in self.clients:
            link.send(msg)

    async def _heartbeat_monitor(self) -> None:
        limit = self.config.hb_period_s * self.config.hb_misses
        while True:
            await asyncio.sleep(self.config.hb_period_s)
            now = time.monotonic()
            for eng in list(self.engines.values()):
                seen = max(eng.last_seen, eng.link.last_activity)     # bytes of a big frame count as progress
                if now - seen > limit:
                    self._engine_lost(eng.engine_id, f"nothing received for {now - seen:.1f} s")

    async def _db_flusher(self) -> None:
        delay, failing = DB_FLUSH_INTERVAL_S, False
        while True:
            await asyncio.sleep(delay)
            try:
                self.save_records()
                self.db.flush()
            except sqlite3.Error as exc:      # disk full, read-only, I/O error: keep serving, keep the writes queued
                if not failing:
                    log.error("task database write failed (writes stay queued, retrying): %s", exc)
                failing, delay = True, min(delay * 2, DB_RETRY_MAX_S)
            except Exception:
                log.exception("task database write failed")
            else:
                if failing:
                    log.warning("task database writes succeed again")
                failing, delay = False, DB_FLUSH_INTERVAL_S

    def save_records(self) -> None:
        records = self._records.drain()
        if records:
            self.db.add_records(records)

    # ----------------------------------------------------------------------- task traffic
    def _submit(self, link: Link, msg: Submit) -> None:
        if msg.task_id in self.pending:
            return self._send_result(link, TaskResult(
                task_id=msg.task_id, status="error", engine_id=None, submitted_at=msg.submitted_at, started_at=None,
                completed_at=None, received_at=time.time(), ename="ValueError",
                evalue=f"task id {msg.task_id!r} is already in use"))
        flags = msg.flags
        self.pending.add(PendingTask(msg.task_id, msg.payload, flags, msg.submitted_at, {link}, owner=link))
        self.db.add_task(msg.task_id, str(id(link)), flags.to_dict(), msg.submitted_at, msg.payload)
        spec = spec_for(msg.task_id, flags)
        try:
            self.feed(TaskSubmitted(time.time(), spec))
        except SchedulerMisuse as exc:     # e.g. an id the core has already seen
            self.pending.pop(msg.task_id)
            self.db.finish_task(msg.task_id, "error", None, None, None, time.time(), None, "ValueError", str(exc))
            self._send_result(link, TaskResult(
                task_id=msg.task_id, status="error", engine_id=None, submitted_at=msg.submitted_at, started_at=None,
                completed_at=None, received_at=time.time(), ename="ValueError", evalue=str(exc)))

    def _task_done(self, eng: EngineConn, msg: TaskDone) -> None:
        task = self.pending.get(msg.task_id)
        if task is None:
            return
        now = time.time()
        if msg.status == "unmet":
            return self.feed(DependencyUnmet(now, msg.task_id, eng.engine_id, msg.attempt))
        task.reply = (msg, eng.engine_id)
        ok = msg.status == "ok"
        if msg.status == "died":            # the engine's worker process died: the core retries or fails it
            self.feed(WorkerDied(now, msg.task_id, eng.engine_id, msg.attempt, msg.evalue or ""))
        else:
            outcome = (Outcome.OK if ok else Outcome.ABORTED if msg.status == "aborted"
                       else Outcome.TIME_LIMIT if msg.status == "time_limit" else Outcome.ERROR)
            self.feed(TaskFinished(now, msg.task_id, eng.engine_id, msg.attempt, outcome,
                                   None if ok else (msg.ename or TASK_ABORTED), msg.started_at))
        for link in self._dispatched:       # the next task leaves now, not after this loop turn's other reads
            link.flush()                    # (bench_live.py: 1 ms tasks, an engine waits for this write)
        self._dispatched.clear()

    # ------------------------------------------------------------------- core: events/actions
    def feed(self, event: Event) -> None:
        """Hand one event to the core and carry out its actions (events raised meanwhile queue up: core/pump.py)."""
        self._pump.feed(event)

    def _write_journal(self, event: Event, actions: list[Any]) -> None:
        pickle.dump((event, actions), self._journal)  # type: ignore[arg-type]

    # The pump's action handlers, one per action type (_deliver is below).
    def _do_dispatch(self, action: Dispatch) -> None:
        eng = self.engines.get(action.engine_id)
        task = self.pending.get(action.task_id)
        if eng is None or eng.link.closed or task is None:
            self._pump.post(DispatchFailed(time.time(), action.task_id, action.engine_id, action.attempt))
        else:
            eng.link.send(RunTask(task_id=action.task_id, attempt=action.attempt, payload=task.payload,
                                  time_limit_s=task.flags.time_limit_s))
            self._dispatched.add(eng.link)

    def _do_fail(self, action: Fail) -> None:
        self._finish(action.task_id, TaskResult(
            task_id=action.task_id, status="error", engine_id=None, submitted_at=None, started_at=None,
            completed_at=None, received_at=time.time(), ename=action.error_name, evalue=action.message))

    def _do_cancel(self, action: Cancel) -> None:
        eng = self.engines.get(action.engine_id)
        if eng is not None:
            eng.link.send(CancelTask(task_id=action.task_id, attempt=action.attempt))

    def _do_start_timer(self, action: StartTimer) -> None:
        loop = asyncio.get_running_loop()
        delay = max(0.0, action.deadline - time.time())
        self._timers[action.token] = loop.call_later(delay, self._timer_fired, action.token)

    def _do_cancel_timer(self, action: CancelTimer) -> None:
        handle = self._timers.pop(action.token, None)
        if handle is not None:
            handle.cancel()

    def _timer_fired(self, token: int) -> None:
        self._timers.pop(token, None)
        self.feed(TimerFired(time.time(), token))

    def _deliver(self, action: Deliver) -> None:
        task = self.pending.get(action.task_id)
        if task is None or task.reply is None:
            log.error("core delivered task %s but no reply is held", action.task_id)
            return
        msg, eid = task.reply
        eng = self.engines.get(eid)
        if eng is not None:
            eng.completed += 1
        info = {"engine_id": eid, "engine_uuid": eng.uuid if eng else None, "method": "apply"}
        self._finish(action.task_id, TaskResult(
            task_id=action.task_id, status="ok" if action.ok else "error", engine_id=eid,
            submitted_at=task.submitted_at, started_at=msg.started_at, completed_at=msg.completed_at,
            received_at=time.time(), ename=msg.ename, evalue=msg.evalue, traceback=msg.traceback,
            engine_info=None if action.ok else info, label=task.flags.label, result=msg.result,
            stdout=msg.stdout, stderr=msg.stderr))

    def _finish(self, task_id: str, result: TaskResult) -> None:
        task = self.pending.pop(task_id)
        if task is None:
            return
        label = task.flags.label
        if result.submitted_at != task.submitted_at or result.label != label:
            result = replace(result, submitted_at=task.submitted_at, label=label)
        self.db.finish_task(task_id, result.status, result.engine_id, result.started_at, result.completed_at,
                            result.received_at, result.result, result.ename, result.evalue, result.traceback,
                            result.engine_info, result.stdout, result.stderr)
        owner = task.owner
        busy = owner is not None and self.pending.pending_of(owner) >= BATCH_RESULTS_IN_FLIGHT
        for link in task.subscribers:
            if busy and link is owner:      # many more of its results are coming: let them share one write
                link.send_batched(result)
            else:
                self._send_result(link, result)

    @staticmethod
    def _send_result(link: Link, result: TaskResult) -> None:
        link.send(result)
