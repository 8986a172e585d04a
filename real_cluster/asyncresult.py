"""AsyncResult: the handle of submitted work, a `concurrent.futures.Future` with task metadata.

One AsyncResult covers one or more task ids (`msg_ids`). For a map (AsyncMapResult, in
asyncmapresult.py) each task is one chunk and the result is the concatenation of the chunks, in
submission order. The client's reader thread calls `_part_done` as each task's result arrives; when all
have, the Future resolves: a single task's value or its exception; for several, the list of values,
or a CompositeError naming every failure. Metadata (`ar.metadata`, `ar["key"]`, `ar.key`) is the
client's `Metadata` of each task, updated in place; timestamps are aware UTC datetimes. Output a task
printed arrives with its result: `ar.stdout`, `ar.stderr`, `ar.outputs`, `display_outputs()`.
In a process forked from the client's, a result still pending at the fork never arrives (it is answered to the
client's process): waiting for it there raises ConnectionFailed at once (client.py, `_forked_here`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, InvalidStateError
from concurrent.futures._base import FINISHED, PENDING
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from . import error
from .error import ConnectionFailed, composite_error
from .metadata import METADATA_KEYS, Metadata
from .progress import progress_bar

if TYPE_CHECKING:
    from .client import Client

__all__ = ["AsyncResult", "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"]


class _LeanCondition(threading.Condition):
    """A `threading.Condition` over its own RLock that calls the lock's methods instead of storing five bound
    copies of them on itself, as `Condition.__init__` does: a pending AsyncResult is five GC-tracked objects
    lighter (17 -> 10 per `apply_async`, with the order list a single result skips and the client's waiter list;
    bursts of 20,000 had spent ~8-47 µs a task in the client's collections). The same methods and lock; only where
    they are looked up differs."""

    def __init__(self) -> None:         # (Condition.__init__ not called: it is what this avoids)
        self._lock = threading.RLock()
        self._waiters = deque()

    def acquire(self, *args: Any, **kwargs: Any) -> bool:       # type: ignore[override]
        return self._lock.acquire(*args, **kwargs)

    def release(self) -> None:          # type: ignore[override]
        self._lock.release()

    def _release_save(self) -> Any:
        return self._lock._release_save()       # type: ignore[attr-defined]

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)      # type: ignore[attr-defined]

    def _is_owned(self) -> bool:
        return self._lock._is_owned()           # type: ignore[attr-defined]


# The fields Future.__init__ sets (CPython 3.8-3.13): AsyncResult sets them itself when they are exactly these
# (callgrind of a client's apply_sync: Future.__init__ builds a Condition over an RLock, only to be replaced).
_FUTURE_FIELDS = set(vars(Future())) == {"_condition", "_state", "_result", "_exception", "_waiters",
                                          "_done_callbacks"}


def _forever(timeout: float | None) -> float | None:
    """ipyparallel's convention: None or a negative timeout waits forever."""
    return None if timeout is None or timeout < 0 else timeout


class AsyncResult(Future):
    """The future result of `apply_async`, `get_result`, `resubmit`, `client.wait` (maps: AsyncMapResult).

    `owner`: when the result is done, the client forgets it (`client.results`, `client.metadata`);
    this object keeps it. `chunk_sizes` (maps only): elements per task.
    """

    def __init__(self, client: Client, msg_ids: list[str], fname: str = "unknown", *,
                 chunk_sizes: list[int] | None = None, ordered: bool = True, single: bool | None = None,
                 return_exceptions: bool = False, owner: bool = False):
        if _FUTURE_FIELDS:                      # Future.__init__'s fields, without the Condition it would build
            self._state, self._result, self._exception = PENDING, None, None
            self._waiters, self._done_callbacks = [], []
        else:                                   # (a Python whose Future holds other fields: its own __init__)
            super().__init__()
        self._condition = _LeanCondition()      # (the Future's, or in place of it, before anyone can hold it)
        self._client = client
        self.msg_ids = list(msg_ids)
        self._fname = fname
        self._chunks = chunk_sizes
        self._ordered = ordered
        self._single = (len(self.msg_ids) == 1 and chunk_sizes is None) if single is None else single
        self._return_exceptions = return_exceptions
        self.owner = owner
        self._values: dict[str, tuple[bool, Any]] = {}
        self._cond = self._condition            # the Future's own (an RLock): one condition per result, not two
        self._order: list[str] | None = None if self._single else []   # completion order (unordered iteration)
        ids = self.msg_ids
        self._metadata: list[Metadata] = [client._metadata_for(ids[0])] if len(ids) == 1 \
            else [client._metadata_for(m) for m in ids]
        if not self.msg_ids:
            self.set_result([])

    def _forked_here(self) -> None:
        """In a process forked from the client's (`Client._forked_here`): a condition of its own (the parent's reader
        thread may have held this one at the fork)."""
        self._condition = self._cond = _LeanCondition()

    def _not_here(self) -> None:
        """Raise if this process was forked from the client's: a part still pending would be waited for forever."""
        elsewhere = self._client._elsewhere
        if elsewhere is not None:
            raise ConnectionFailed(f"{self._fname}: a result pending when this process was forked from the client's "
                                   f"is delivered there, not here ({elsewhere})")

    def result(self, timeout: float | None = None) -> Any:
        if self._state != FINISHED:
            self._not_here()
            if self._state == PENDING:      # (not cancelled) None: forever, as Future's; then Future's own answer
                self.wait(timeout)
        return super().result(0)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state != FINISHED:
            self._not_here()
            if self._state == PENDING:
                self.wait(timeout)
        return super().exception(0)

    # ------------------------------------------------------------------- fed by the client
    def _part_done(self, msg_id: str, ok: bool, value: Any) -> None:
        with self._cond:
            if msg_id in self._values:
                return
            self._values[msg_id] = (ok, value)
            if self._order is not None:
                self._order.append(msg_id)
            if len(self._values) == len(self.msg_ids) and self._state == PENDING:    # (done(): the lock again)
                self._resolve()             # set_result / set_exception notify every waiter
            else:
                self._cond.notify_all()

    def _resolve(self) -> None:
        try:
            if self._single:
                ok, value = self._values[self.msg_ids[0]]
                if ok:
                    self.set_result(value)
                else:
                    self.set_exception(value)
            else:
                parts = [self._values[m] for m in self.msg_ids]
                failures = [v for ok, v in parts if not ok]
                if failures:
                    self.set_exception(composite_error(self._fname, failures))
                elif self._chunks is not None:
                    self.set_result([x for _, chunk in parts for x in chunk])
                else:
                    self.set_result([v for _, v in parts])
        except InvalidStateError:  # already resolved (e.g. two deliveries raced): the first result stands
            self._cond.notify_all()
        if self.owner:
            self._client._disown(self.msg_ids)

    # -------------------------------------------------------------------------- waiting
    def get(self, timeout: float | None = None, return_exceptions: bool | None = None) -> Any:
        """The result, waiting up to `timeout` seconds (None or negative: forever).

        Raises error.TimeoutError (also a builtin TimeoutError) if not ready in time; the task's
        exception (a RemoteError); or a CompositeError for several results unless `return_exceptions`,
        which puts each failed part's exception in its place instead.
        """
        if not self.wait(timeout):
            raise error.TimeoutError("Result not ready.")
        if return_exceptions is None:
            return_exceptions = self._return_exceptions
        if return_exceptions and not self._single and self.exception() is not None:
            return self._with_exceptions()
        return Future.result(self, 0)          # (done: no check for a forked process)

    def _with_exceptions(self) -> list[Any]:
        out: list[Any] = []
        for i, m in enumerate(self.msg_ids):
            ok, v = self._values[m]
            if self._chunks is None:
                out.append(v)
            else:
                out.extend(v if ok else [v] * self._chunks[i])
        return out

    def _condition_met(self, return_when: str) -> bool:
        if return_when == ALL_COMPLETED:
            return len(self._values) == len(self.msg_ids)
        if return_when == FIRST_COMPLETED:
            return bool(self._values) or not self.msg_ids
        if return_when == FIRST_EXCEPTION:
            return len(self._values) == len(self.msg_ids) or any(not ok for ok, _ in self._values.values())
        raise ValueError(f"return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, not {return_when!r}")

    def wait(self, timeout: float | None = -1, return_when: str | None = None) -> Any:
        """Wait up to `timeout` seconds (None or negative: forever).

        Without `return_when`: returns whether every part is done. With FIRST_COMPLETED,
        FIRST_EXCEPTION or ALL_COMPLETED (importable from real_cluster): waits for that condition
        and returns `(done, pending)`, two sets of msg_ids, as ipyparallel does.
        """
        if return_when is None and self._state == FINISHED:
            return True                 # (resolved under the lock once every part is in: no lock, no condition)
        when = ALL_COMPLETED if return_when is None else return_when
        timeout = _forever(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._condition_met(when):       # this thread reads the answers itself if it can (client_link.py)
            client = self._client                # (waiting for the process's only task out: it may poll first)
            client._link.read_until(lambda: self._condition_met(when), deadline,
                                    len(self.msg_ids) == 1 and client._only_task_out())
        with self._cond:
            while not self._condition_met(when):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    break
                self._not_here()
                with self._client._link.waiting():
                    self._cond.wait(remaining)
            if return_when is None:
                return len(self._values) == len(self.msg_ids)
            done = {m for m in self.msg_ids if m in self._values}
        return done, set(self.msg_ids) - done

    def wait_interactive(self, interval: float = 0.1, timeout: float | None = -1, widget: bool | None = None,
                         return_when: str = ALL_COMPLETED) -> None:
        """Wait, showing a progress bar (tqdm: the notebook widget in a kernel, else text on stderr).

        Ends when `return_when` is met or `timeout` seconds pass (None or negative: forever);
        it never raises for a failed task (call `get()` for the result).
        """
        self._condition_met(return_when)                 # validates it before drawing anything
        timeout = _forever(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = progress_bar(len(self), desc=self._fname, widget=widget)
        try:
            while True:
                step = interval if deadline is None else max(0.0, min(interval, deadline - time.monotonic()))
                self.wait(step, return_when=return_when)
                met = self._condition_met(return_when)       # before reading progress: a result landing
                bar.update(self.progress - bar.n)             # in between must not leave the bar one short
                if met or (deadline is not None and time.monotonic() >= deadline):
                    break
        finally:
            bar.close()

    def ready(self) -> bool:
        """Whether every part is done."""
        return len(self._values) == len(self.msg_ids)

    def successful(self) -> bool:
        """Whether it finished without error. Raises RuntimeError if not ready yet (ipyparallel: AssertionError)."""
        if not self.ready():
            raise RuntimeError("result not ready")
        return all(ok for ok, _ in self._values.values())

    def abort(self) -> int:
        """Abort the parts not yet finished (running ones are stopped); returns how many were still pending.
        Raises RuntimeError if all are done."""
        if self.ready():
            raise RuntimeError("cannot abort a result that is already done")
        return self._client.abort(self)

    def get_dict(self, timeout: float | None = -1) -> dict[int, Any]:
        """The results keyed by the engine each task ran on (waits as `get` does).

        Raises ValueError when two tasks ran on one engine, as ipyparallel does.
        """
        results = self.get(timeout)
        if self._single:
            results = [results]
        elif self._chunks is not None and any(n != 1 for n in self._chunks):
            results = [self._values[m][1] for m in self.msg_ids]      # one list per chunk
        engine_ids = [md["engine_id"] for md in self._metadata]
        out: dict[int, Any] = {}
        for eid, value in zip(engine_ids, results):
            if eid in out:
                raise ValueError(f"Cannot build dict, {engine_ids.count(eid)} jobs ran on engine #{eid}")
            out[eid] = value
        return out

    @property
    def sent(self) -> bool:
        """Always True: submission copies the arguments, so they may be changed at once (ipyparallel's `track`)."""
        return True

    def wait_for_send(self, timeout: float | None = -1) -> None:
        """Nothing to wait for: the arguments were copied when the task was submitted."""

    def __await__(self) -> Any:
        """`await ar` in asyncio code: the value (or the exception) of `get()`."""
        import asyncio
        return asyncio.wrap_future(self).__await__()

    @property
    def r(self) -> Any:
        """`get()`."""
        return self.get()

    @property
    def result_dict(self) -> dict[int, Any]:
        """`get_dict()`."""
        return self.get_dict()

    # ------------------------------------------------------------------------- metadata
    @property
    def metadata(self) -> Metadata | list[Metadata]:
        """Per-task Metadata (one for a single task, a list otherwise); never blocks."""
        return self._metadata[0] if self._single else list(self._metadata)

    def __getitem__(self, key: Any) -> Any:
        """A metadata key (str; unknown keys raise KeyError), or an element / slice of the result (waits)."""
        if isinstance(key, str):
            values = [md[key] for md in self._metadata]
            return values[0] if self._single else values
        if isinstance(key, (int, slice)) and not self._single:
            return self.get()[key]
        raise TypeError("index an AsyncResult by metadata key, or a multi-result by int or slice")

    def __getattr__(self, key: str) -> Any:
        """Metadata keys as attributes: `ar.engine_id`, `ar.submitted`, `ar.stdout`, ..."""
        if key in METADATA_KEYS and not key.startswith("_"):
            return self[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {key!r}")

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | METADATA_KEYS)

    def timedelta(self, start: Any, end: Any, start_key: Callable = min, end_key: Callable = max) -> float:
        """Seconds from `start` to `end` (datetimes, or lists reduced by `start_key` / `end_key`)."""
        if not isinstance(start, datetime):
            start = start_key(start)
        if not isinstance(end, datetime):
            end = end_key(end)
        return (end - start).total_seconds()

    def _check_ready(self) -> None:
        if not self.ready():
            raise error.TimeoutError("result not ready")

    @property
    def elapsed(self) -> float:
        """Seconds since submission (the wall time once done)."""
        if self.ready():
            return self.wall_time
        subs = [md["submitted"] for md in self._metadata if md["submitted"]]
        return (datetime.now(timezone.utc) - min(subs)).total_seconds() if subs else 0.0

    @property
    def wall_time(self) -> float:
        """Last `received` minus first `submitted`, in seconds. Raises error.TimeoutError before completion."""
        self._check_ready()
        received = [md["received"] for md in self._metadata if md["received"]]
        submitted = [md["submitted"] for md in self._metadata if md["submitted"]]
        return self.timedelta(submitted, received) if received and submitted else 0.0

    @property
    def serial_time(self) -> float:
        """Sum of the seconds each task ran (completed - started). Raises error.TimeoutError before completion."""
        self._check_ready()
        return sum((md["completed"] - md["started"]).total_seconds() for md in self._metadata
                   if md["completed"] and md["started"])

    @property
    def progress(self) -> int:
        """How many parts are done (elements, for a map)."""
        if self._chunks is None:
            return len(self._values)
        return sum(n for m, n in zip(self.msg_ids, self._chunks) if m in self._values)

    # --------------------------------------------------------------------------- output
    def wait_for_output(self, timeout: float | None = -1) -> bool:
        """Wait until the tasks' output is here; it arrives with each result, so this is `wait`."""
        return self.wait(timeout)

    def display_outputs(self, groupby: str = "type") -> None:
        """Print what the tasks wrote: stdout to sys.stdout, stderr to sys.stderr, `[stdout:ENGINE]` prefixes.

        `groupby`: "type" (all stdout, then all stderr) or "engine" (each task's stdout then stderr).
        Raises error.TimeoutError if not done, ValueError for another `groupby`.
        """
        if groupby not in ("type", "engine", "order"):
            raise ValueError(f"groupby must be 'type', 'engine' or 'order', not {groupby!r}")
        self._check_ready()
        if self._single:
            _show(self._metadata[0]["stdout"], "", sys.stdout)
            _show(self._metadata[0]["stderr"], "", sys.stderr)
            return
        mds = self._metadata
        if groupby == "engine":
            for md in mds:
                _show(md["stdout"], f"[stdout:{md['engine_id']}] ", sys.stdout)
                _show(md["stderr"], f"[stderr:{md['engine_id']}] ", sys.stderr)
        else:
            for md in mds:
                _show(md["stdout"], f"[stdout:{md['engine_id']}] ", sys.stdout)
            for md in mds:
                _show(md["stderr"], f"[stderr:{md['engine_id']}] ", sys.stderr)

    # -------------------------------------------------------------------- split / join
    def split(self) -> tuple[AsyncResult, ...]:
        """One AsyncResult per task (per chunk for a map), each usable with `concurrent.futures.wait`."""
        if len(self.msg_ids) == 1:
            return (self,)
        parts = []
        for i, mid in enumerate(self.msg_ids):
            chunks = None if self._chunks is None else [self._chunks[i]]
            part = type(self)(self._client, [mid], self._fname, chunk_sizes=chunks,
                              single=None if chunks else True, return_exceptions=self._return_exceptions)
            parts.append(self._client._track(part))
        return tuple(parts)

    @classmethod
    def join(cls, results: Iterable[AsyncResult]) -> AsyncResult:
        """One AsyncResult over several (all from one client): `AsyncResult.join(ar.split())` is `ar` again.

        Maps join into an AsyncMapResult (the elements concatenated); anything else into an
        AsyncResult whose value is the list of each task's value. Raises ValueError for none or
        results of different clients.
        """
        results = list(results)
        if not results:
            raise ValueError("join() needs at least one AsyncResult")
        client = results[0]._client
        if any(r._client is not client for r in results):
            raise ValueError("cannot join AsyncResults of different clients")
        ids = [m for r in results for m in r.msg_ids]
        fname = results[0]._fname
        if all(r._chunks is not None for r in results):
            from .asyncmapresult import AsyncMapResult
            sizes = [n for r in results for n in r._chunks]  # type: ignore[union-attr]
            joined: AsyncResult = AsyncMapResult(client, ids, fname, chunk_sizes=sizes,
                                                 ordered=all(r._ordered for r in results))
        else:
            joined = AsyncResult(client, ids, fname, single=False)
        return client._track(joined)

    # ------------------------------------------------------------------------ iteration
    def __len__(self) -> int:
        return sum(self._chunks) if self._chunks is not None else len(self.msg_ids)

    def __iter__(self) -> Iterator[Any]:
        if self._single:
            raise TypeError("a single result is not iterable; use get()")
        return self._iterate()

    def _iterate(self) -> Iterator[Any]:
        pending = list(self.msg_ids)
        index = {m: i for i, m in enumerate(self.msg_ids)}
        while pending:
            with self._cond:
                if self._ordered:
                    while pending[0] not in self._values:
                        self._not_here()
                        with self._client._link.waiting():
                            self._cond.wait()
                    mid = pending.pop(0)
                else:
                    while not any(m in self._values for m in pending):
                        self._not_here()
                        with self._client._link.waiting():
                            self._cond.wait()
                    mid = next(m for m in self._order if m in pending)   # type: ignore[union-attr]
                    pending.remove(mid)
                ok, value = self._values[mid]
            if not ok:
                if self._return_exceptions:
                    yield from ([value] * self._chunks[index[mid]] if self._chunks else [value])
                    continue
                raise composite_error(self._fname, [value])
            yield from (value if self._chunks is not None else [value])

    def __repr__(self) -> str:
        state = ":finished" if self.ready() else ""
        return f"<{type(self).__name__}: {self._fname}{state}>"


def _show(text: str, prefix: str, file: Any) -> None:
    if not text:
        return
    end = "" if text.endswith("\n") else "\n"
    if prefix and text.count("\n") > int(text.endswith("\n")):
        prefix += "\n"
    print(f"{prefix}{text}", file=file, end=end)
