"""The controller's answers to client requests: queries, results, resubmit, abort, purge, shutdown.

Each request names an `op`; the handler replies with one Reply (ok + JSON-able value, or an
error `[ename, evalue]` that the client raises). Results travel as TaskResult messages, sent before
the Reply so the client has them when the Reply arrives. Task state changes still go through the
core (AbortRequested, TaskResubmitted, PurgeRequested): no rule is decided here.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import Any

from sched_lab.core import AbortRequested, Event, PurgeRequested, TaskResubmitted, TaskScheduler

from .actor_hub import ActorDirectory, ActorRequests
from .aio_link import Link
from .error import InvalidField
from .memory_guard import RESULT_KEYS, result_from_row
from .messages import Reply, Request, SignalEngine, StopEngine, TaskFlags, TaskResult, result_ok
from .task_table import EngineConn, PendingTask, TaskTable, spec_for
from .taskdb import TaskDB
from .wire_fields import check_request_args

log = logging.getLogger("real_cluster.controller")

REQUEST_SLICE = 2_000   # tasks one loop turn aborts, resubmits or purges: a big request leaves the loop to the others


class Later:
    """An op's answer that comes on a later loop turn: `start(reply)` begins the work, which calls `reply(value)`
    once done, or `reply(exc)` with a RequestError/ValueError/... for an error reply."""

    __slots__ = ("start",)

    def __init__(self, start: Callable[[Callable[[Any], None]], None]):
        self.start = start


class RequestError(Exception):
    """A request the controller refuses; becomes an error Reply (`ename` is the exception the client raises)."""

    def __init__(self, ename: str, evalue: str):
        super().__init__(ename, evalue)
        self.ename = ename
        self.evalue = evalue


class RequestHandler(ActorRequests):
    """Dispatches Request ops to methods named `op_<op>`.

    It shares the controller's tables (pending tasks, engines), scheduler and task database, and
    changes task state only through `feed` (events to the core); `save_records` drains the core's
    records into the database and `stop` ends the controller. `send_result(link, result)` sends a
    finished task's result (the controller's keeps it in the database while the client is not reading).
    `after_commit(link, run)` calls `run` once the writes queued so far have committed (the CommitGate's `later`);
    `send_stored(link, ids)` sends finished results from their committed rows (the MemoryGuard's, bounded);
    `undelivered()` names the results waiting in the database for a client (the MemoryGuard's).
    """

    def __init__(self, tasks: TaskTable, engines: dict[int, EngineConn], scheduler: TaskScheduler, db: TaskDB, *,
                 feed: Callable[[Event], None], save_records: Callable[[], None], stop: Callable[[], None],
                 send_result: Callable[[Link, TaskResult], None] | None = None, functions: Any = None,
                 after_commit: Callable[[Link, Callable[[], None]], None] | None = None,
                 send_stored: Callable[[Link, list[str]], None] | None = None,
                 undelivered: Callable[[], set[str]] | None = None):
        self.tasks = tasks
        self.engines = engines
        self.scheduler = scheduler
        self.db = db
        self.feed = feed
        self.save_records = save_records
        self.stop = stop
        self.send_result = send_result or (lambda link, result: link.send(result))
        self.after_commit = after_commit or (lambda link, run: run())
        self.send_stored = send_stored or self._send_stored
        self.undelivered = undelivered or set
        self.functions = functions          # fncache.FunctionRouter: per engine, functions shipped / by digest
        self.actor_dir = ActorDirectory(scheduler)     # the controller shares its own (actor_hub.py)

    def handle(self, link: Link, req: Request) -> None:
        method = getattr(self, f"op_{req.op}", None)
        try:
            if method is None:
                raise RequestError("ValueError", f"unknown request {req.op!r}")
            args = req.args if req.args_json is None else json.loads(req.args_json)
            check_request_args(req.op, args, req.rid)
            value = method(link, **args)
        except Exception as exc:            # (those `_reply` does not know are raised again)
            return self._reply(link, req, exc)
        if isinstance(value, Later):
            value.start(lambda value: self._reply(link, req, value, later=True))
        else:
            self._reply(link, req, value)

    @staticmethod
    def _reply(link: Link, req: Request, value: Any, later: bool = False) -> None:
        """Send `value` as the request's answer; an exception of the kinds a request may fail with as its error
        (any other is raised again, or, `later`, when nothing is left to raise it to, logged and answered)."""
        if isinstance(value, RequestError):
            error: list[str] | None = [value.ename, value.evalue]
        elif isinstance(value, InvalidField):
            error = ["ValueError", str(value)]
        elif isinstance(value, (TypeError, KeyError, ValueError)):
            error = [type(value).__name__, str(value)]
        elif isinstance(value, sqlite3.Error):      # the disk or database failed: the request fails, not the controller
            log.error("task database error answering %r: %s", req.op, value)
            error = ["ClusterError", f"task database unavailable: {value}"]
        elif isinstance(value, BaseException):
            if not later:
                raise value
            log.error("request %r failed", req.op, exc_info=value)
            error = [type(value).__name__, str(value)]
        else:
            error = None
        if error is not None:
            return link.send(Reply(rid=req.rid, ok=False, error=error))
        try:
            link.send(Reply(rid=req.rid, ok=True, value=value))
        except ValueError:            # too large for a frame header: the value goes as a JSON buffer
            link.send(Reply(rid=req.rid, ok=True, value_json=json.dumps(value).encode()))

    # ------------------------------------------------------------------------------ queries
    def op_queue_status(self, link: Link, verbose: bool = False) -> dict[str, Any]:
        scheduler = self.scheduler
        out: dict[str, Any] = {}
        if verbose:                        # ids instead of counts (completed ones from the database)
            for eid in sorted(self.engines):
                done = self.db.query({"engine_id": eid, "status": {"$in": ["ok", "error"]}}, ["msg_id"])
                running = scheduler.running_on(eid) if eid in scheduler.engine_ids else []
                direct = set(self._direct(running))
                out[str(eid)] = {"queue": [t for t in running if t in direct],
                                 "completed": [row["msg_id"] for row in done],
                                 "tasks": [t for t in running if t not in direct]}
            out["unassigned"] = scheduler.unassigned_ids()
            return out
        core = scheduler.queue_status()
        actors = self.actor_dir.live_on()
        for eid, eng in sorted(self.engines.items()):     # 'queue': direct (DirectView) tasks, as ipyparallel's MUX
            direct = len(self._direct(scheduler.running_on(eid))) if eid in scheduler.engine_ids else 0
            out[str(eid)] = {"queue": direct, "completed": eng.completed, "tasks": core.get(eid, 0) - direct}
            if actors.get(eid):             # ours: live actors on it (ipyparallel's three keys otherwise)
                out[str(eid)]["actors"] = actors[eid]
        out["unassigned"] = core.get("unassigned", 0)
        return out

    def _direct(self, task_ids: list[str]) -> list[str]:
        """The direct (DirectView) tasks among `task_ids`."""
        out = []
        for tid in task_ids:
            task = self.tasks.get(tid)
            if task is not None and task.flags.direct:
                out.append(tid)
        return out

    def op_function_stats(self, link: Link) -> dict[str, dict[str, int]]:
        """Per engine: calls sent with their function's bytes, by digest alone, and resent after a miss."""
        return {str(eid): self.functions.counts(eid) for eid in sorted(self.engines)} if self.functions else {}

    pull_stats: Callable[[], dict[str, int]] = dict      # the controller's (pulling.py)

    def op_pull_stats(self, link: Link) -> dict[str, int]:
        """How tasks went by pulling (pulling.py): staged, taken, read back, ...; empty without `--pull`."""
        return self.pull_stats()

    def op_hub_history(self, link: Link) -> list[str]:
        return self.db.hub_history()

    def op_db_query(self, link: Link, query: dict, keys: list[str] | None = None) -> list[dict]:
        rows = self.db.query(query, keys)
        for row in rows:
            for k, v in row.items():
                if isinstance(v, bytes):
                    row[k] = {"$bytes": base64.b64encode(v).decode()}
        return rows

    def op_records(self, link: Link) -> list[list]:
        self.save_records()
        return [list(r.to_row()) for r in self.db.records()]

    # ------------------------------------------------------------------------------ results
    def op_get_result(self, link: Link, ids: list[str]) -> dict[str, list[str]]:
        """Subscribe `link` to the pending tasks among `ids` and send it the finished ones' results: answers still
        held in memory at once, stored ones through the MemoryGuard (read from the database only as the client has
        room: asking for many large results costs the controller at most its per-client cap). KeyError, and
        nothing sent, if an id is unknown."""
        pending, done, held, stored = [], [], [], []
        stored_rows = self.db.rows_by_id([t for t in ids if t not in self.tasks], ["status"])   # (not the results)
        for tid in ids:
            if tid in self.tasks:
                pending.append(tid)
                continue
            answer = self.db.unsaved_answer(tid)     # finished, its row not committed yet (the gate holds this)
            if answer is not None:
                held.append((tid, answer))
            elif tid in stored_rows:
                stored.append(tid)
            else:
                raise RequestError("KeyError", f"no such task: {tid!r}")
            done.append(tid)
        for tid in pending:
            self.tasks.subscribe(tid, link)
        for tid, answer in held:
            self.send_result(link, answer if isinstance(answer, TaskResult) else result_ok(*answer))
        if stored:
            self.send_stored(link, stored)
        return {"pending": pending, "done": done}

    def _send_stored(self, link: Link, ids: list[str]) -> None:
        """`send_stored` without a MemoryGuard: every row read and sent at once."""
        rows = self.db.rows_by_id(ids, RESULT_KEYS)
        for tid in ids:
            self.send_result(link, result_from_row(tid, rows[tid]))

    def op_resubmit(self, link: Link, ids: list[str]) -> dict[str, str] | Later:
        found = self.db.rows_by_id(ids, ["flags", "payload", "status"])   # (a query per id: 20,000 took 2.4 s)
        rows = []
        for tid in ids:
            if tid in self.tasks:
                raise RequestError("ValueError", f"cannot resubmit task {tid!r}: it has not finished")
            if tid not in found:
                raise RequestError("KeyError", f"no such task: {tid!r}")
            rows.append(found[tid])
        mapping: dict[str, str] = {}

        def resubmit(part: list[dict[str, Any]]) -> None:
            for row in part:
                new_id = uuid.uuid4().hex
                mapping[row["msg_id"]] = new_id
                self._resubmit(link, row["msg_id"], new_id, TaskFlags.from_dict(row["flags"]), row["payload"])
        return self._in_slices(link, rows, resubmit, lambda: mapping)

    def _resubmit(self, link: Link, old_id: str, new_id: str, flags: TaskFlags, payload: bytes) -> None:
        now = time.time()
        self.tasks.add(PendingTask(new_id, payload, flags, now, {link}))
        self.db.add_task(new_id, str(id(link)), flags.to_dict(), now, payload, resubmit_of=old_id)
        self.db.set_resubmitted(old_id, new_id)
        self.feed(TaskResubmitted(now, spec_for(new_id, flags)))

    # ------------------------------------------------------------------------------ control
    def op_abort(self, link: Link, ids: list[str]) -> int | Later:
        """How many of `ids` were still unfinished (each is aborted through the core, `_in_slices`)."""
        n = 0

        def abort(part: list[str]) -> None:
            nonlocal n
            for tid in part:
                if tid in self.tasks:       # (one that finished meanwhile is not counted)
                    n += 1
                    self.feed(AbortRequested(time.time(), tid))
        return self._in_slices(link, ids, abort, lambda: n)

    def _in_slices(self, link: Link, items: list[Any], work: Callable[[list[Any]], None],
                   answer: Callable[[], Any]) -> Any:
        """`work(part)` on `items` REQUEST_SLICE at a time, then `answer()`. Up to one slice: at once. More: a Later,
        each slice on a later loop turn once the writes before it have committed, the reply after the last; the
        other peers are served in between, and what they are told waits for one slice's writes at most
        (bench_abort.py: 100,000 aborts at once held another client's request 13 s; sliced, 0.55 s at most)."""
        if len(items) <= REQUEST_SLICE:
            work(items)
            return answer()

        def step(reply: Callable[[Any], None], start: int) -> None:
            try:
                work(items[start:start + REQUEST_SLICE])
            except Exception as exc:
                return reply(exc)
            if start + REQUEST_SLICE >= len(items):
                return reply(answer())
            asyncio.get_running_loop().call_soon(
                self.after_commit, link, lambda: step(reply, start + REQUEST_SLICE))
        return Later(lambda reply: step(reply, 0))

    def op_purge(self, link: Link, ids: list[str] | None = None) -> int | Later:
        """Delete finished tasks (all when `ids` is None); returns how many. Results still waiting in the database
        for a client that is not reading are kept: "all" leaves them, named ids are refused (they would be lost)."""
        waiting = self.undelivered()
        if ids is not None:
            busy = [t for t in ids if t in self.tasks]
            if busy:
                raise RequestError("RuntimeError", f"cannot purge tasks that have not finished: {busy[:5]}")
            held = [t for t in ids if t in waiting]
            if held:
                raise RequestError("RuntimeError", f"cannot purge results not yet sent to their client: {held[:5]}")
        everything = ids is None
        if ids is None:
            ids = [row["msg_id"] for row in self.db.query({"status": {"$ne": "pending"}}, ["msg_id"])]
        whole = everything and len(ids) <= REQUEST_SLICE    # in one turn: the core may drop all it holds of them
        n = 0

        def purge(part: list[str]) -> None:     # (one that finished meanwhile is not among them; one a client was
            nonlocal n                          # meanwhile left to fetch is kept)
            kept = self.undelivered()
            deleted = self.db.purge(part, keep=kept)
            self.feed(PurgeRequested(time.time(), None if whole and not kept else tuple(deleted)))
            n += len(deleted)
        return self._in_slices(link, ids, purge, lambda: n)

    def op_signal(self, link: Link, signum: int, targets: list[int] | None = None) -> list[int]:
        """Send `signum` to the task running on each target engine (all by default); returns the engines asked."""
        msg = SignalEngine(signum=signum)           # ValueError (-> error reply) for a bad number
        if targets is not None and (not isinstance(targets, list) or not all(type(t) is int for t in targets)):
            raise RequestError("TypeError", f"targets must be a list of engine ids, got {targets!r}")
        asked = []
        for eid, eng in list(self.engines.items()):
            if targets is None or eid in targets:
                eng.link.send(msg)
                asked.append(eid)
        return asked

    def op_shutdown(self, link: Link, targets: list[int] | None = None, hub: bool = False) -> list[int]:
        stopped = []
        for eid, eng in list(self.engines.items()):
            if targets is None or eid in targets:
                eng.link.send(StopEngine())
                stopped.append(eid)
        if hub:
            log.info("shutdown requested by a client")
            asyncio.get_running_loop().call_later(0.05, self.stop)
        return stopped
