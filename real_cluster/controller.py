"""The controller: hub, task database and `sched_lab.core.TaskScheduler`, over asyncio sockets.

How this works. The controller only translates. Socket messages become core events
(Register -> EngineJoined, Submit -> TaskSubmitted, TaskDone -> TaskFinished or DependencyUnmet,
a dropped engine connection or missed heartbeats -> EngineLost, abort -> AbortRequested, ...);
the actions the core returns become messages (Dispatch -> RunTask to that engine, Deliver and
Fail -> TaskResult to every subscribed client, Cancel -> CancelTask, StartTimer/CancelTimer ->
`loop.call_later` whose firing is fed back as TimerFired; WorkerReplaced -> WorkerRestarted, DropActor ->
DeleteActor; actor names and re-creation payloads: actor_hub.py). No scheduling, dependency, retry or
timeout rule lives here. Task payloads and results are forwarded as opaque bytes, never unpickled.
Every task's row goes to the task database (batched writes), and the core's records too.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import random
import socket
import sqlite3
import ssl
import threading
import time
from dataclasses import replace
from typing import Any

from sched_lab.core import (
    Cancel, CancelTimer, Deliver, DependencyUnmet, Dispatch, DispatchFailed, EngineJoined,
    EngineLost, Event, Fail, Outcome, SchedulerMisuse, Stage, StartTimer, TaskFinished,
    TaskRestored, TaskScheduler, TaskSpec, TaskSubmitted, TimerFired, Unstage, WorkerDied, WorkerRestarted, DropActor,
)
from sched_lab.core.errors import TASK_ABORTED
from sched_lab.core.pump import EventPump

from . import protocol as proto
from . import tls
from .actor_hub import ActorDirectory
from .admission import HandshakeGate
from .aio_link import Link
from .controller_config import ControllerConfig
from .direct_links import DirectLinks, WorkerLink
from .durable import CommitGate, GatedLink
from .error import InvalidField
from .fncache import FN_UNKNOWN, FunctionRouter
from .hub_requests import RequestHandler
from .liveness import Liveness
from .listeners import LISTEN_BACKLOG, MAX_UNAUTHENTICATED, MAX_UNAUTHENTICATED_PER_SOURCE, Listeners
from .memory_guard import MemoryGuard
from .pulling import Pulling
from .messages import (
    NO_FLAGS, AttachWorker, CancelTask, DeleteActor, EnginesChanged, Heartbeat, Register, Registered, Reply, Request,
    RunTask, StopEngine, Submit, TaskDone, TaskFlags, TaskResult, Took, WorkerReplaced, result_ok_frame, run_frame,
)
from .task_table import EngineConn, PendingTask, RecordRows, TaskTable, spec_for
from .taskdb import TaskDB, TaskIdInUse

log = logging.getLogger("real_cluster.controller")
_NO_FLAGS_DOC = NO_FLAGS.to_dict()  # one dict for every task with the default flags (the database dumps it once)
DB_FLUSH_INTERVAL_S = 0.05          # records and writes (answered ones wait in the redo log) are committed this often
DB_BACKLOG_PAUSE_BYTES = 64 << 20   # uncommitted result bytes beyond this: stop reading engines until commits catch up
BATCH_RESULTS_IN_FLIGHT = 16       # a client with this many tasks still pending gets its results batched
CLIENT_READ_BYTES = 8192            # a client's burst is read in slices, engines' replies go between (bench_live.py, 1 ms tasks)


from .controller_config import ControllerConfig  # noqa: E402,F401 - (re-exported: its old home)


def _guarded(handler: Any) -> Any:
    """An action handler that logs its failure instead of raising: one failing action never stops the others."""
    def carry_out(action: Any) -> None:
        try:
            handler(action)
        except Exception:
            log.exception("carrying out %r failed", action)
    return carry_out


class Controller(DirectLinks, Listeners, Liveness, Pulling):
    """One controller. `await start()` binds and returns; `await wait_stopped()`; `stop()` ends it."""

    def __init__(self, config: ControllerConfig):
        self.config = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._commit_signalled = False
        self._engines_paused = False       # reads from engines paused while the database backlog is large
        self._held_by_actors = False       # tasks wait that only an actor's going can make room for (warned)
        self.db = TaskDB(config.db_path, on_commit=self._db_committed_threadsafe, on_error=self._db_failed_threadsafe,
                         schedule=self._schedule, redo=config.redo_log)    # (redo_log.py: answers wait for one append)
        self.gate = CommitGate(self.db)     # a client hears nothing before the writes made before it are durable
        self._records = RecordRows()
        self.scheduler = TaskScheduler(config.scheme, config.hwm, rng=random.Random(config.seed), records=self._records)
        self.engines: dict[int, EngineConn] = {}
        self.clients: set[Link] = set()
        self.pending = TaskTable()         # shared with the request handlers
        self.functions = FunctionRouter(store=self.db.add_function, lookup=self.db.function_bytes)   # (fncache.py)
        self.port: int | None = None
        self._next_engine_id = 0
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._listener: socket.socket | None = None
        self._unix: socket.socket | None = None     # the Unix-domain listener (config.unix_path)
        self._tls: ssl.SSLContext | None = None
        self._stopped: asyncio.Event | None = None
        self._tasks: list[asyncio.Task] = []
        self._journal = open(config.journal_path, "ab") if config.journal_path else None
        self._pump = EventPump(self.scheduler, {   # (the two per task guard themselves)
            Dispatch: self._do_dispatch, Deliver: self._deliver,
            **{action_type: _guarded(handler) for action_type, handler in {
                Fail: self._do_fail, Cancel: self._do_cancel, StartTimer: self._do_start_timer,
                CancelTimer: self._do_cancel_timer, DropActor: self._do_drop_actor, Stage: self._do_stage,
                Unstage: self._do_unstage}.items()},
        }, on_handled=self._write_journal if self._journal else None)
        self.feed = self._pump.feed         # type: ignore[method-assign]  # (the method below, one call less)
        self.memory = MemoryGuard(self.db, config.client_out_cap_bytes, config.partial_frame_timeout_s,
                                  config.incomplete_frames_cap_bytes)
        self.requests = RequestHandler(self.pending, self.engines, self.scheduler, self.db, feed=self.feed,
                                       save_records=self.save_records, stop=self.stop,
                                       send_result=self.memory.send_result, functions=self.functions,
                                       after_commit=self.gate.later, send_stored=self.memory.send_stored,
                                       undelivered=self.memory.undelivered)
        self.actor_dir = self.requests.actor_dir = ActorDirectory(self.scheduler)    # names, incarnations
        self.requests.pull_stats = self.pull_stats
        self._dispatched: set[Link] = set()  # engine links with a RunTask queued since the last engine reply
        self._delivers: list[Deliver] | None = None     # Delivers held while an engine's report is handled
        self._send_direct = False           # within _feed_and_send: it writes the RunTasks queued meanwhile
        self._gate = HandshakeGate(MAX_UNAUTHENTICATED_PER_SOURCE, MAX_UNAUTHENTICATED)
        self._keys = {"client": config.key, "engine": config.engine_key}
        self._gate_logged_at = 0.0

    def _schedule(self, delay_s: float, callback: Any) -> None:
        """The task database's timer: a commit asked for now runs first thing next loop turn (call_soon: no timer
        heap, and before the I/O read in that turn: bench_live.py, round trip), a lazy one after `delay_s`."""
        loop = self._loop or asyncio.get_running_loop()
        if delay_s <= 0:
            loop.call_soon(callback)
        else:
            loop.call_later(delay_s, callback)

    # --------------------------------------------------------------------------- lifecycle
    async def start(self) -> int:
        """Bind the listening socket and start housekeeping; returns the port."""
        self._stopped = asyncio.Event()
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._recover()
        family = socket.AF_INET6 if ":" in self.config.host else socket.AF_INET
        self._listener = socket.create_server((self.config.host, self.config.port), family=family,
                                              backlog=LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self._tls = tls.server_context(self.config.tls_cert, self.config.tls_key) if self.config.tls_cert else None
        loop.add_reader(self._listener.fileno(), self._accept_ready)
        self.port = self._listener.getsockname()[1]
        if self.config.unix_path:
            self._listen_unix(self.config.unix_path)
            self._pull_start()          # (pulling.py: with --pull)
        self._tasks = [asyncio.ensure_future(self._heartbeat_monitor()), asyncio.ensure_future(self._db_flusher()),
                       asyncio.ensure_future(self.memory.run(self._peers))]
        log.info("controller listening on %s:%d (scheme=%s hwm=%d db=%s)", self.config.host, self.port,
                 self.config.scheme, self.config.hwm, self.config.db_path)
        return self.port

    def _recover(self) -> None:
        """Take over what a previous controller left unfinished (it was killed): none of it is lost or aborted.

        Only translation: the finished tasks the unfinished ones depend on, then the unfinished ones (in the
        order they arrived, with the attempts they had used), are replayed into the core as TaskRestored;
        the core decides (core/restore.py): queue again, or fail EngineError when the attempt that was out
        at the stop was the last one its retries allowed; dependents of failed tasks fail as without a stop.
        """
        now = time.time()
        rows = self.db.pending_rows()      # (actor creations and calls: the core fails them, ActorDiedError)
        if not rows:
            return
        flags = {row["msg_id"]: TaskFlags.from_dict(row["flags"]) for row in rows}
        dep_ids = {str(i) for f in flags.values() for dep in (f.after, f.follow) if dep is not None for i in dep.ids}
        for tid, (succeeded, engine_id) in self.db.outcomes(dep_ids - flags.keys()).items():
            self.feed(TaskRestored(now, TaskSpec(tid), succeeded, engine_id=engine_id))
        for row in rows:
            tid = row["msg_id"]
            self.pending.add(PendingTask(tid, row["payload"], flags[tid], row["submitted"]))
            self.feed(TaskRestored(now, spec_for(tid, flags[tid]), None, row["attempts"] or 0))
        log.warning("recovered %d unfinished tasks a previous controller left (%d finished ones they depend on)",
                    len(rows), len(dep_ids - flags.keys()))

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
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        if self._unix is not None:
            asyncio.get_running_loop().remove_reader(self._unix.fileno())
            self._unix.close()
            self._unix = None
            try:
                os.unlink(self.config.unix_path)        # type: ignore[arg-type]
            except OSError:
                pass
        self._pull_stop()
        for task in self._tasks:
            task.cancel()
        for handle in self._timers.values():
            handle.cancel()
        try:
            self.save_records()
            self.db.close()                 # waits for the writer to commit the backlog
        except sqlite3.Error as exc:
            log.error("task database: final write failed, unsaved rows are lost: %s", exc)
        if self._journal:
            self._journal.close()
        self._stopped.set()

    def _new_link(self) -> Link:
        return GatedLink(self.gate, self._keys, server=True, on_message=self._on_message, on_ready=self._on_ready,
                         on_close=self._on_close, log=log, on_invalid=self._on_invalid, budget=self.memory.budget)

    def _peers(self) -> list[Link]:
        return [*self.clients, *(eng.link for eng in self.engines.values()),
                *(eng.direct for eng in self.engines.values() if eng.direct is not None)]

    # ------------------------------------------------------------------------- connections
    def _on_ready(self, link: Link) -> None:
        self._gate.done(link)
        log.info("authenticated %s from %s", link.role, link.peer)
        if link.role == "client":
            self.clients.add(link)
            link.limit_reads(CLIENT_READ_BYTES)
            link.send(EnginesChanged(ids=tuple(sorted(self.engines))))

    def _on_close(self, link: Link, reason: str) -> None:
        self._gate.done(link)
        self.memory.forget(link)
        if not link.authenticated and not link.refused:     # refusals are counted in _admit's log line
            log.info("unauthenticated connection from %s ended: %s", link.peer, reason)
        if link.role == "client":
            self.clients.discard(link)
            self.pending.client_gone(link)
        elif isinstance(link.state, EngineConn):
            self._engine_lost(link.state.engine_id, reason)
        elif isinstance(link.state, WorkerLink):
            self._pull_link_closed(link.state)
            self._direct_closed(link, reason)

    def _on_message(self, link: Link, msg: Any) -> None:
        if link.role == "engine":
            eng = link.state
            if eng is None:
                if isinstance(msg, AttachWorker):
                    self._attach(link, msg)
                    return self._pull_offer(link)
                if not isinstance(msg, Register):
                    raise proto.ProtocolError(f"engine sent {type(msg).__name__} before registering")
                return self._register(link, msg)
            if type(eng) is WorkerLink:            # a worker's direct link: task answers, and takes (pulling.py)
                if type(msg) is TaskDone:
                    return self._task_done(eng.eng, msg)
                if type(msg) is not Took:
                    raise proto.ProtocolError(f"unexpected {type(msg).__name__} on a worker's direct link")
                return self._pull_took(eng, msg)
            eng.last_seen = time.monotonic()
            if isinstance(msg, TaskDone):
                if eng.direct is not None or eng.direct_out:    # (its WorkerReplaced, read first, unset `direct`)
                    self._nanny_reported(eng, msg)
                self._task_done(eng, msg)
            elif isinstance(msg, WorkerReplaced):        # its actors died with the old worker
                self._pull_engine_gone(eng)
                self._worker_gone(eng)
                self.feed(WorkerRestarted(time.time(), eng.engine_id, msg.reason))
            elif not isinstance(msg, Heartbeat):
                raise proto.ProtocolError(f"unexpected {type(msg).__name__} from engine {eng.engine_id}")
        elif isinstance(msg, Submit):
            self._submit(link, msg)
            self.memory.check_reads(link)   # a client that does not read: its answers are capped at the source
        elif isinstance(msg, Request):      # it reads what was written before it arrived (core records included)
            self.save_records()
            self.memory.request_read(link)
            self.gate.later(link, lambda: self._answer(link, msg))
            self.memory.check_reads(link)
        else:
            raise proto.ProtocolError(f"unexpected {type(msg).__name__} from a client")

    def _answer(self, link: Link, msg: Request) -> None:
        self.memory.request_answered(link)
        self.requests.handle(link, msg)
        self.memory.check_reads(link)       # replies cannot wait in the database: past the cap, stop reading

    def _on_invalid(self, link: Link, exc: InvalidField) -> bool:
        """A client's message with one bad field: its task or request fails naming the field (True); else close."""
        if link.role != "client":
            return False
        if exc.msg_type == "submit" and exc.task_id is not None:
            self._send_result(link, TaskResult(
                task_id=exc.task_id, status="error", engine_id=None, submitted_at=None, started_at=None,
                completed_at=None, received_at=time.time(), ename="ValueError", evalue=str(exc)))
            return True
        if exc.msg_type == "req" and exc.rid is not None:
            link.send(Reply(rid=exc.rid, ok=False, error=["ValueError", str(exc)]))
            return True
        return False

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
        if self._engines_paused and link.transport is not None:     # database backpressure applies to it too
            link.transport.pause_reading()
        self.feed(EngineJoined(time.time(), eid, float(msg.speed), frozenset(msg.labels)))

    def _engine_lost(self, eid: int, reason: str) -> None:
        eng = self.engines.pop(eid, None)
        if eng is None:
            return
        log.warning("engine %d lost: %s", eid, reason)
        self._pull_engine_gone(eng)
        self.functions.drop(eid)
        eng.link.close(reason)
        if eng.direct is not None:
            eng.direct.close(reason)
        self._broadcast_engines()
        self.feed(EngineLost(time.time(), eid, reason))

    def _broadcast_engines(self) -> None:
        msg = EnginesChanged(ids=tuple(sorted(self.engines)))
        for link in self.clients:
            link.send(msg)

    async def _db_flusher(self) -> None:
        while True:                       # the writer thread commits; this hands it the core's records and
            await asyncio.sleep(DB_FLUSH_INTERVAL_S)     # has it commit what no answer asked for yet
            self.save_records()
            self.db.request_commit()

    def _db_committed_threadsafe(self, seq: int) -> None:
        if threading.get_ident() == self._loop_thread:     # an inline commit (taskdb.py): no hand-off needed
            return self._db_committed(flush=True)
        if self._commit_signalled:          # one wake-up of the loop covers every commit until it runs
            return
        if self._loop is not None and not self._loop.is_closed():
            self._commit_signalled = True
            self._loop.call_soon_threadsafe(self._db_committed)

    def _db_failed_threadsafe(self, exc: BaseException) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._db_failed, exc)

    def _db_committed(self, flush: bool = False) -> None:
        self._commit_signalled = False
        if self.gate.failing and self.db.error is None:
            log.warning("task database writes succeed again; accepting submissions")
            self.gate.failing = False
        self.db.forget_committed()
        self.gate.release(flush)
        if self._engines_paused and self.db.queued_bytes <= DB_BACKLOG_PAUSE_BYTES // 2:
            self._resume_engines()

    def _db_failed(self, exc: BaseException) -> None:
        """The writer could not commit: a lock only delays answers; anything else also refuses new submissions."""
        if getattr(exc, "sqlite_errorname", "").startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            log.warning("task database is locked by another process; writes (and the answers after them) wait: %s",
                        exc)
            return
        log.error("task database write failed (writes stay queued, retrying; new submissions are refused): %s", exc)
        self.gate.failing = True
        self.gate.release()

    def save_records(self) -> None:
        rows = self._records.drain_rows()
        if rows:
            self.db.add_record_rows(rows)

    # ----------------------------------------------------------------------- task traffic
    def _submit(self, link: Link, msg: Submit) -> None:
        refusal = None
        payload = msg.payload
        try:                # first: a function's bytes are kept whatever becomes of this task (later calls name them)
            payload = self.functions.accept(payload)        # (a framed call: its task keeps it by digest alone)
            if self.gate.failing:
                refusal = ("ClusterError", f"task database unavailable ({self.db.error}): the submission was not "
                                           "accepted; retry once the database accepts writes again")
            elif msg.task_id in self.pending or self.db.is_id_used(msg.task_id):
                refusal = ("ValueError", f"task id {msg.task_id!r} is already in use; a task id is never reused")
            elif msg.flags.actor is not None or msg.flags.actor_id is not None:
                refusal = self.actor_dir.refusal(msg.flags)
        except ValueError as exc:
            refusal = ("ValueError", str(exc))
        except sqlite3.Error as exc:
            refusal = ("ClusterError", f"task database unavailable ({exc}): the submission was not accepted")
        if refusal is not None:         # a refusal promises nothing: it need not wait for the database
            return link.send_now(TaskResult(
                task_id=msg.task_id, status="error", engine_id=None, submitted_at=msg.submitted_at, started_at=None,
                completed_at=None, received_at=time.time(), ename=refusal[0], evalue=refusal[1]))
        flags = msg.flags
        try:
            self.db.add_task(msg.task_id, str(id(link)), _NO_FLAGS_DOC if flags is NO_FLAGS else flags.to_dict(),
                             msg.submitted_at, payload)
        except (sqlite3.Error, TaskIdInUse) as exc:        # an in-memory database refused it
            return link.send_now(TaskResult(
                task_id=msg.task_id, status="error", engine_id=None, submitted_at=msg.submitted_at, started_at=None,
                completed_at=None, received_at=time.time(), ename="ValueError", evalue=str(exc)))
        self.pending.add(PendingTask(msg.task_id, payload, flags, msg.submitted_at, {link}, owner=link))
        self.actor_dir.add(msg.task_id, payload, flags)
        spec = spec_for(msg.task_id, flags)
        try:
            self._feed_and_send(TaskSubmitted(time.time(), spec))     # an idle engine gets it at once
        except SchedulerMisuse as exc:     # e.g. an id the core has already seen
            self.pending.pop(msg.task_id)
            self.db.finish_task(msg.task_id, "error", None, None, None, time.time(), None, "ValueError", str(exc))
            self._send_result(link, TaskResult(
                task_id=msg.task_id, status="error", engine_id=None, submitted_at=msg.submitted_at, started_at=None,
                completed_at=None, received_at=time.time(), ename="ValueError", evalue=str(exc)))

    def _task_done(self, eng: EngineConn, msg: TaskDone) -> None:
        key = (msg.task_id, msg.attempt)
        try:
            eng.given.remove(key)
            if eng.direct_out:
                carrier = eng.direct_out.pop(key, None)
                if carrier is not None:
                    carrier.sent.pop(key, None)
                    if not carrier.sent and carrier.link is not eng.direct:     # its worker went: done with it
                        carrier.link.close("its worker is gone")
        except KeyError:                # not sent to this engine: a forged or confused report changes nothing
            log.warning("engine %d reported task %r attempt %d, which it was not given; ignored",
                        eng.engine_id, msg.task_id[:64], msg.attempt)
            return
        task = self.pending.get(msg.task_id)
        if task is None and msg.task_id not in self.actor_dir.creations:    # (an actor's re-creation goes on)
            return
        if msg.status == FN_UNKNOWN and not self.functions.first_miss(eng.engine_id, msg.task_id, msg.attempt):
            msg = replace(msg, status="died", ename="EngineError",      # it had the bytes: a broken engine
                          evalue=f"engine {eng.engine_id} did not run a call that carried its function")
        if msg.status == FN_UNKNOWN:        # its worker lacks the function: the same attempt again, with it
            eng.link.send(RunTask(task_id=msg.task_id, attempt=msg.attempt, time_limit_s=task.flags.time_limit_s,
                                  payload=self.functions.payload_for(eng.engine_id, task.payload, resend=True)))
            eng.given.add(key)
            return eng.link.flush()
        if msg.status in ("died", "time_limit", "aborted"):     # its worker may be a fresh one: it holds nothing
            self.functions.forget(eng.engine_id)
        now = time.time()
        if msg.status == "unmet":
            return self.feed(DependencyUnmet(now, msg.task_id, eng.engine_id, msg.attempt))
        if task is not None:
            task.reply = (msg, eng.engine_id)
        ok = msg.status == "ok"
        delivers: list[Deliver] | None = None
        if msg.status == "died":            # the engine's worker process died: the core retries or fails it
            self._feed_and_send(WorkerDied(now, msg.task_id, eng.engine_id, msg.attempt, msg.evalue or ""))
        else:
            outcome = (Outcome.OK if ok else Outcome.ABORTED if msg.status == "aborted"
                       else Outcome.TIME_LIMIT if msg.status == "time_limit" else Outcome.ERROR)
            self._delivers = []             # the engine's next task first, this one's result after (below)
            try:                            # (bench_live.py: 1 ms tasks, an engine waits for that write)
                self._feed_and_send(TaskFinished(now, msg.task_id, eng.engine_id, msg.attempt, outcome,
                                                 None if ok else (msg.ename or TASK_ABORTED), msg.started_at))
            finally:
                delivers, self._delivers = self._delivers, None
        if delivers:
            for action in delivers:
                self._pump.handlers[Deliver](action)
        if self.db.queued_bytes > DB_BACKLOG_PAUSE_BYTES and not self._engines_paused:
            self._pause_engines()

    # ------------------------------------------------------------------- core: events/actions
    def feed(self, event: Event) -> None:
        """Hand one event to the core and carry out its actions (events raised meanwhile queue up: core/pump.py)."""
        self._pump.feed(event)

    def _feed_and_send(self, event: Event) -> None:
        """`feed`, then write the RunTasks it dispatched now, not a loop turn later after other reads (bench_live.py:
        round trip); they are queued without a write callback each (bench_cpu_split.py)."""
        self._send_direct = True
        try:
            self.feed(event)
        finally:
            self._send_direct = False
            for link in self._dispatched:
                link.flush()
            self._dispatched.clear()

    def _write_journal(self, event: Event, actions: list[Any]) -> None:
        pickle.dump((event, actions), self._journal)  # type: ignore[arg-type]

    # The pump's action handlers, one per action type (_deliver is below).
    def _do_dispatch(self, action: Dispatch) -> None:
        try:
            eng = self.engines.get(action.engine_id)
            task = self.pending.get(action.task_id)
            payload, flags = (task.payload, task.flags) if task is not None else \
                self.actor_dir.creations.get(action.task_id, (None, None))     # an actor's re-creation
            if eng is None or eng.link.closed or flags is None:
                self._pump.post(DispatchFailed(time.time(), action.task_id, action.engine_id, action.attempt))
            else:
                link = eng.direct
                if link is not None and not link.closed and len(eng.given) == len(link.state.sent) \
                        and flags.actor_id is None and not flags.direct and (not eng.given or link.state.local):
                    # Everything else out went this way too: straight to the worker (no nanny hop), queued there
                    # behind them (direct_links.py; over TCP one at a time). Not an actor call (via the nanny to
                    # its threads), nor a DirectView task (the next one, via the nanny, could overtake it); and once
                    # a task is out through the nanny, none goes this way until it is back (the worker takes it
                    # after these).
                    key = (action.task_id, action.attempt)
                    link.state.sent[key] = None
                    eng.direct_out[key] = link.state
                else:
                    link = eng.link
                if flags.actor is None and flags.actor_id is None and flags.time_limit_s is None:   # the usual task
                    frame = run_frame(action.task_id, action.attempt,
                                      self.functions.payload_for(action.engine_id, payload))
                    (link.queue_frame if self._send_direct else link.send_encoded)(frame)   # (_feed_and_send flushes)
                else:
                    link.send(RunTask(task_id=action.task_id, attempt=action.attempt, time_limit_s=flags.time_limit_s,
                                      payload=self.functions.payload_for(action.engine_id, payload),
                                      **(self.actor_dir.run_fields(action.task_id)
                                         if flags.actor is not None or flags.actor_id is not None else {})))
                eng.given.add((action.task_id, action.attempt))
                self._dispatched.add(link)
                self.db.set_attempts(action.task_id, action.attempt + 1)    # a restart retries it or fails it
        except Exception:        # (guarded here, not by a wrapper: one call less per task)
            log.exception("carrying out %r failed", action)

    def _do_fail(self, action: Fail) -> None:
        task = self.pending.get(action.task_id)
        if task is None:
            return
        self._finish(action.task_id, TaskResult(      # (with the task's own fields: `_finish` copies none)
            task_id=action.task_id, status="error", engine_id=None, submitted_at=task.submitted_at, started_at=None,
            completed_at=None, received_at=time.time(), ename=action.error_name, evalue=action.message,
            label=task.flags.label))

    def _do_cancel(self, action: Cancel) -> None:
        eng = self.engines.get(action.engine_id)
        if eng is not None:
            if eng.direct_out:
                self._direct_cancel(eng, action.task_id, action.attempt)
            eng.link.send(CancelTask(task_id=action.task_id, attempt=action.attempt))

    def _do_drop_actor(self, action: DropActor) -> None:
        eng = self.engines.get(action.engine_id)
        if eng is not None:
            eng.link.send(DeleteActor(actor_id=action.actor_id))

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
        try:
            if self._delivers is not None:      # during an engine's report: carried out once its next task is out
                return self._delivers.append(action)
            task = self.pending.get(action.task_id)
            if task is None or task.reply is None:
                log.error("core delivered task %s but no reply is held", action.task_id)
                return
            msg, eid = task.reply
            eng = self.engines.get(eid)
            if eng is not None:
                eng.completed += 1
            if action.ok and msg.result is not None and task.flags.label is None and task.submitted_at is not None \
                    and msg.started_at is not None and not msg.stdout and not msg.stderr and msg.ename is None \
                    and msg.evalue is None and msg.traceback is None:
                return self._finish_ok(task, eid, msg)
            info = {"engine_id": eid, "engine_uuid": eng.uuid if eng else None, "method": "apply"}
            self._finish(action.task_id, TaskResult(
                task_id=action.task_id, status="ok" if action.ok else "error", engine_id=eid,
                submitted_at=task.submitted_at, started_at=msg.started_at, completed_at=msg.completed_at,
                received_at=time.time(), ename=msg.ename, evalue=msg.evalue, traceback=msg.traceback,
                engine_info=None if action.ok else info, label=task.flags.label, result=msg.result,
                stdout=msg.stdout, stderr=msg.stderr))
            if msg.error_full is not None:       # the whole error text, kept in the database only (taskdb.py)
                self.db.keep_error_text(str(action.task_id), msg.error_full)
        except Exception:        # (guarded here, not by a wrapper: one call less per task)
            log.exception("carrying out %r failed", action)

    def _finish(self, task_id: str, result: TaskResult) -> None:
        task = self.pending.pop(task_id)
        if task is None:
            return
        label = task.flags.label
        if result.submitted_at != task.submitted_at or result.label != label:
            result = replace(result, submitted_at=task.submitted_at, label=label)
        self.db.finish_task(task_id, result.status, result.engine_id, result.started_at, result.completed_at,
                            result.received_at, result.result, result.ename, result.evalue, result.traceback,
                            result.engine_info, result.stdout, result.stderr,
                            answer=result)        # get_result answers from it until committed
        owner = task.owner
        busy = owner is not None and self.pending.pending_of(owner) >= BATCH_RESULTS_IN_FLIGHT
        for link in task.subscribers:       # busy: many more of its results are coming, let them share one write
            self.memory.send_result(link, result, batched=busy and link is owner)

    def _finish_ok(self, task: PendingTask, eid: int, msg: TaskDone) -> None:
        """`_finish` of the usual success, its answer encoded straight from the values (no TaskResult built)."""
        tid = task.task_id
        self.pending.pop(tid)
        answer = (tid, eid, task.submitted_at, msg.started_at, msg.completed_at, time.time(), msg.result)
        self.db.finish_task(tid, "ok", eid, msg.started_at, msg.completed_at, answer[5], msg.result,
                            answer=answer, attempts=msg.attempt + 1)    # (the answer: get_result's until committed)
        frame = result_ok_frame(*answer, idle=not self.pending)     # (idle: its client may poll for the next one)
        owner = task.owner
        busy = owner is not None and self.pending.pending_of(owner) >= BATCH_RESULTS_IN_FLIGHT
        for link in task.subscribers:
            self.memory.send_result_frame(link, tid, frame, batched=busy and link is owner)

    @staticmethod
    def _send_result(link: Link, result: TaskResult) -> None:
        link.send(result)
