"""DirectView: ipyparallel's multiengine interface — the same call on each of a view's engines.

How this works. Every call sends one *direct* task per target engine (`TaskFlags(targets=(eid,),
direct=True)`): the core pins it to that engine and sends it at once, in submission order, not
held back by the hwm (docs/core-api.md, "Actors and direct tasks"), so it appears in the task
database, the core's records and `queue_status` like any task, and load-balanced work runs beside
it. Data movement runs as tasks too: `push`/`pull`/`execute`/`clear` apply the functions of
real_cluster/namespace.py, which work on the engine worker's namespace.

Targets, as in ipyparallel: an int is one engine id (negative: an index into `client.ids`) and the
results are single values; a list (also `rc[:]`, `rc[::2]`, a slice resolved when the view is
made) gives lists in target order; `"all"` (`rc.direct_view()`) means every engine registered at
each call. Flags: `block`, `targets`, `track` (`set_flags`, `temp_flags`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import InvalidStateError
from contextlib import contextmanager
from itertools import chain, islice
from typing import TYPE_CHECKING, Any

from .asyncmapresult import AsyncMapResult
from .asyncresult import AsyncResult
from .error import NoEnginesRegistered
from .messages import TaskFlags
from .namespace import _clear, _execute, _import, _pull, _push
from .serialize import map_chunk, pack_call
from .view import temporary_flags

if TYPE_CHECKING:
    from .client import Client

__all__ = ["DirectView", "view_for_key"]
FLAG_NAMES = ("targets", "block", "track")
DISTS = ("b", "r")


def _check_targets(value: Any) -> Any:
    """A view's `targets`: "all", one engine id, or a non-empty list of engine ids."""
    if value is None or value == "all":
        return "all"
    if isinstance(value, bool):
        raise TypeError("targets must be 'all', an engine id or a list of engine ids")
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple, range)):
        out = list(value)
        if not out or not all(isinstance(v, int) and not isinstance(v, bool) for v in out):
            raise ValueError(f"targets must be a non-empty list of engine ids, got {value!r}")
        return out
    raise TypeError(f"targets must be 'all', an engine id or a list of engine ids, got {value!r}")


def partition(seq: Any, p: int, q: int, dist: str = "b", n: int | None = None) -> Any:
    """The `p`-th of `q` parts of the first `n` (default all) elements of `seq`: ipyparallel's block
    partition ('b': contiguous, the first n % q parts one longer) or round robin ('r': every q-th from p)."""
    n = len(seq) if n is None else n
    if dist == "r":
        try:
            return seq[p:n:q]
        except TypeError:
            return list(islice(seq, p, n, q))
    base, extra = divmod(n, q)
    lo = p * (base + 1) if p < extra else p * base + extra
    hi = lo + base + (1 if p < extra else 0)
    try:
        return seq[lo:hi]
    except TypeError:          # sized but not sliceable
        return list(islice(seq, lo, hi))


def join_partitions(parts: list[Any], dist: str = "b") -> Any:
    """Inverse of `partition`: arrays concatenated, lists and tuples joined into a list, scalars as a list."""
    if not parts:
        return []
    first = parts[0]
    if type(first).__module__ == "numpy" and type(first).__name__ == "ndarray":
        import numpy
        if dist == "r":
            out = numpy.empty((sum(len(p) for p in parts), *first.shape[1:]), dtype=first.dtype)
            for i, p in enumerate(parts):
                out[i::len(parts)] = p
            return out
        return numpy.concatenate(parts)
    if isinstance(first, (list, tuple)):
        if dist == "r":
            return [p[i] for i in range(max(len(p) for p in parts)) for p in parts if len(p) > i]
        return list(chain.from_iterable(parts))
    return list(parts)


class GatherResult(AsyncResult):
    """What `gather(block=False)` returns: `get()` joins the engines' parts into one sequence."""

    def __init__(self, client: Client, msg_ids: list[str], dist: str, fname: str = "gather"):
        super().__init__(client, msg_ids, fname, single=False)
        self._dist = dist

    def _resolve(self) -> None:
        parts = [self._values[m] for m in self.msg_ids]
        if not all(ok for ok, _ in parts):
            return super()._resolve()
        try:
            joined = join_partitions([v for _, v in parts], self._dist)
        except (TypeError, ValueError) as exc:      # parts that do not join (e.g. mixed types): the error is the result
            self._settle(exc, failed=True)
        else:
            self._settle(joined)

    def _settle(self, value: Any, failed: bool = False) -> None:
        try:
            self.set_exception(value) if failed else self.set_result(value)
        except InvalidStateError:       # already resolved: the first result stands
            pass
        if self.owner:
            self._client._disown(self.msg_ids)


def view_for_key(client: Client, key: Any) -> DirectView:
    """`client[key]`: an int (one engine id), a slice of `client.ids`, or a list of engine ids."""
    if isinstance(key, bool) or not isinstance(key, (int, slice, tuple, list, range)):
        raise TypeError(f"key by int/slice/iterable of ints only, not {type(key).__name__}")
    if isinstance(key, slice):
        ids = client.ids
        if not ids:
            raise NoEnginesRegistered("no engines are registered")
        targets = ids[key]
        if not targets:
            raise IndexError(f"no engine selected by {key!r} (engines {ids})")
        return DirectView(client, targets=targets)
    return client.direct_view(key)


class DirectView:
    """The same call on each engine of `targets` (see the module docstring); made by `client[...]` or
    `client.direct_view(targets)`. Every method follows ipyparallel's DirectView."""

    def __init__(self, client: Client, targets: Any = "all", **flags: Any):
        self.client = client
        self.targets: Any = "all"
        self.block: bool = bool(getattr(client, "block", False))
        self.track = False
        self.history: list[str] = []
        self._flags_for: dict[int, TaskFlags] = {}
        self.set_flags(targets=targets, **flags)

    # -------------------------------------------------------------------------------- flags
    def set_flags(self, **flags: Any) -> DirectView:
        """Set `block`, `targets`, `track` (KeyError for any other name; nothing changes if one is invalid)."""
        checked = {}
        for name, value in flags.items():
            if name not in FLAG_NAMES:
                raise KeyError(f"Invalid name: {name!r}")
            checked[name] = _check_targets(value) if name == "targets" else bool(value)
        for name, value in checked.items():
            setattr(self, name, value)
        return self

    def temp_flags(self, **flags: Any) -> Any:
        """Set flags for the duration of a `with` block."""
        return temporary_flags(self, FLAG_NAMES, flags)

    def _engines(self, targets: Any = None) -> tuple[list[int], bool]:
        """(engine ids in target order, whether results are single values); IndexError for unknown engines."""
        targets = self.targets if targets is None else _check_targets(targets)
        ids = self.client.ids
        if not ids:
            raise NoEnginesRegistered("no engines are registered")
        if targets == "all":
            return ids, False
        single = isinstance(targets, int)
        out = []
        for t in ([targets] if single else targets):
            if t < 0:
                if -t > len(ids):
                    raise IndexError(f"no engine at index {t} ({len(ids)} registered)")
                t = ids[t]
            if t not in ids:
                raise IndexError(f"No such engine: {t}")
            out.append(t)
        return out, single

    def _submit(self, payload: bytes, eid: int) -> str:
        flags = self._flags_for.get(eid)
        if flags is None:
            flags = self._flags_for[eid] = TaskFlags(targets=(eid,), direct=True)
        tid = self.client.submit_task(payload, flags)
        self.history.append(tid)
        return tid

    def _apply(self, f: Callable, args: tuple, kwargs: dict, targets: Any = None, fname: str | None = None) -> AsyncResult:
        eids, single = self._engines(targets)
        payload = pack_call(f, args, kwargs)            # pickled once, the same bytes to every engine
        ids = [self._submit(payload, eid) for eid in eids]
        name = fname or str(getattr(f, "__name__", "unknown"))
        return self.client._track(AsyncResult(self.client, ids, name, single=single))

    # -------------------------------------------------------------------------------- apply
    def apply_async(self, f: Callable, /, *args: Any, **kwargs: Any) -> AsyncResult:
        """Run `f(*args, **kwargs)` on every target engine; an AsyncResult (one value for an int target,
        else a list in target order)."""
        return self._apply(f, args, kwargs)

    def apply_sync(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """`apply_async(...).get()`: one value for an int target, else a list in target order."""
        return self._apply(f, args, kwargs).get()

    def apply(self, f: Callable, /, *args: Any, **kwargs: Any) -> Any:
        """`apply_sync` if `view.block`, else `apply_async`."""
        return self.apply_sync(f, *args, **kwargs) if self.block else self.apply_async(f, *args, **kwargs)

    def _maybe_block(self, ar: AsyncResult, block: bool | None) -> Any:
        return ar.get() if (self.block if block is None else block) else ar

    def execute(self, code: str, silent: bool = True, targets: Any = None, block: bool | None = None) -> AsyncResult:
        """Run `code` in each target engine's namespace; returns the AsyncResult (waited for when blocking,
        raising the engines' errors). Its `get()` is None per engine; what the code printed is its stdout."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        ar = self._apply(_execute, (code,), {}, targets, "execute")
        if self.block if block is None else block:
            ar.get()
        return ar

    def run(self, filename: str, targets: Any = None, block: bool | None = None) -> AsyncResult:
        """`execute` the contents of a local file on the target engines."""
        with open(filename) as fh:
            code = fh.read() + "\n"
        return self.execute(code, targets=targets, block=block)

    # ----------------------------------------------------------------------- data movement
    def push(self, ns: dict, targets: Any = None, block: bool | None = None, track: bool | None = None) -> Any:
        """Set the names of `ns` in each target engine's namespace (None per engine when blocking)."""
        if not isinstance(ns, dict):
            raise TypeError(f"Must be a dict, not {type(ns).__name__}")
        for key in ns:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"push needs names that are Python identifiers, got {key!r}")
        return self._maybe_block(self._apply(_push, (), ns, targets, "push"), block)

    def update(self, ns: dict) -> Any:
        """`push(ns)` with the view's flags."""
        return self.push(ns, block=self.block, track=self.track)

    def pull(self, names: Any, targets: Any = None, block: bool | None = None) -> Any:
        """The value of a name (or a list of values for a list of names) on each target engine.

        A name the engine does not have raises a RemoteError (NameError) that says when the engine's
        worker was restarted, which empties its namespace."""
        if isinstance(names, (list, tuple, set)):
            for key in names:
                if not isinstance(key, str):
                    raise TypeError(f"keys must be str, not type {type(key).__name__!r}")
            names = list(names)
        elif not isinstance(names, str):
            raise TypeError(f"names must be strs, not {names!r}")
        return self._maybe_block(self._apply(_pull, (names,), {}, targets, "pull"), block)

    def get(self, key_s: Any) -> Any:
        """`pull(key_s, block=True)`."""
        return self.pull(key_s, block=True)

    def __getitem__(self, key: Any) -> Any:
        return self.get(key)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def scatter(self, key: str, seq: Any, dist: str = "b", flatten: bool = False, targets: Any = None,
                block: bool | None = None, track: bool | None = None) -> AsyncResult | None:
        """Partition `seq` over the target engines (part i to the i-th engine) and push each part as `key`.

        `flatten`: a part of one element is pushed as that element. Returns None when blocking (after
        every push succeeded), else the AsyncResult."""
        if dist not in DISTS:
            raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")
        eids, _ = self._engines(targets)
        ids = []
        for index, eid in enumerate(eids):
            part = partition(seq, index, len(eids), dist)
            ns = {key: part[0]} if flatten and len(part) == 1 else {key: part}
            ids.append(self._submit(pack_call(_push, (), ns), eid))
        ar = self.client._track(AsyncResult(self.client, ids, "scatter", single=False))
        if self.block if block is None else block:
            ar.get()
            return None
        return ar

    def gather(self, key: str, dist: str = "b", targets: Any = None, block: bool | None = None) -> Any:
        """Pull `key` from each target engine and join the parts (the inverse of `scatter`)."""
        if dist not in DISTS:
            raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")
        eids, _ = self._engines(targets)
        payload = pack_call(_pull, (key,), {})
        ar = self.client._track(GatherResult(self.client, [self._submit(payload, eid) for eid in eids], dist))
        return self._maybe_block(ar, block)

    def clear(self, targets: Any = None, block: bool | None = None) -> Any:
        """Empty the namespaces of the target engines."""
        return self._maybe_block(self._apply(_clear, (), {}, targets, "clear"), block)

    # ---------------------------------------------------------------------------------- map
    def map(self, f: Callable, /, *sequences: Any, block: bool | None = None, track: bool = False,
            return_exceptions: bool = False) -> Any:
        """Parallel `map(f, *sequences)` with one task per engine: a static block partition (engine i gets
        the i-th contiguous part; engines with an empty part get none). A list when blocking, in order."""
        if not sequences:
            raise TypeError("map() needs at least one sequence")
        seqs = [s if hasattr(s, "__len__") and hasattr(s, "__getitem__") else list(s) for s in sequences]
        n = min(len(s) for s in seqs)
        eids, _ = self._engines()
        ids, sizes = [], []
        for index, eid in enumerate(eids):
            chunks = [partition(s, index, len(eids), n=n) for s in seqs]
            if len(chunks[0]) == 0:
                continue
            ids.append(self._submit(pack_call(map_chunk, (f, *chunks), {}), eid))
            sizes.append(len(chunks[0]))
        ar = self.client._track(AsyncMapResult(self.client, ids, getattr(f, "__name__", "unknown"),
                                                chunk_sizes=sizes, return_exceptions=return_exceptions))
        return self._maybe_block(ar, block)

    def map_async(self, f: Callable, /, *sequences: Any, **kwargs: Any) -> AsyncMapResult:
        """`map(..., block=False)`."""
        if "block" in kwargs:
            raise TypeError("map_async doesn't take a `block` keyword argument.")
        return self.map(f, *sequences, block=False, **kwargs)

    def map_sync(self, f: Callable, /, *sequences: Any, **kwargs: Any) -> list:
        """`map(..., block=True)`."""
        if "block" in kwargs:
            raise TypeError("map_sync doesn't take a `block` keyword argument.")
        return self.map(f, *sequences, block=True, **kwargs)

    def imap(self, f: Callable, /, *sequences: Any, **kwargs: Any) -> Iterator:
        """The values of `map_async` as they arrive, in order."""
        return iter(self.map_async(f, *sequences, **kwargs))

    @contextmanager
    def sync_imports(self, local: bool = True, quiet: bool = False) -> Iterator[None]:
        """Imports made in the `with` block run here and on every target engine (`as` names are ignored:
        the engines bind the module's own name, as in ipyparallel). Raises the engines' ImportErrors at the end."""
        if not local:
            raise NotImplementedError("remote-only imports not yet implemented")
        import builtins
        import threading
        real_import = builtins.__import__
        me, busy, seen, pending = threading.get_ident(), [False], set(), []

        def view_import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
            if busy[0] or threading.get_ident() != me:       # nested imports, other threads: untouched
                return real_import(name, globals, locals, fromlist, level)
            busy[0] = True
            try:
                module = real_import(name, globals, locals, fromlist, level)
                key = f"{name}:{','.join(fromlist or ())}"
                if level <= 0 and key not in seen:
                    seen.add(key)
                    if not quiet:
                        print(f"importing {','.join(fromlist)} from {name} on engine(s)" if fromlist
                              else f"importing {name} on engine(s)")
                    pending.append(self.apply_async(_import, name, tuple(fromlist or ())))
            finally:
                busy[0] = False
            return module

        builtins.__import__ = view_import
        try:
            yield
        finally:
            builtins.__import__ = real_import
        for ar in pending:
            ar.get()

    @property
    def importer(self) -> Any:
        """`sync_imports(local=True)`: `with dview.importer: import numpy`."""
        return self.sync_imports(True)

    # ---------------------------------------------------------------------------- decorators
    def remote(self, block: bool | None = None, **flags: Any) -> Callable[[Callable], Any]:
        """Decorator: calling the function runs it on every target engine (`apply`, with these flags)."""
        from .view import RemoteFunction
        self._check_flag_names(flags)
        return lambda f: RemoteFunction(self, f, block, flags)       # type: ignore[arg-type]

    def parallel(self, dist: str = "b", block: bool | None = None, **flags: Any) -> Callable[[Callable], Any]:
        """Decorator: `f.map(*seqs)` is this view's static `map`; `f(*seqs)` gives engine i the i-th part of
        each sequence as arguments and joins the engines' returned parts."""
        if dist not in DISTS:
            raise ValueError(f"dist must be one of {DISTS}, got {dist!r}")
        self._check_flag_names(flags)
        return lambda f: DirectParallelFunction(self, f, dist, block, flags)

    @staticmethod
    def _check_flag_names(flags: dict[str, Any]) -> None:
        for name in flags:
            if name not in FLAG_NAMES:
                raise KeyError(f"Invalid name: {name!r}")

    # ------------------------------------------------------------------------------ helpers
    @property
    def outstanding(self) -> set[str]:
        """Ids of this view's tasks not finished yet."""
        return set(self.history) & self.client.outstanding

    @property
    def results(self) -> dict[str, Any]:
        """The client's finished results (exceptions for failures)."""
        return self.client.results

    def spin(self) -> None:
        """Nothing to do: results arrive on the client's reader thread by themselves."""

    def wait(self, jobs: Any = None, timeout: float | None = -1) -> bool:
        """Wait for tasks (default: everything submitted through this view)."""
        return self.client.wait(self.history if jobs is None else jobs, timeout)

    def abort(self, jobs: Any = None, targets: Any = None, block: bool | None = None) -> int:
        """Abort tasks (default: this view's outstanding ones): queued ones fail at once, running ones are
        stopped by their engine (which empties its namespace: the worker is replaced)."""
        ids = [t for t in self.history if t in self.client.outstanding] if jobs is None else jobs
        return self.client.abort(ids)

    def queue_status(self, targets: Any = None, verbose: bool = False) -> dict[Any, Any]:
        """The controller's queue status for this view's engines (one engine's dict for an int target)."""
        t = self.targets if targets is None else targets
        return self.client.queue_status(None if t == "all" else t, verbose)

    def get_result(self, indices_or_msg_ids: Any = -1, block: bool | None = None, owner: bool = False) -> Any:
        """`client.get_result`; ints index this view's history."""
        if isinstance(indices_or_msg_ids, int):
            indices_or_msg_ids = self.history[indices_or_msg_ids]
        return self.client.get_result(indices_or_msg_ids, block=block, owner=owner)

    def shutdown(self, targets: Any = None, restart: bool = False, hub: bool = False,
                 block: bool | None = None) -> None:
        """Stop this view's engines (and the controller with `hub=True`)."""
        if restart:
            raise NotImplementedError("Engine restart is not yet implemented")
        t = self.targets if targets in (None, "all") else targets
        self.client.shutdown("all" if t == "all" else t, hub=hub, block=self.block if block is None else block)

    def __len__(self) -> int:
        if isinstance(self.targets, list):
            return len(self.targets)
        return 1 if isinstance(self.targets, int) else len(self.client.ids)

    def __repr__(self) -> str:
        text = str(self.targets)
        return f"<DirectView {text[:12] + '...]' if len(text) > 16 else text}>"


class DirectParallelFunction:
    """What `DirectView.parallel` makes: `.map` maps element-wise; calling it runs `f` on each engine's part."""

    def __init__(self, view: DirectView, f: Callable, dist: str, block: bool | None, flags: dict[str, Any]):
        self.view, self.func, self.dist, self.block, self.flags = view, f, dist, block, flags
        self.__name__ = getattr(f, "__name__", "parallel")
        self.__doc__ = getattr(f, "__doc__", None)

    def map(self, *sequences: Any) -> Any:
        """Element-wise parallel map of the function (the view's static partition)."""
        with self.view.temp_flags(**self.flags):
            return self.view.map(self.func, *sequences, block=self.block)

    def __call__(self, *sequences: Any) -> Any:
        view = self.view
        with view.temp_flags(**self.flags):
            eids, _ = view._engines()
            n = min(len(s) for s in sequences) if sequences else 0
            ids = []
            for index, eid in enumerate(eids):
                parts = [partition(s, index, len(eids), self.dist, n) for s in sequences]
                if sequences and len(parts[0]) == 0:
                    continue
                ids.append(view._submit(pack_call(self.func, tuple(parts), {}), eid))
            block = view.block if self.block is None else self.block
        ar = view.client._track(GatherResult(view.client, ids, self.dist, self.__name__))
        return ar.get() if block else ar
