"""The Client: a connection to a controller, written by the calling thread, read by one reader thread.

How this works. Submitting pickles, encodes and writes the frame in the caller's thread
(`client_link.ClientLink`: a blocking socket, a lock around each write), so a task leaves at once
with no other thread woken. The link's reader thread decodes what arrives, unpickles results and
resolves AsyncResults; requests (queries, resubmit, abort, ...) wait on a `concurrent.futures.Future`
answered by the controller's Reply. Task-database queries and purges are in client_queries.py,
result requests and waits in client_results.py (mixins).
"""

from __future__ import annotations

import builtins
import itertools
import json
import logging
import os
import threading
import time
import uuid
import weakref
from concurrent.futures import Future
from datetime import datetime
from pathlib import Path
from typing import Any

from . import protocol as proto
from .asyncresult import AsyncResult
from .client_link import ClientLink
from .client_queries import HubQueries
from .client_results import ResultRequests, _ids_of
from .error import ClusterError, ConnectionFailed, remote_error
from .messages import NO_FLAGS, EnginesChanged, Reply, Request, Submit, TaskFlags, TaskResult, submit_frame, to_wire
from .metadata import UTC, Metadata
from .profile import client_file, read_connection_file, wait_for_connection_file
from .progress import progress_bar
from .fncache import HEADER as FN_HEADER, MAGIC as FN_MAGIC, FunctionCache, strip_function
from .serialize import unpack_result

log = logging.getLogger("real_cluster.client")
FN_SENT_MAX = 65536             # digests remembered as sent on the connection (then forgotten at once, sent again)

_from_ts = datetime.fromtimestamp
_CLIENTS: weakref.WeakSet[Client] = weakref.WeakSet()      # this process's clients (`_forked_here`)


def _after_fork_in_child() -> None:
    for client in list(_CLIENTS):
        client._forked_here()


class Client(HubQueries, ResultRequests):
    """A connection to a cluster: `Client(profile="name")` or `Client(connection_file=path)` (`url_file=`, as in
    ipyparallel, is the same).

    Raises TimeoutError if no connection file appears within `timeout` seconds, ConnectionFailed
    if the controller cannot be reached, AuthenticationError if the key is wrong.
    """

    def __init__(self, connection_file: str | Path | None = None, *, profile: str | None = None,
                 timeout: float = 10.0, url_file: str | Path | None = None):
        if url_file is not None and connection_file is not None and Path(url_file) != Path(connection_file):
            raise ValueError("give the connection file once: connection_file or ipyparallel's url_file")
        connection_file = connection_file or url_file
        path = Path(connection_file) if connection_file else client_file(profile)
        self.connection_file = path
        info = wait_for_connection_file(path, timeout) if not path.exists() else read_connection_file(path)
        self.info = info
        self.profile = profile or info.profile
        self.history: list[str] = []
        self.block = False                               # the default `block` of get_result / resubmit
        self.outstanding: set[str] = set()
        self.metadata: dict[str, Metadata] = {}     # msg_id -> Metadata, ipyparallel's `client.metadata`
        self._done: dict[str, tuple[bool, Any]] = {}
        self._waiters: dict[str, Any] = {}     # task id -> the AsyncResult waiting for it, or a list of several
        self._replies: dict[int, Future] = {}
        self._rids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:20]        # task ids: 80 random bits per client + a counter
        self._id_seq = itertools.count()
        self.functions = FunctionCache()        # each function pickled once while unchanged (fncache.py)
        self._fn_sent: dict[bytes, None] = {}   # digests whose bytes went on this connection (later calls: by digest)
        self._fn_lock = threading.Lock()        # ... decided and written under one lock (submit_task)
        self.fn_to_controller = [0, 0]          # framed calls sent with their function's bytes, by digest alone
        self._lock = threading.Lock()
        self._engines: list[int] = []
        self._engines_cond = threading.Condition()
        self._closed = False
        self._lost: str | None = None
        unix = path.resolve().parent / proto.UNIX_SOCKET_NAME      # the controller is on this host
        self._link = ClientLink.open(info.host, info.port, info.key, timeout, info.tls_fingerprint,
                                     str(unix) if unix.exists() else None)
        _CLIENTS.add(self)                      # (from here a fork closes the child's copy: _forked_here)
        self._link.start(self._on_message, self._on_close)
        with self._engines_cond, self._link.waiting():   # the controller sends the engine list after the handshake
            self._engines_cond.wait_for(lambda: self._engines or self._lost is not None, timeout=0.2)

    # ------------------------------------------------------------------------ reader thread side
    def _on_message(self, msg: Any) -> None:
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
        md = self.metadata.get(msg.task_id) or self._metadata_for(msg.task_id)
        started, completed, received = msg.started_at, msg.completed_at, msg.received_at
        dict.update(md, engine_id=msg.engine_id, status=msg.status, label=msg.label, stdout=msg.stdout,
                    stderr=msg.stderr, started=None if started is None else _from_ts(started, UTC),
                    completed=None if completed is None else _from_ts(completed, UTC),
                    received=None if received is None else _from_ts(received, UTC))
        if msg.submitted_at is not None and md["submitted"] is None:
            dict.__setitem__(md, "submitted", _from_ts(msg.submitted_at, UTC))
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
            waiters = self._waiters.pop(msg.task_id, None)
        self._delivering = waiters          # (a fork meanwhile: see _forked_here)
        if type(waiters) is list:
            for ar in waiters:
                ar._part_done(msg.task_id, ok, value)
        elif waiters is not None:
            waiters._part_done(msg.task_id, ok, value)
        self._delivering = None

    def _on_close(self, reason: str) -> None:
        self._lost = reason
        error = ConnectionFailed(f"connection to the controller lost: {reason}")
        with self._lock:
            waiters, self._waiters = self._waiters, {}
            replies, self._replies = self._replies, {}
        for tid, ars in waiters.items():
            for ar in (ars if type(ars) is list else [ars]):
                ar._part_done(tid, False, error)
        for fut in replies.values():
            if not fut.done():
                fut.set_exception(error)
        with self._engines_cond:
            self._engines_cond.notify_all()

    _elsewhere: str | None = None       # set in a process forked from this client's: why nothing pending comes here
    _delivering: Any = None             # the AsyncResult(s) the reader thread is handing a result to, out of _waiters

    def _forked_here(self) -> None:
        """In a process forked from this client's: its copy of the connection is closed (client_link.py), and what
        is pending is answered to the client's own process, never here, so waiting for it raises ConnectionFailed at
        once (asyncresult.py) instead of waiting forever. The locks are new ones: the parent's reader thread, which
        does not exist here, may have held one at the fork. Nothing is resolved here: a done-callback must not run
        inside the fork."""
        self._link.forked()
        self._lost = self._elsewhere = self._link.close_reason or "the connection was closed at a fork"
        self._lock = threading.Lock()
        self._engines_cond = threading.Condition()
        self.functions.forked()
        self._fn_lock = threading.Lock()
        for ars in [*self._waiters.values(), self._delivering or []]:
            for ar in (ars if type(ars) is list else [ars]):
                ar._forked_here()

    # ----------------------------------------------------------------------- caller side
    def _send(self, msg: Any) -> None:
        self._send_frame(proto.encode_frame(*to_wire(msg)))

    def _send_frame(self, frame: bytes) -> None:
        if self._lost is not None or self._closed:
            raise ConnectionFailed(f"not connected to the controller ({self._lost or 'closed'})")
        self._link.send_frame(frame)

    def _request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any:
        rid = next(self._rids)
        fut: Future = Future()
        self._replies[rid] = fut
        try:
            self._send(Request(rid=rid, op=op, args=args))
        except ValueError:      # too large for a frame header (e.g. 100,000 ids): the args go as a JSON buffer
            self._send(Request(rid=rid, op=op, args={}, args_json=json.dumps(args).encode()))
        deadline = None if timeout is None else time.monotonic() + timeout
        if fut.done() or self._link.read_until(fut.done, deadline):     # this thread reads the reply if it can
            return fut.result(0)
        with self._link.waiting():
            return fut.result(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _only_task_out(self) -> bool:
        """Whether this client's one task out is the only one of any connected client in this process (its waiting
        caller may poll before it sleeps: client_link.py). A closed client's leftovers are answered nowhere."""
        if len(self.outstanding) != 1:
            return False
        try:
            return all(c is self or not c.outstanding or c._closed or c._lost is not None for c in _CLIENTS)
        except RuntimeError:                # a client made meanwhile, in another thread: not alone, then
            return False

    def _track(self, ar: AsyncResult) -> AsyncResult:
        if len(ar.msg_ids) == 1:            # one task (apply_async): no list of what is ready
            mid = ar.msg_ids[0]
            with self._lock:
                done = self._done.get(mid)
                if done is None:
                    self._wait_for(mid, ar)
            if done is not None:
                ar._part_done(mid, *done)
            return ar
        ready = []
        with self._lock:
            for mid in ar.msg_ids:
                if mid in self._done:
                    ready.append((mid, *self._done[mid]))
                else:
                    self._wait_for(mid, ar)
        for mid, ok, value in ready:
            ar._part_done(mid, ok, value)
        return ar

    def _wait_for(self, mid: str, ar: AsyncResult) -> None:
        """(under self._lock) `ar` waits for task `mid`: stored alone, the usual case, or in a list with others
        (one list fewer per pending task for the garbage collector, see asyncresult._LeanCondition)."""
        had = self._waiters.get(mid)
        if had is None:
            self._waiters[mid] = ar
        elif type(had) is list:
            had.append(ar)
        else:
            self._waiters[mid] = [had, ar]

    def submit_task(self, payload: bytes, flags: TaskFlags) -> str:
        """Send one task (an already packed call); returns its id. Used by views."""
        tid = f"{self._id_prefix}{next(self._id_seq):012x}"
        now = time.time()
        self.metadata[tid] = Metadata.of(msg_id=tid, submitted=_from_ts(now, UTC), status="pending",
                                         label=flags.label, after=flags.after, follow=flags.follow)
        with self._lock:
            self.outstanding.add(tid)
        self.history.append(tid)
        try:
            if payload[:4] == FN_MAGIC and len(payload) >= FN_HEADER.size:     # a framed call: once per connection
                self._send_framed_call(tid, now, payload, flags)
            else:
                self._send_submit(tid, now, payload, flags)
        except (ConnectionFailed, ValueError):      # not sent: nothing will ever answer for it
            with self._lock:
                self.outstanding.discard(tid)
            raise
        return tid

    def _send_submit(self, tid: str, now: float, payload: bytes, flags: TaskFlags) -> None:
        if flags is NO_FLAGS:                   # the usual task: its frame straight from the values (the same bytes)
            self._send_frame(submit_frame(tid, now, payload))
        else:
            self._send(Submit(task_id=tid, flags=flags, submitted_at=now, payload=payload))

    def _send_framed_call(self, tid: str, now: float, payload: bytes, flags: TaskFlags) -> None:
        """Send a framed call by digest alone if its function's bytes went on this connection before, else with
        them. Decided and written under one lock: no call naming a digest can overtake the one carrying its
        bytes (the controller refuses a digest it was never sent)."""
        _, _, digest, n = FN_HEADER.unpack_from(payload)
        with self._fn_lock:
            known = not n or digest in self._fn_sent        # (a call that names its function only: as it is)
            self._send_submit(tid, now, strip_function(payload) if known else payload, flags)
            if not known:
                if len(self._fn_sent) >= FN_SENT_MAX:     # forgetting one costs its bytes once more
                    self._fn_sent.clear()
                self._fn_sent[digest] = None
            self.fn_to_controller[known] += 1

    def metadata_of(self, msg_id: str) -> Metadata:
        """What is known about a task so far (its Metadata; a fresh pending one for an unknown id)."""
        return self.metadata.get(msg_id) or Metadata(msg_id=msg_id, status="pending")

    def _ids(self, jobs: Any) -> list[str]:
        """Task ids from ids, history indices, AsyncResults or a list of those."""
        return _ids_of(jobs, self.history)

    def _metadata_for(self, msg_id: str) -> Metadata:
        """The task's Metadata in `self.metadata`, created (pending) if new."""
        md = self.metadata.get(msg_id)
        if md is None:
            md = self.metadata[msg_id] = Metadata.of(msg_id=msg_id, status="pending")
        return md

    def _disown(self, msg_ids: list[str]) -> None:
        """Forget finished tasks' results and metadata here (an owning AsyncResult keeps them)."""
        with self._lock:
            for mid in msg_ids:
                if mid not in self.outstanding:
                    self._done.pop(mid, None)
                    self.metadata.pop(mid, None)

    # ------------------------------------------------------------------------------ engines
    @property
    def ids(self) -> list[int]:
        """The ids of the engines registered now."""
        with self._engines_cond:
            return sorted(self._engines)

    def __len__(self) -> int:
        return len(self.ids)

    def wait_for_engines(self, n: int | None = None, timeout: float | None = -1, *, block: bool = True,
                         interactive: bool | None = None, widget: bool | None = None) -> Future | None:
        """Wait until at least `n` engines are registered (timeout None or negative: forever).

        Returns None, or with `block=False` at once a `concurrent.futures.Future` that resolves to None
        (or raises TimeoutError) — what ipyparallel returns. `interactive` shows a progress bar
        (default: inside a notebook kernel). Raises TimeoutError, or ConnectionFailed if the
        controller is gone; TypeError without `n`.
        """
        if n is None:
            raise TypeError("wait_for_engines needs n, the number of engines to wait for")
        timeout = None if timeout is None or timeout < 0 else timeout
        if not block:
            fut: Future = Future()

            def waiter() -> None:
                try:
                    self.wait_for_engines(n, timeout, interactive=False)
                except BaseException as exc:
                    fut.set_exception(exc)
                else:
                    fut.set_result(None)
            threading.Thread(target=waiter, name="real_cluster-wait-for-engines", daemon=True).start()
            return fut
        from .progress import in_kernel
        bar = progress_bar(n, desc="engines", unit="engine", widget=widget) \
            if (in_kernel() if interactive is None else interactive) else None
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            with self._engines_cond, self._link.waiting():
                while True:
                    if bar is not None:
                        bar.update(min(n, len(self._engines)) - bar.n)
                    if len(self._engines) >= n or self._lost is not None:
                        break
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError(f"{len(self._engines)} of {n} engines registered after {timeout} s")
                    self._engines_cond.wait(remaining if bar is None else min(remaining or 0.1, 0.1))
        finally:
            if bar is not None:
                bar.close()
        if self._lost is not None and len(self._engines) < n:
            raise ConnectionFailed(self._lost)
        return None

    def load_balanced_view(self, targets: Any = None, **flags: Any) -> Any:
        """A LoadBalancedView over all engines (or `targets`; negative ints index `ids`), with `flags` set."""
        from .view import LoadBalancedView
        view = LoadBalancedView(self)
        view.set_flags(targets=None if targets == "all" else self._resolve_targets(targets), **flags)
        return view

    def direct_view(self, targets: Any = "all", **flags: Any) -> Any:
        """A DirectView (directview.py) of `targets`: "all" (every engine at each call), an engine id, or a list."""
        from .directview import DirectView
        view = DirectView(self, targets=targets, **flags)
        if view.targets != "all":
            eids, single = view._engines()      # unknown engines are refused now, negative indices resolved
            view.targets = eids[0] if single else eids
        return view

    def __getitem__(self, key: Any) -> Any:
        """`rc[0]`, `rc[:]`, `rc[::2]`, `rc[[0, 2]]`: a DirectView of those engines."""
        from .directview import view_for_key
        return view_for_key(self, key)

    def clear(self, targets: Any = None, block: bool | None = None) -> Any:
        """Empty the namespaces of `targets` (default: every engine), as `direct_view(targets).clear()`."""
        return self.direct_view("all" if targets is None else targets).clear(block=block)

    def _resolve_targets(self, targets: Any) -> Any:
        """Negative engine indices (`-1`: the newest engine) as real engine ids, as ipyparallel does."""
        def one(t: Any) -> Any:
            if isinstance(t, int) and not isinstance(t, bool) and t < 0:
                ids = self.ids
                try:
                    return ids[t]
                except IndexError:
                    raise IndexError(f"no engine at index {t} ({len(ids)} registered)") from None
            return t
        if isinstance(targets, (list, tuple, range)):
            return [one(t) for t in targets]
        return one(targets)

    def abort(self, jobs: Any = None, targets: Any = None, block: bool | None = None) -> int:
        """Abort tasks (default: all outstanding): queued ones fail at once, running ones are stopped by their
        engine (its worker is killed); both fail with TaskAborted. Returns how many were still pending.

        `targets` and `block` are accepted for ipyparallel's signature (aborting is always immediate).
        """
        ids = _ids_of(jobs, self.history) if jobs is not None else list(self.outstanding)
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

    def function_stats(self) -> dict[Any, dict[str, int]]:
        """How functions travelled (fncache.py): per engine id, calls sent with the function's bytes
        (`fn_shipped`), by digest alone (`fn_by_digest`), resent after a worker's miss (`fn_missed`);
        under "client", this client's cache (hits, misses, uncacheable, entries, bytes) and the calls it sent the
        controller with their function's bytes (`to_controller_with_bytes`, once per function and connection) and
        by digest alone (`to_controller_by_digest`)."""
        out: dict[Any, dict[str, int]] = {int(k): v for k, v in self._request("function_stats").items()}
        out["client"] = {**self.functions.stats(), "to_controller_with_bytes": self.fn_to_controller[0],
                         "to_controller_by_digest": self.fn_to_controller[1]}
        return out

    def pull_stats(self) -> dict[str, int]:
        """How tasks went by pulling (`--pull`, docs/pull-at-hwm1.md): counts of tasks `staged`, `taken` by workers,
        `returned` (read back), `taken_by_dead` (by a worker that died before it said so: lost with it),
        `requeued_unstarted` (died unstarted with a worker in the middle of a take: queued again); now: the live
        `pullers` and the tasks `staged_now`; empty when the controller does not pull."""
        return self._request("pull_stats")

    def records(self) -> list[Any]:
        """The core's TaskRecords of every attempt the controller has seen."""
        from sched_lab.core import TaskRecord
        return [TaskRecord.from_row(r) for r in self._request("records")]

    @property
    def results(self) -> dict[str, Any]:
        """Values of the finished tasks this client knows (exceptions for failures)."""
        return {k: v for k, (_, v) in self._done.items()}

    # ------------------------------------------------------------------------------- actors
    def get_actor(self, name: str) -> Any:
        """The ActorHandle of the live actor named `name` (ValueError if there is none)."""
        from .actors import handle_for
        return handle_for(self, self._request("get_actor", name=name))

    def kill_actor(self, actor: Any) -> None:
        """Kill an actor (a handle or its id) for good: its queued and later calls fail with ActorDiedError, a
        running call is stopped (its worker is replaced), no restart."""
        self._request("kill_actor", actor_id=getattr(actor, "actor_id", actor))

    def actors(self) -> list[dict[str, Any]]:
        """Every actor the controller knows: id, name, class, engine, state, incarnation, restarts, calls."""
        return self._request("actors")

    # ---------------------------------------------------------------------------- lifecycle
    def send_signal(self, sig: int, targets: Any = None) -> list[int]:
        """Send signal `sig` (e.g. `signal.SIGINT`) to the tasks running on `targets` (default all engines).

        It reaches the engine's worker process, where the task runs (SIGINT raises KeyboardInterrupt in
        it); engines with no running task ignore it. Returns the engine ids asked."""
        tl = None if targets in (None, "all") else ([targets] if isinstance(targets, int) else list(targets))
        return self._request("signal", signum=int(sig), targets=tl, timeout=10)

    def shutdown(self, targets: Any = "all", hub: bool = False, block: bool = False,
                 timeout: float = 30.0) -> None:
        """Stop engines (`targets`, default all; busy ones too: their running tasks are retried or fail with
        EngineError) and, with `hub=True`, the controller too. `block`: wait until those engines have left."""
        tl = None if targets in (None, "all") else ([targets] if isinstance(targets, int) else list(targets))
        try:
            stopped = self._request("shutdown", targets=tl, hub=hub, timeout=10)
        except ConnectionFailed:
            if not hub:
                raise
            stopped = []
        if hub:
            self.close()
        elif block and stopped:
            with self._engines_cond, self._link.waiting():
                if not self._engines_cond.wait_for(lambda: not set(stopped) & set(self._engines), timeout):
                    raise TimeoutError(f"engines {sorted(set(stopped) & set(self._engines))} still registered "
                                       f"after {timeout} s")

    def spin(self) -> None:
        """Nothing to do: results arrive by themselves, read by the reader thread or a waiting caller (ipyparallel
        polls here)."""

    def spin_thread(self, interval: float = 1) -> None:
        """Nothing to start: the client's reader thread already delivers results as they come."""

    def stop_spin_thread(self) -> None:
        """Nothing to stop (see `spin_thread`)."""

    def close(self) -> None:
        """Close the connection and stop the reader thread (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._link.close("client closed")

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


os.register_at_fork(after_in_child=_after_fork_in_child)
