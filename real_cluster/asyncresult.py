"""AsyncResult: the handle of submitted work, a `concurrent.futures.Future` with task metadata.

One AsyncResult covers one or more task ids (`msg_ids`). For a map, each task is one chunk and
the result is the concatenation of the chunks, in submission order. The client's IO thread
calls `_part_done` as each task's result arrives; when all have, the Future resolves: a single
task's value or its exception; for several, the list of values, or a CompositeError naming every
failure. Metadata times are seconds since the epoch (`submitted` on the client, `started` and
`completed` on the engine, `received` on the controller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, InvalidStateError
from typing import TYPE_CHECKING, Any

from .error import CompositeError, RemoteError

if TYPE_CHECKING:
    from .client import Client


class AsyncResult(Future):
    """The future result of `apply_async`/`map_async`/`get_result`/`resubmit`.

    `chunk_sizes` (maps only): elements per task, so `len(ar)` and `progress` count elements.
    """

    def __init__(self, client: Client, msg_ids: list[str], fname: str = "unknown", *,
                 chunk_sizes: list[int] | None = None, ordered: bool = True, single: bool | None = None,
                 return_exceptions: bool = False):
        super().__init__()
        self._client = client
        self.msg_ids = list(msg_ids)
        self._fname = fname
        self._chunks = chunk_sizes
        self._ordered = ordered
        self._single = (len(self.msg_ids) == 1 and chunk_sizes is None) if single is None else single
        self._return_exceptions = return_exceptions
        self._values: dict[str, tuple[bool, Any]] = {}
        self._cond = threading.Condition(threading.RLock())
        self._order: list[str] = []             # completion order, for unordered iteration
        if not self.msg_ids:
            self.set_result([])

    # ------------------------------------------------------------------- fed by the client
    def _part_done(self, msg_id: str, ok: bool, value: Any) -> None:
        with self._cond:
            if msg_id in self._values:
                return
            self._values[msg_id] = (ok, value)
            self._order.append(msg_id)
            if len(self._values) == len(self.msg_ids) and not self.done():
                self._resolve()
            self._cond.notify_all()

    def _resolve(self) -> None:
        parts = [self._values[m] for m in self.msg_ids]
        try:
            if self._single:
                ok, value = parts[0]
                if ok:
                    self.set_result(value)
                else:
                    self.set_exception(value)
                return
            failures = [v for ok, v in parts if not ok]
            if failures:
                self.set_exception(_composite(self._fname, failures))
            elif self._chunks is not None:
                self.set_result([x for _, chunk in parts for x in chunk])
            else:
                self.set_result([v for _, v in parts])
        except InvalidStateError:  # already resolved (e.g. two deliveries raced): the first result stands
            pass

    # -------------------------------------------------------------------------- waiting
    def get(self, timeout: float | None = None, return_exceptions: bool | None = None) -> Any:
        """The result, waiting up to `timeout` seconds (None = forever; raises TimeoutError).

        Raises the task's exception (a RemoteError), or a CompositeError for several results
        unless `return_exceptions`, which puts each failed part's exception in its place instead.
        """
        if timeout is not None and timeout < 0:
            timeout = None
        if not self.wait(timeout):
            raise TimeoutError("Result not ready.")
        if return_exceptions is None:
            return_exceptions = self._return_exceptions
        if return_exceptions and not self._single and self.exception() is not None:
            return self._with_exceptions()
        return self.result(0)

    def _with_exceptions(self) -> list[Any]:
        out: list[Any] = []
        for i, m in enumerate(self.msg_ids):
            ok, v = self._values[m]
            if self._chunks is None:
                out.append(v)
            else:
                out.extend(v if ok else [v] * self._chunks[i])
        return out

    def wait(self, timeout: float | None = -1) -> bool:
        """Wait until every part is done (timeout None or -1 = forever); returns whether it is."""
        if timeout is not None and timeout < 0:
            timeout = None
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while len(self._values) < len(self.msg_ids):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
        return True

    def ready(self) -> bool:
        """Whether every part is done."""
        return len(self._values) == len(self.msg_ids)

    def successful(self) -> bool:
        """Whether it finished without error. Raises RuntimeError if not ready yet."""
        if not self.ready():
            raise RuntimeError("result not ready")
        return all(ok for ok, _ in self._values.values())

    def abort(self) -> None:
        """Abort the parts not yet run. Raises RuntimeError if everything is already done."""
        if self.ready():
            raise RuntimeError("cannot abort a result that is already done")
        self._client.abort(self)

    # ------------------------------------------------------------------------- metadata
    @property
    def metadata(self) -> dict[str, Any] | list[dict[str, Any]]:
        """Per-task metadata (a dict for one task, a list otherwise); never blocks."""
        mds = [self._client.metadata_of(m) for m in self.msg_ids]
        return mds[0] if self._single else mds

    def _md(self, key: str) -> Any:
        md = self.metadata
        return md.get(key) if isinstance(md, dict) else [m.get(key) for m in md]

    def __getitem__(self, key: str) -> Any:
        """A metadata key (str), or an element / slice of the result (waits for it)."""
        if isinstance(key, str):
            return self._md(key)
        if isinstance(key, (int, slice)) and not self._single:
            return self.get()[key]
        raise TypeError("index an AsyncResult by metadata key, or a multi-result by int or slice")

    @property
    def engine_id(self) -> int | None | list[int | None]:
        """The engine each task ran on."""
        return self._md("engine_id")

    @property
    def elapsed(self) -> float:
        """Seconds since submission (the wall time once done)."""
        if self.ready():
            return self.wall_time
        subs = [m["submitted"] for m in self._all_md() if m.get("submitted")]
        return time.time() - min(subs) if subs else 0.0

    @property
    def wall_time(self) -> float:
        """Last result received minus first submission. Raises TimeoutError before completion."""
        if not self.ready():
            raise TimeoutError("result not ready")
        mds = self._all_md()
        received = [m["received"] for m in mds if m.get("received")]
        submitted = [m["submitted"] for m in mds if m.get("submitted")]
        return max(received) - min(submitted) if received and submitted else 0.0

    @property
    def serial_time(self) -> float:
        """Sum of the time each task spent running. Raises TimeoutError before completion."""
        if not self.ready():
            raise TimeoutError("result not ready")
        return sum(m["completed"] - m["started"] for m in self._all_md() if m.get("completed") and m.get("started"))

    @property
    def progress(self) -> int:
        """How many parts are done (elements, for a map)."""
        if self._chunks is None:
            return len(self._values)
        return sum(n for m, n in zip(self.msg_ids, self._chunks) if m in self._values)

    def _all_md(self) -> list[dict[str, Any]]:
        return [self._client.metadata_of(m) for m in self.msg_ids]

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
                        self._cond.wait()
                    mid = pending.pop(0)
                else:
                    while not any(m in self._values for m in pending):
                        self._cond.wait()
                    mid = next(m for m in self._order if m in pending)
                    pending.remove(mid)
                ok, value = self._values[mid]
            if not ok:
                if self._return_exceptions:
                    yield from ([value] * self._chunks[index[mid]] if self._chunks else [value])
                    continue
                raise _composite(self._fname, [value])
            yield from (value if self._chunks is not None else [value])

    def __repr__(self) -> str:
        state = "finished" if self.ready() else "pending"
        return f"<AsyncResult({self._fname}): {state}>"


def _composite(fname: str, failures: list[BaseException]) -> CompositeError:
    elist = []
    for exc in failures:
        if isinstance(exc, CompositeError):
            elist.extend(exc.elist)
        elif isinstance(exc, RemoteError):
            elist.append((exc.ename, exc.evalue, exc.traceback, exc.engine_info))
        else:
            elist.append((type(exc).__name__, str(exc), "", {}))
    return CompositeError(f"one or more exceptions raised in: {fname}", elist)
