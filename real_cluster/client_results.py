"""The Client's result requests: `get_result`, `resubmit`, `wait`, `wait_interactive` (ipyparallel's names).

A mixin of `Client` (it uses the client's `_request`, `_track`, caches and lock). `get_result` and
`resubmit` return the AsyncResult (an AsyncHubResult for tasks fetched from the controller), also
when blocking, as ipyparallel does; `wait` accepts task ids, history indices, AsyncResults and any
other `concurrent.futures.Future`.
"""

from __future__ import annotations

import concurrent.futures as cf
import time
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, cast

from .asyncmapresult import AsyncHubResult
from .asyncresult import AsyncResult
from .error import RemoteError
from .metadata import to_datetime

if TYPE_CHECKING:
    import threading

    from .client import Client
    from .client_link import ClientLink
    from .metadata import Metadata


def _ids_of(jobs: Any, history: list[str] | None = None) -> list[str]:
    """Task ids from an id, a history index (with `history`), an AsyncResult, or a list of those."""
    if jobs is None:
        return []
    if isinstance(jobs, (str, int, AsyncResult)):
        jobs = [jobs]
    out: list[str] = []
    for job in jobs:
        if isinstance(job, str):
            out.append(job)
        elif isinstance(job, AsyncResult):
            out.extend(job.msg_ids)
        elif isinstance(job, int) and not isinstance(job, bool) and history is not None:
            try:
                out.append(history[job])
            except IndexError:
                raise IndexError(f"no task at history index {job} ({len(history)} submitted)") from None
        else:
            raise TypeError(f"expected task ids, history indices or AsyncResults, got {job!r}")
    return out


class ResultRequests:
    """Fetching, resubmitting and waiting for results, mixed into Client."""

    if TYPE_CHECKING:        # provided by Client
        _lock: threading.Lock
        _link: ClientLink
        _done: dict[str, tuple[bool, Any]]
        outstanding: set[str]
        history: list[str]
        block: bool

        def _request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any: ...
        def _track(self, ar: AsyncResult) -> AsyncResult: ...
        def _metadata_for(self, msg_id: str) -> Metadata: ...

    def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None, owner: bool = True,
                   timeout: float | None = None) -> AsyncResult:
        """An AsyncResult for tasks from any client (ids, AsyncResults or history indices; default the last).

        An AsyncHubResult when some task is not known here (fetched from the controller). With
        `owner` the AsyncResult owns the results: once done, the client forgets them. `block` waits
        (up to `timeout`) before returning it. Raises KeyError for unknown ids.
        """
        block = self.block if block is None else block
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        single = not isinstance(indices_or_msg_ids, (list, tuple, set))
        ids = _ids_of(indices_or_msg_ids, self.history)
        with self._lock:
            remote = [m for m in ids if m not in self._done and m not in self.outstanding]
        cls = AsyncHubResult if remote else AsyncResult
        ar = cls(cast("Client", self), ids, "get_result", single=single and len(ids) == 1, owner=owner)
        if remote:
            self._request("get_result", ids=remote)    # KeyError for an unknown id; the results follow
        self._track(ar)
        if block:
            ar.wait(timeout)
        return ar

    def resubmit(self, indices_or_msg_ids: Any = None, block: bool | None = None) -> AsyncHubResult:
        """Run finished tasks again (same function, arguments and flags) under new ids; returns an AsyncHubResult.

        Raises RemoteError (ename KeyError) for an unknown id, ValueError for a task not finished yet.
        """
        block = self.block if block is None else block
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        ids = _ids_of(indices_or_msg_ids, self.history)
        try:
            mapping = self._request("resubmit", ids=ids)
        except KeyError as exc:
            raise RemoteError("KeyError", exc.args[0] if exc.args else "") from None
        new_ids = [mapping[i] for i in ids]
        for nid in new_ids:
            md = self._metadata_for(nid)
            if md["submitted"] is None:     # (a big resubmit's first results can come before its reply)
                dict.update(md, submitted=to_datetime(time.time()))
            self.history.append(nid)
        ar = self._track(AsyncHubResult(cast("Client", self), new_ids, "resubmit", single=len(new_ids) == 1))
        if block:
            ar.wait()
        return ar  # type: ignore[return-value]

    def _as_result(self, jobs: Any) -> tuple[AsyncResult | None, list[Future]]:
        """Jobs as one AsyncResult over their task ids, plus the other concurrent.futures.Futures among them."""
        if jobs is None:
            jobs = list(self.outstanding)
        elif isinstance(jobs, (str, int, Future)):
            jobs = [jobs]
        futures = [j for j in jobs if isinstance(j, Future) and not isinstance(j, AsyncResult)]
        ids = _ids_of([j for j in jobs if not (isinstance(j, Future) and not isinstance(j, AsyncResult))],
                      self.history)
        if not ids:
            return None, futures
        ar = AsyncResult(cast("Client", self), ids, "wait", single=False)
        self._track(ar)
        unknown = [i for i in ids if i not in self._done and i not in self.outstanding]
        if unknown:
            self._request("get_result", ids=unknown)
        return ar, futures

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for tasks (default: everything outstanding) and any concurrent.futures.Futures among `jobs`.

        Returns whether all finished within `timeout` seconds (None or negative: forever).
        """
        timeout = None if timeout is None or timeout < 0 else timeout
        deadline = None if timeout is None else time.monotonic() + timeout
        ar, futures = self._as_result(jobs)
        if ar is not None and not ar.wait(timeout):
            return False
        if futures:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            with self._link.waiting():
                _, pending = cf.wait(futures, timeout=remaining)
            return not pending
        return True

    def wait_interactive(self, jobs: Any = None, interval: float = 1.0, timeout: float | None = -1) -> None:
        """`wait`, showing a progress bar of the tasks (tqdm: the notebook widget in a kernel, else text)."""
        ar, _ = self._as_result(jobs)
        if ar is not None:
            ar.wait_interactive(interval=interval, timeout=timeout)
