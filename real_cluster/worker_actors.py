"""The actors living in one worker process: created, called, deleted (the worker side of `view.actor`).

How this works. A RunTask with `actor_role == "create"` carries (class, args, kwargs) as its call: the
worker checks the class's functional dependencies as for any task, runs the constructor, and keeps
the instance under its actor id with the `incarnation` the controller gave (a re-creation after a
restart is a new incarnation). A "call" carries (method name, args, kwargs) and runs that method on
the instance of its incarnation; if this worker has no such instance (the worker was replaced, or
the actor deleted) the call fails with ActorDiedError. A method that raises fails that call only.

Calls run in their actor's own pool of `max_concurrency` threads (the scheduler never has more out),
so the worker's main loop goes on reading while they run: an actor method may call another actor of
the same engine, and a task may wait for one. (A task running in the main thread blocks reading, so a
task or constructor that waits for an actor of its own engine deadlocks; with hwm=1 no task shares an
engine with an actor, whose slot is pinned.) Output is captured per task: once an actor exists,
`sys.stdout`/`sys.stderr` become a router writing to the capture of the thread that prints (`redirect`).
Signals (`send_signal`) reach the main thread only, not actor calls.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .messages import RunTask

log = logging.getLogger("real_cluster.worker")


class ActorDiedError(Exception):
    """Raised in the worker for a call whose instance is not here; the client gets error.ActorDiedError (same ename)."""


@dataclass(slots=True)
class _Instance:
    incarnation: int
    obj: Any
    pool: ThreadPoolExecutor


class _Router(io.TextIOBase):
    """A text stream writing to the capture of the thread that writes, else to the stream it replaced."""

    def __init__(self, fallback: Any, which: str):
        self.fallback = fallback
        self.which = which
        self.local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, s: Any) -> int:
        target = getattr(self.local, "target", None)
        return (target if target is not None else self.fallback).write(s)

    def flush(self) -> None:
        target = getattr(self.local, "target", None)
        (target if target is not None else self.fallback).flush()


_routers: tuple[_Router, _Router] | None = None
_want_routers = False


def _install_routers() -> None:
    """Route output per thread from the end of the task being captured now (it runs in `redirect`)."""
    global _want_routers
    _want_routers = True


def capture_output(out: Any, err: Any) -> tuple[Any, Any] | None:
    """Send this thread's `sys.stdout`/`sys.stderr` output to `out`/`err` until `restore_output(token)`.

    Two plain calls rather than a context manager: they run around every task (bench_worker.py)."""
    if _routers is None:
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        return saved
    o, e = _routers
    o.local.target, e.local.target = out, err
    return None


def restore_output(token: tuple[Any, Any] | None) -> None:
    """End `capture_output` (once an actor exists, output is routed per thread from then on)."""
    global _routers
    if token is not None:
        sys.stdout, sys.stderr = token
        if _want_routers and _routers is None:
            _routers = (_Router(token[0], "stdout"), _Router(token[1], "stderr"))
            sys.stdout, sys.stderr = _routers
        return
    if _routers is not None:
        o, e = _routers
        o.local.target = e.local.target = None


@contextmanager
def redirect(out: Any, err: Any) -> Iterator[None]:
    """Capture this thread's output into `out` / `err` for the block (per thread once threaded actors exist)."""
    token = capture_output(out, err)
    try:
        yield
    finally:
        restore_output(token)


class ActorTable:
    """The instances of this worker, by actor id (one incarnation each)."""

    def __init__(self) -> None:
        self._instances: dict[str, _Instance] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._instances)

    @staticmethod
    def is_threaded(msg: RunTask) -> bool:
        """Whether this task runs in its actor's thread pool (every actor call does)."""
        return msg.actor_role == "call"

    def run(self, msg: RunTask, f: Any, args: tuple, kwargs: dict) -> Any:
        """Create the actor (`f` is the class) or call its method (`f` is the method's name); returns the value.

        Raises ActorDiedError for a call whose instance is not here; anything the constructor or the method
        raises propagates (it fails this task only)."""
        if msg.actor_role in ("create", "recreate"):
            obj = f(*args, **kwargs)
            _install_routers()
            pool = ThreadPoolExecutor(max_workers=msg.max_concurrency or 1,
                                      thread_name_prefix=f"actor-{(msg.actor_id or '')[:8]}")
            with self._lock:
                old = self._instances.pop(msg.actor_id or "", None)
                self._instances[msg.actor_id or ""] = _Instance(msg.incarnation or 0, obj, pool)
            if old is not None:
                old.pool.shutdown(wait=False)
            return None
        if msg.actor_role != "call" or not isinstance(f, str):
            raise TypeError(f"malformed actor task {msg.task_id!r} (role {msg.actor_role!r})")
        inst = self._instances.get(msg.actor_id or "")
        if inst is None or inst.incarnation != (msg.incarnation or 0):
            raise ActorDiedError(f"actor {msg.actor_id} (incarnation {msg.incarnation}) is not alive in this "
                                 f"worker: its worker was replaced or the actor was deleted")
        method = getattr(inst.obj, f)
        if not callable(method):
            raise TypeError(f"{type(inst.obj).__name__}.{f} is not a method")
        return method(*args, **kwargs)

    def submit(self, msg: RunTask, execute: Callable[[RunTask], Any], send: Callable[[Any], None]) -> None:
        """Run a call in its actor's pool; `send(execute(msg))` from that thread (never raises here)."""
        inst = self._instances.get(msg.actor_id or "")
        pool = inst.pool if inst is not None and inst.incarnation == (msg.incarnation or 0) else None

        def work() -> None:
            try:
                send(execute(msg))
            except OSError:             # the nanny closed the pipe: the main loop ends the worker
                pass
            except Exception:
                log.exception("actor call %s could not be answered", msg.task_id)
        if pool is None:                # no such instance: execute() answers ActorDiedError at once
            work()
            return
        try:
            pool.submit(work)
        except RuntimeError:            # deleted meanwhile (its pool shut down): answered as above
            work()

    def delete(self, actor_id: str, incarnation: int | None = None) -> bool:
        """Forget an actor's instance (only that incarnation if given); True if one was deleted."""
        with self._lock:
            inst = self._instances.get(actor_id)
            if inst is None or (incarnation is not None and inst.incarnation != incarnation):
                return False
            del self._instances[actor_id]
        inst.pool.shutdown(wait=False)
        return True


ACTORS = ActorTable()
"""This worker process's actors."""
