"""LoadBalancedView, with parallel map, `@parallel` and `@remote` (ipyparallel's task interface).

Flags: `block, targets, after, follow, timeout, retries, label` (+ ours: `time_limit`, `size_hint` — the
task's estimated length, which the controller's scheme sees as `choice.task.size_hint`). `set_flags` validates every
value before assigning any (an invalid call changes nothing) and returns the view; `temp_flags`
sets them for a `with` block. `map` follows Python's `map`: unequal lengths stop at the shortest,
and no empty task is ever sent; `chunksize` elements go in each task.
"""

from __future__ import annotations

import concurrent.futures as cf
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sched_lab.core.options import check_retries, check_size_hint, check_time_limit_s, check_timeout_s

from .asyncmapresult import AsyncMapResult
from .asyncresult import AsyncResult
from .error import NoEnginesRegistered, RemoteError
from .functional import as_core_dependency
from .messages import NO_FLAGS, TaskFlags

if TYPE_CHECKING:
    from .actors import ActorHandle
    from .client import Client

FLAG_NAMES = ("targets", "block", "after", "follow", "timeout", "retries", "label", "track", "time_limit",
              "size_hint")


def _check_flag(name: str, value: Any) -> Any:
    """The validated (normalised) value of one flag; raises KeyError/TypeError/ValueError."""
    if name in ("block", "track"):          # track: sends copy their arguments, so it changes nothing here
        return bool(value)
    if name == "targets":
        if value is None or value == "all":
            return None
        if isinstance(value, bool):
            raise TypeError("targets must be an engine id or a list of engine ids")
        if isinstance(value, int):
            return [value]
        if isinstance(value, (list, tuple, set, frozenset, range)):
            out = list(value)
            if not out or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
                raise ValueError(f"targets must be a non-empty list of engine ids, got {value!r}")
            return out
        raise TypeError(f"targets must be an engine id or a list of engine ids, got {value!r}")
    if name in ("after", "follow"):
        if value is None:
            return None
        try:
            as_core_dependency(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"Invalid dependency {value!r}: {exc}") from None
        return value
    if name == "timeout":
        return check_timeout_s(value)
    if name == "time_limit":
        return check_time_limit_s(value)
    if name == "size_hint":
        return check_size_hint(value)
    if name == "retries":
        return check_retries(value)
    if name == "label":
        if value is not None and not isinstance(value, str):
            raise TypeError(f"label must be a str or None, got {value!r}")
        return value
    raise KeyError(f"Invalid name: {name!r}")


@contextmanager
def temporary_flags(view: Any, names: tuple[str, ...], flags: dict[str, Any]) -> Iterator[Any]:
    """`view.set_flags(**flags)` for a `with` block, then every flag in `names` as it was (both views' temp_flags)."""
    saved = {name: getattr(view, name) for name in names}
    view.set_flags(**flags)
    try:
        yield view
    finally:
        for name, value in saved.items():
            setattr(view, name, value)


def _partition(n: int, chunksize: int) -> list[tuple[int, int]]:
    """Balanced contiguous [lo, hi) slices: ceil(n / chunksize) of them, none empty."""
    parts = math.ceil(n / chunksize)
    return [(n * i // parts, n * (i + 1) // parts) for i in range(parts)]


class LoadBalancedView:
    """Submits tasks that the controller's scheduler places on engines."""

    def __init__(self, client: Client):
        self.client = client
        self.targets: list[int] | None = None
        self.block = False
        self.after: Any = None
        self.follow: Any = None
        self.timeout: float | None = None
        self.retries = 0
        self.label: str | None = None
        self.track = False
        self.time_limit: float | None = None     # seconds a task may run before its engine stops it
        self.size_hint: float | None = None      # the tasks' estimated length, shown to the scheme
        self.history: list[str] = []
        self._plain_flags: dict[tuple, TaskFlags] = {}

    # -------------------------------------------------------------------------------- flags
    def set_flags(self, **flags: Any) -> LoadBalancedView:
        """Validate every flag, then set them all (nothing changes if one is invalid); returns self."""
        checked = {name: _check_flag(name, value) for name, value in flags.items()}
        for name, value in checked.items():
            setattr(self, name, value)
        return self

    def temp_flags(self, **flags: Any) -> Any:
        """Set flags for the duration of a `with` block."""
        return temporary_flags(self, FLAG_NAMES, flags)

    def _flags(self, **override: Any) -> TaskFlags:
        if not override and self.targets is None and self.after is None and self.follow is None \
                and self.time_limit is None and self.size_hint is None:
            key = (self.retries, self.timeout, self.label)     # the common case, cached (bench_live.py, burst)
            flags = self._plain_flags.get(key)
            if flags is None:
                if len(self._plain_flags) > 64:
                    self._plain_flags.clear()
                flags = TaskFlags(retries=self.retries, timeout_s=self.timeout or None, label=self.label)
                self._plain_flags[key] = flags = NO_FLAGS if flags == NO_FLAGS else flags   # (sent by identity)
            return flags
        values = {name: getattr(self, name) for name in FLAG_NAMES}
        values.update({k: _check_flag(k, v) for k, v in override.items()})
        targets = values["targets"]
        if targets is not None:
            targets = self.client._resolve_targets(targets)
            engines = self.client.ids
            if not engines:
                raise NoEnginesRegistered("no engines are registered, so no targets can be used")
            unknown = [t for t in targets if t not in engines]
            if unknown:
                raise IndexError(f"No such engine: {unknown}")
        return TaskFlags(targets=tuple(targets) if targets else None, after=as_core_dependency(values["after"]),
                         follow=as_core_dependency(values["follow"]), retries=values["retries"],
                         timeout_s=values["timeout"] or None, label=values["label"],
                         time_limit_s=values["time_limit"], size_hint=values["size_hint"])

    def __len__(self) -> int:
        return len(self.targets) if self.targets is not None else len(self.client.ids)

    @property
    def outstanding(self) -> set[str]:
        """Ids of this view's tasks not finished yet."""
        return set(self.history) & self.client.outstanding

    @property
    def results(self) -> dict[str, Any]:
        """The client's finished results (exceptions for failures)."""
        return self.client.results

    @property
    def executor(self) -> ViewExecutor:
        """A `concurrent.futures.Executor` submitting through this view (`submit`, `map`, `shutdown`)."""
        return ViewExecutor(self)

    def spin(self) -> None:
        """Nothing to do: results arrive on the client's reader thread by themselves."""

    # -------------------------------------------------------------------------------- apply
    def _submit(self, payload: bytes, flags: TaskFlags) -> str:
        tid = self.client.submit_task(payload, flags)
        self.history.append(tid)
        return tid

    def apply_async(self, f: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Run `f(*args, **kwargs)` on some engine; returns an AsyncResult at once."""
        flags = self._flags()
        tid = self._submit(self.client.functions.pack_call(f, args, kwargs), flags)
        return self.client._track(AsyncResult(self.client, [tid], getattr(f, "__name__", "unknown")))

    def apply_sync(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """Run `f(*args, **kwargs)` and return its value (raises its RemoteError)."""
        return self.apply_async(f, *args, **kwargs).get()

    def apply(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """`apply_sync` if `view.block`, else `apply_async`."""
        return self.apply_sync(f, *args, **kwargs) if self.block else self.apply_async(f, *args, **kwargs)

    def actor(self, cls: Any, /, *args: Any, name: str | None = None, max_restarts: int = 0,
              max_task_retries: int = 0, max_concurrency: int = 1, init_kwargs: dict | None = None,
              **kwargs: Any) -> ActorHandle:
        """Create one instance of `cls` on an engine this view's scheme picks (its targets, follow, after and the
        class's `@require` honoured); returns its ActorHandle at once (calls made meanwhile wait for it).

        `args`/`kwargs` go to the constructor (`init_kwargs` for keywords named like these options). `name`:
        findable with `client.get_actor` (ValueError if a live actor has it). `max_restarts`: times it is
        re-created when its engine or worker dies; `max_task_retries`: times a call in flight then
        is run again; `max_concurrency`: calls that may run at once (threads). See real_cluster/actors.py."""
        from .actors import create_actor
        return create_actor(self, cls, args, kwargs, name=name, max_restarts=max_restarts,
                            max_task_retries=max_task_retries, max_concurrency=max_concurrency,
                            init_kwargs=init_kwargs)

    # ---------------------------------------------------------------------------------- map
    def map(self, f: Callable, /, *sequences: Any, block: bool | None = None, chunksize: int | None = None,
            ordered: bool = True, return_exceptions: bool = False) -> Any:
        """Parallel `map(f, *sequences)`: a list when blocking, else an AsyncMapResult (iterable).

        With `return_exceptions` a failed element's exception takes its place instead of raising.
        """
        if not sequences:
            raise TypeError("map() needs at least one sequence")
        block = self.block if block is None else block
        chunksize = 1 if chunksize is None else chunksize
        if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be a positive int, got {chunksize!r}")
        seqs = [s if isinstance(s, (list, tuple, range)) else list(s) for s in sequences]
        n = min(len(s) for s in seqs)
        flags = self._flags()
        fname = getattr(f, "__name__", "unknown")
        ids, sizes = [], []
        for lo, hi in (_partition(n, chunksize) if n else []):
            ids.append(self._submit(self.client.functions.pack_map(f, [s[lo:hi] for s in seqs]), flags))
            sizes.append(hi - lo)
        ar = self.client._track(AsyncMapResult(self.client, ids, fname, chunk_sizes=sizes, ordered=ordered,
                                                return_exceptions=return_exceptions))
        return ar.get() if block else ar

    def map_async(self, f: Callable, /, *sequences: Any, **kwargs: Any) -> AsyncMapResult:
        """`map` that returns an AsyncResult."""
        if "block" in kwargs:
            raise TypeError("map_async doesn't take a `block` keyword argument")
        return self.map(f, *sequences, block=False, **kwargs)

    def map_sync(self, f: Callable, /, *sequences: Any, **kwargs: Any) -> list:
        """`map` that waits and returns the list."""
        if "block" in kwargs:
            raise TypeError("map_sync doesn't take a `block` keyword argument")
        return self.map(f, *sequences, block=True, **kwargs)

    def imap(self, f: Callable, /, *sequences: Any, ordered: bool = True, max_outstanding: int | str = "auto",
             return_exceptions: bool = False) -> IMapIterator:
        """Lazy map: one task per element, at most `max_outstanding` in flight ("auto": 2 per engine).

        Returns an iterator with `.cancel()` (submit no more, abort what has not started, stop
        iterating). A failed element raises its RemoteError, or is yielded with `return_exceptions`.
        """
        window = max(2 * len(self), 2) if max_outstanding == "auto" else int(max_outstanding) or 1 << 62
        return IMapIterator(self, f, sequences, ordered, window, return_exceptions)

    # ---------------------------------------------------------------------------- decorators
    def parallel(self, chunksize: int | None = None, ordered: bool = True, block: bool | None = None,
                 **flags: Any) -> Callable[[Callable], ParallelFunction]:
        """Decorator: `f.map(seq)` maps element-wise; `f(seq)` passes slices of `seq` to `f`."""
        for name, value in flags.items():
            _check_flag(name, value)

        def decorate(f: Callable) -> ParallelFunction:
            return ParallelFunction(self, f, chunksize, ordered, block, flags)

        return decorate

    def remote(self, block: bool | None = None, **flags: Any) -> Callable[[Callable], RemoteFunction]:
        """Decorator: calling the function runs it as a task (`apply`, with these flags)."""
        for name, value in flags.items():
            _check_flag(name, value)

        def decorate(f: Callable) -> RemoteFunction:
            return RemoteFunction(self, f, block, flags)

        return decorate

    # ------------------------------------------------------------------------------ helpers
    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for tasks (default: everything submitted through this view)."""
        return self.client.wait(self.history if jobs is None else jobs, timeout)

    def abort(self, jobs: Any = None) -> int:
        """Abort tasks not yet started (default: this view's outstanding ones)."""
        ids = [t for t in self.history if t in self.client.outstanding] if jobs is None else jobs
        return self.client.abort(ids)

    def get_result(self, indices_or_msg_ids: Any = -1, block: bool | None = None, owner: bool = False) -> Any:
        """`client.get_result`; ints index this view's history."""
        if isinstance(indices_or_msg_ids, int):
            indices_or_msg_ids = self.history[indices_or_msg_ids]
        return self.client.get_result(indices_or_msg_ids, block=block, owner=owner)

    def queue_status(self, verbose: bool = False) -> dict[Any, Any]:
        """The controller's queue status for this view's engines."""
        return self.client.queue_status(self.targets, verbose)

    def shutdown(self, hub: bool = False) -> None:
        """Stop this view's engines."""
        self.client.shutdown(self.targets or "all", hub=hub)

    def __repr__(self) -> str:
        return f"<LoadBalancedView targets={self.targets or 'all'}>"


class ViewExecutor(cf.Executor):
    """`view.executor`: submit returns the task's AsyncResult (a Future); map yields values in order."""

    def __init__(self, view: LoadBalancedView):
        self.view = view
        self._submitted: list[AsyncResult] = []

    def submit(self, fn: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:  # type: ignore[override]
        ar = self.view.apply_async(fn, *args, **kwargs)
        self._submitted.append(ar)
        return ar

    def map(self, fn: Callable, *iterables: Any, timeout: float | None = None,  # type: ignore[override]
            chunksize: int = 1) -> Iterator:
        amr = self.view.map_async(fn, *iterables, chunksize=chunksize)
        self._submitted.append(amr)
        if timeout is None:
            return iter(amr)
        return iter(amr.get(timeout))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if cancel_futures:
            pending = [ar for ar in self._submitted if not ar.ready()]
            if pending:
                self.view.client.abort(pending)
        if wait:
            for ar in self._submitted:
                ar.wait()


class IMapIterator:
    """What `imap` returns: results one by one as tasks finish, submitting lazily; `.cancel()` stops it."""

    def __init__(self, view: LoadBalancedView, f: Callable, sequences: tuple, ordered: bool, window: int,
                 return_exceptions: bool):
        self._view = view
        self._in_flight: list[AsyncResult] = []
        self._cancelled = False
        self._gen = self._run(f, sequences, ordered, window, return_exceptions)

    def __iter__(self) -> IMapIterator:
        return self

    def __next__(self) -> Any:
        return next(self._gen)

    def cancel(self) -> int:
        """Submit nothing more, abort the tasks not started yet, end the iteration; returns how many were aborted."""
        self._cancelled = True
        pending = [ar for ar in self._in_flight if not ar.ready()]
        self._in_flight.clear()
        return self._view.client.abort(pending) if pending else 0

    def _run(self, f: Callable, sequences: tuple, ordered: bool, window: int, return_exceptions: bool) -> Iterator:
        for args in zip(*sequences):
            if self._cancelled:
                return
            self._in_flight.append(self._view.apply_async(f, *args))
            while len(self._in_flight) >= window and not self._cancelled:
                yield self._next_done(ordered, return_exceptions)
        while self._in_flight and not self._cancelled:
            yield self._next_done(ordered, return_exceptions)

    def _next_done(self, ordered: bool, return_exceptions: bool) -> Any:
        if ordered:
            ar = self._in_flight[0]
            ar.wait()
        else:
            with self._view.client._link.waiting():
                done, _ = cf.wait(self._in_flight, return_when=cf.FIRST_COMPLETED)
            ar = next(a for a in self._in_flight if a in done)
        if ar in self._in_flight:
            self._in_flight.remove(ar)
        try:
            return ar.get()
        except RemoteError as exc:
            if return_exceptions:
                return exc
            raise


class ParallelFunction:
    """A function bound to a view: `.map(*seqs)` element-wise; calling it runs `f` on slices."""

    def __init__(self, view: LoadBalancedView, f: Callable, chunksize: int | None, ordered: bool,
                 block: bool | None, flags: dict[str, Any]):
        self.view, self.func, self.chunksize, self.ordered, self.block, self.flags = view, f, chunksize, ordered, block, flags
        self.__name__ = getattr(f, "__name__", "parallel")
        self.__doc__ = getattr(f, "__doc__", None)

    def map(self, *sequences: Any) -> Any:
        """Element-wise parallel map of the function."""
        with self.view.temp_flags(**self.flags):
            return self.view.map(self.func, *sequences, block=self.block, chunksize=self.chunksize,
                                 ordered=self.ordered)

    def __call__(self, *sequences: Any) -> Any:
        seqs = [s if isinstance(s, (list, tuple, range)) else list(s) for s in sequences]
        n = min(len(s) for s in seqs) if seqs else 0
        with self.view.temp_flags(**self.flags):
            ars = [self.view.apply_async(self.func, *[s[lo:hi] for s in seqs])
                   for lo, hi in (_partition(n, self.chunksize or 1) if n else [])]
            block = self.view.block if self.block is None else self.block
        ids = [m for ar in ars for m in ar.msg_ids]
        ar = self.view.client._track(AsyncResult(self.view.client, ids, self.__name__, single=False))
        if not block:
            return ar
        parts = ar.get()
        if all(isinstance(p, (list, tuple, range)) for p in parts):
            return [x for p in parts for x in p]
        return parts


class RemoteFunction:
    """A function bound to a view: calling it is `view.apply(f, ...)` with the decorator's flags."""

    def __init__(self, view: LoadBalancedView, f: Callable, block: bool | None, flags: dict[str, Any]):
        self.view, self.func, self.block, self.flags = view, f, block, flags
        self.__name__ = getattr(f, "__name__", "remote")
        self.__doc__ = getattr(f, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self.view.temp_flags(**self.flags):
            block = self.view.block if self.block is None else self.block
            return (self.view.apply_sync if block else self.view.apply_async)(self.func, *args, **kwargs)
