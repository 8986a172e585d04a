"""The Client: a connection to a controller, with a background asyncio IO thread and a blocking API.

How this works. The constructor starts one daemon thread running an asyncio loop that owns the
connection (`aio_link.Link`, role "client"). Submitting pickles and encodes in the caller's
thread and hands the finished frame to the IO thread (one wake-up per burst, one write per loop
turn). The IO thread unpickles results and resolves AsyncResults; requests (queries, resubmit,
abort, ...) wait on a `concurrent.futures.Future` answered by the controller's Reply.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import itertools
import json
import logging
import threading
import time
import uuid
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from . import protocol as proto
from .aio_link import Link
from .asyncresult import AsyncResult
from .error import AuthenticationError, ClusterError, ConnectionFailed, remote_error
from .messages import EnginesChanged, Reply, Request, Submit, TaskFlags, TaskResult, to_wire
from .profile import client_file, read_connection_file, wait_for_connection_file
from .serialize import unpack_result

log = logging.getLogger("real_cluster.client")

_TIMES = (("submitted", "submitted_at"), ("started", "started_at"), ("completed", "completed_at"),
          ("received", "received_at"))


def _ids_of(jobs: Any) -> list[str]:
    """Task ids from an id, an AsyncResult, or a list of those."""
    if jobs is None:
        return []
    if isinstance(jobs, str):
        return [jobs]
    if isinstance(jobs, AsyncResult):
        return list(jobs.msg_ids)
    out: list[str] = []
    for job in jobs:
        if isinstance(job, str):
            out.append(job)
        elif isinstance(job, AsyncResult):
            out.extend(job.msg_ids)
        else:
            raise TypeError(f"expected task ids or AsyncResults, got {job!r}")
    return out


class Client:
    """A connection to a cluster: `Client(profile="name")` or `Client(connection_file=path)`.

    Raises TimeoutError if no connection file appears within `timeout` seconds, ConnectionFailed
    if the controller cannot be reached, AuthenticationError if the key is wrong.
    """

    def __init__(self, connection_file: str | Path | None = None, *, profile: str | None = None,
                 timeout: float = 10.0):
        path = Path(connection_file) if connection_file else client_file(profile)
        self.connection_file = path
        info = wait_for_connection_file(path, timeout) if not path.exists() else read_connection_file(path)
        self.info = info
        self.profile = profile or info.profile
        self.history: list[str] = []
        self.outstanding: set[str] = set()
        self._meta: dict[str, dict[str, Any]] = {}
        self._done: dict[str, tuple[bool, Any]] = {}
        self._waiters: dict[str, list[AsyncResult]] = {}
        self._replies: dict[int, Future] = {}
        self._rids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:20]        # task ids: 80 random bits per client + a counter
        self._id_seq = itertools.count()
        self._lock = threading.Lock()
        self._outbox: list[bytes] = []
        self._engines: list[int] = []
        self._engines_cond = threading.Condition()
        self._closed = False
        self._lost: str | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="real_cluster-client-io", daemon=True)
        self._thread.start()
        ready: Future = Future()
        self._link: Link | None = None

        def connect() -> None:
            async def go() -> None:
                def on_ready(link: Link) -> None:
                    ready.set_result(link)

                def on_close(link: Link, reason: str) -> None:
                    if not ready.done():    # closed during the handshake: the controller refused our key
                        ready.set_exception(AuthenticationError(f"the controller refused the handshake ({reason})")
                                            if link.sent_proof else ConnectionFailed(reason))
                    self._on_close(link, reason)

                await self._loop.create_connection(
                    lambda: Link(info.key, server=False, role="client", on_message=self._on_message,
                                 on_ready=on_ready, on_close=on_close), info.host, info.port)
            task = asyncio.ensure_future(go())
            task.add_done_callback(lambda t: t.exception() and not ready.done() and ready.set_exception(
                ConnectionFailed(f"cannot connect to {info.host}:{info.port}: {t.exception()}")))
        self._loop.call_soon_threadsafe(connect)
        try:
            self._link = ready.result(timeout)
        except BaseException:
            self._stop_loop()
            raise
        with self._engines_cond:   # the controller sends the engine list right after the handshake
            self._engines_cond.wait_for(lambda: self._engines or self._lost is not None, timeout=0.2)

    # ------------------------------------------------------------------------ IO thread side
    def _on_message(self, link: Link, msg: Any) -> None:
        if isinstance(msg, TaskResult):
            self._on_result(msg)
        elif isinstance(msg, Reply):
            fut = self._replies.pop(msg.rid, None)
            if fut is not None and not fut.done():
                if msg.ok:
                    fut.set_result(msg.value if msg.value_json is None else json.loads(msg.value_json))
                else:
                    ename, evalue = (msg.error or ["ClusterError", "request failed"])[:2]
                    cls = getattr(builtins, ename, None)
                    exc_type = cls if isinstance(cls, type) and issubclass(cls, Exception) else ClusterError
                    fut.set_exception(exc_type(evalue))
        elif isinstance(msg, EnginesChanged):
            with self._engines_cond:
                self._engines = list(msg.ids)
                self._engines_cond.notify_all()

    def _on_result(self, msg: TaskResult) -> None:
        md = self._meta.setdefault(msg.task_id, {"msg_id": msg.task_id})
        for key, attr in _TIMES:
            value = getattr(msg, attr)
            if value is not None:
                md[key] = value
        md.update(engine_id=msg.engine_id, status=msg.status, label=msg.label)
        if msg.status == "ok":
            try:
                ok, value = True, unpack_result(msg.result) if msg.result is not None else None
            except Exception as exc:
                ok, value = False, ClusterError(f"cannot unpickle the result of {msg.task_id}: {exc!r}")
        else:
            ok, value = False, remote_error(msg.ename or "RemoteError", msg.evalue or "", msg.traceback or "",
                                            msg.engine_info)
            md["error"] = value
        with self._lock:
            self._done[msg.task_id] = (ok, value)
            self.outstanding.discard(msg.task_id)
            waiters = self._waiters.pop(msg.task_id, ())
        for ar in waiters:
            ar._part_done(msg.task_id, ok, value)

    def _on_close(self, link: Link, reason: str) -> None:
        self._lost = reason
        error = ConnectionFailed(f"connection to the controller lost: {reason}")
        with self._lock:
            waiters, self._waiters = self._waiters, {}
            replies, self._replies = self._replies, {}
        for tid, ars in waiters.items():
            for ar in ars:
                ar._part_done(tid, False, error)
        for fut in replies.values():
            if not fut.done():
                fut.set_exception(error)
        with self._engines_cond:
            self._engines_cond.notify_all()

    def _flush_outbox(self) -> None:
        with self._lock:
            frames, self._outbox = self._outbox, []
        if self._link is not None and not self._link.closed:
            for frame in frames:
                self._link.send_encoded(frame)

    # ----------------------------------------------------------------------- caller side
    def _send(self, msg: Any) -> None:
        if self._lost is not None or self._closed:
            raise ConnectionFailed(f"not connected to the controller ({self._lost or 'closed'})")
        frame = proto.encode_frame(*to_wire(msg))
        with self._lock:
            wake = not self._outbox
            self._outbox.append(frame)
        if wake:
            self._loop.call_soon_threadsafe(self._flush_outbox)

    def _request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any:
        rid = next(self._rids)
        fut: Future = Future()
        self._replies[rid] = fut
        try:
            self._send(Request(rid=rid, op=op, args=args))
        except ValueError:      # too large for a frame header (e.g. 100,000 ids): the args go as a JSON buffer
            self._send(Request(rid=rid, op=op, args={}, args_json=json.dumps(args).encode()))
        return fut.result(timeout)

    def _track(self, ar: AsyncResult) -> AsyncResult:
        ready = []
        with self._lock:
            for mid in ar.msg_ids:
                if mid in self._done:
                    ready.append((mid, *self._done[mid]))
                else:
                    self._waiters.setdefault(mid, []).append(ar)
        for mid, ok, value in ready:
            ar._part_done(mid, ok, value)
        return ar

    def submit_task(self, payload: bytes, flags: TaskFlags) -> str:
        """Send one task (an already packed call); returns its id. Used by views."""
        tid = f"{self._id_prefix}{next(self._id_seq):012x}"
        now = time.time()
        self._meta[tid] = {"msg_id": tid, "submitted": now, "status": "pending", "engine_id": None,
                           "label": flags.label, "after": flags.after, "follow": flags.follow}
        with self._lock:
            self.outstanding.add(tid)
        self.history.append(tid)
        self._send(Submit(task_id=tid, flags=flags, submitted_at=now, payload=payload))
        return tid

    def metadata_of(self, msg_id: str) -> dict[str, Any]:
        """What is known about a task so far (keys: msg_id, submitted, started, completed, received, engine_id, status, label)."""
        return dict(self._meta.get(msg_id) or {"msg_id": msg_id, "status": "pending"})

    # ------------------------------------------------------------------------------ engines
    @property
    def ids(self) -> list[int]:
        """The ids of the engines registered now."""
        with self._engines_cond:
            return sorted(self._engines)

    def __len__(self) -> int:
        return len(self.ids)

    def wait_for_engines(self, n: int, timeout: float | None = 30.0) -> list[int]:
        """Wait until at least `n` engines are registered. Raises TimeoutError."""
        with self._engines_cond:
            if not self._engines_cond.wait_for(lambda: len(self._engines) >= n or self._lost is not None, timeout):
                raise TimeoutError(f"{len(self._engines)} of {n} engines registered after {timeout} s")
        if self._lost is not None:
            raise ConnectionFailed(self._lost)
        return self.ids

    def load_balanced_view(self, targets: Any = None, **flags: Any) -> Any:
        """A LoadBalancedView over all engines (or `targets`), with `flags` set through `set_flags`."""
        from .view import LoadBalancedView
        view = LoadBalancedView(self)
        view.set_flags(targets=None if targets == "all" else targets, **flags)
        return view

    # ------------------------------------------------------------------------------ results
    def get_result(self, indices_or_msg_ids: Any = None, block: bool = False, timeout: float | None = None) -> Any:
        """The result of tasks from any client (ids, AsyncResults or history indices; default the last).

        Returns an AsyncResult, or its value when `block`. Raises KeyError for unknown ids.
        """
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        single = isinstance(indices_or_msg_ids, (str, int, AsyncResult))
        items = [indices_or_msg_ids] if single else list(indices_or_msg_ids)
        ids: list[str] = []
        for item in items:
            ids.extend([self.history[item]] if isinstance(item, int) else _ids_of(item))
        ar = AsyncResult(self, ids, "get_result", single=single and len(ids) == 1)
        self._track(ar)
        missing = [m for m in ids if m not in self._done]
        if missing:
            self._request("get_result", ids=missing)
        return ar.get(timeout) if block else ar

    def resubmit(self, indices_or_msg_ids: Any = None, block: bool = False) -> Any:
        """Run finished tasks again (same function, arguments and flags) under new ids; returns an AsyncResult."""
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        items = [indices_or_msg_ids] if isinstance(indices_or_msg_ids, (str, int, AsyncResult)) else indices_or_msg_ids
        ids: list[str] = []
        for item in items:
            ids.extend([self.history[item]] if isinstance(item, int) else _ids_of(item))
        mapping = self._request("resubmit", ids=ids)
        new_ids = [mapping[i] for i in ids]
        for nid in new_ids:
            self._meta.setdefault(nid, {"msg_id": nid, "submitted": time.time(), "status": "pending"})
            self.history.append(nid)
        ar = self._track(AsyncResult(self, new_ids, "resubmit", single=len(new_ids) == 1))
        return ar.get() if block else ar

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for tasks (default: everything this client submitted); returns whether all finished."""
        ids = _ids_of(jobs) if jobs is not None else list(self.outstanding)
        if not ids:
            return True
        ar = AsyncResult(self, ids, "wait", single=False)
        self._track(ar)
        unknown = [i for i in ids if i not in self._done and i not in self._meta]
        if unknown:
            self._request("get_result", ids=unknown)
        return ar.wait(timeout)

    def abort(self, jobs: Any = None) -> int:
        """Abort tasks that have not started (default: all outstanding); returns how many were still pending."""
        ids = _ids_of(jobs) if jobs is not None else list(self.outstanding)
        # the controller fails each one through the scheduler and the database: allow for a big batch
        return self._request("abort", timeout=30.0 + 1e-3 * len(ids), ids=ids) if ids else 0

    # ------------------------------------------------------------------------------ queries
    def queue_status(self, targets: Any = None, verbose: bool = False) -> dict[Any, Any]:
        """`{engine_id: {"queue", "completed", "tasks"}, "unassigned": n}` (one engine's dict for an int target);
        with `verbose`, lists of task ids instead of counts."""
        raw = self._request("queue_status", verbose=True) if verbose else self._request("queue_status")
        out: dict[Any, Any] = {int(k) if k != "unassigned" else k: v for k, v in raw.items()}
        if isinstance(targets, int):
            return out[targets]
        if targets not in (None, "all"):
            out = {k: v for k, v in out.items() if k == "unassigned" or k in set(targets)}
        return out

    def hub_history(self) -> list[str]:
        """Every task id in the controller's database, oldest first."""
        return self._request("hub_history")

    def db_query(self, query: dict[str, Any], keys: list[str] | None = None) -> list[dict[str, Any]]:
        """Task records matching a Mongo-style query (`$lt $gt $lte $gte $eq $ne $in $nin`)."""
        rows = self._request("db_query", query=query, keys=keys)
        for row in rows:
            for k, v in row.items():
                if isinstance(v, dict) and "$bytes" in v:
                    row[k] = base64.b64decode(v["$bytes"])
        return rows

    def records(self) -> list[Any]:
        """The core's TaskRecords of every attempt the controller has seen."""
        from sched_lab.core import TaskRecord
        return [TaskRecord.from_row(r) for r in self._request("records")]

    def purge_results(self, jobs: Any = "all") -> int:
        """Forget finished tasks here and in the controller (`"all"`, or ids); returns how many rows went."""
        ids = None if jobs == "all" else _ids_of(jobs)
        n = self._request("purge", timeout=120.0 if ids is None else 30.0 + 1e-3 * len(ids), ids=ids)
        with self._lock:
            for mid in (list(self._done) if ids is None else ids):
                self._done.pop(mid, None)
                self._meta.pop(mid, None)
        return n

    @property
    def results(self) -> dict[str, Any]:
        """Values of the finished tasks this client knows (exceptions for failures)."""
        return {k: v for k, (_, v) in self._done.items()}

    # ---------------------------------------------------------------------------- lifecycle
    def shutdown(self, targets: Any = "all", hub: bool = False) -> None:
        """Stop engines (`targets`, default all) and, with `hub=True`, the controller too."""
        tl = None if targets in (None, "all") else ([targets] if isinstance(targets, int) else list(targets))
        try:
            self._request("shutdown", targets=tl, hub=hub, timeout=10)
        except ConnectionFailed:
            if not hub:
                raise
        if hub:
            self.close()

    def close(self) -> None:
        """Close the connection and stop the IO thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._link is not None and self._loop.is_running():
            link = self._link

            async def aclose() -> None:
                self._flush_outbox()
                link.close("client closed")
                await asyncio.sleep(0.01)    # let the transport finish closing
            try:
                asyncio.run_coroutine_threadsafe(aclose(), self._loop).result(2)
            except (TimeoutError, RuntimeError, OSError) as exc:   # slow or already-stopped IO loop: stop it anyway
                log.warning("closing the connection to the controller did not finish cleanly: %r", exc)
        self._stop_loop()

    def _stop_loop(self) -> None:
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._loop.is_running():
            self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.info.host}:{self.info.port} engines={self.ids}>"

    def __del__(self) -> None:
        try:
            self.close()
        except (AttributeError, RuntimeError) as exc:   # __init__ failed half-way, or the interpreter is exiting
            log.debug("Client.__del__: close failed: %r", exc)
