"""Where a sweep's points run: `local` processes, a Dask cluster, or Ray (`--executor`).

Spec strings: `local` (the default), `dask:ADDRESS` (an existing Dask scheduler, e.g.
`dask:tcp://10.0.0.5:8786`), `ray` (a Ray instance started for the sweep, or the one `RAY_ADDRESS`
names) and `ray:ADDRESS` (an existing Ray cluster: `auto`, `HOST:6379` or `ray://HOST:10001`).
Dask and Ray are optional extras (`pip install 'sched-lab[dask]'`, `'sched-lab[ray]'`); without
them the spec fails with `ExecutorUnavailable` naming the extra to install. Workers need
sched-lab installed. A point function defined outside sched-lab (an experiment script's) is
shipped by value, so workers need not import the script. Results come back in point order, and
a point's exception is re-raised here.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

KINDS = ("local", "dask", "ray")
EXECUTOR_HELP = ("local | dask:ADDRESS | ray[:ADDRESS]: run the points in local processes (default), on an "
                 "existing Dask scheduler (e.g. dask:tcp://10.0.0.5:8786) or on Ray (a local instance, or "
                 "ray:ADDRESS); rows are identical whichever runs them")


DASK_CONNECT_TIMEOUT_S = 20.0     # how long to keep trying to reach a Dask scheduler


class ExecutorUnavailable(RuntimeError):
    """Raised when an executor's extra is not installed or its cluster cannot be reached."""


@dataclass(frozen=True, slots=True)
class ExecutorSpec:
    """A parsed `--executor`: `kind` in KINDS and the address (None for local, optional for ray)."""

    kind: str
    address: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown executor {self.kind!r}; allowed: local, dask:ADDRESS, ray[:ADDRESS]")
        if self.kind == "local" and self.address is not None:
            raise ValueError("the local executor takes no address")
        if self.kind == "dask" and not self.address:
            raise ValueError("the dask executor needs the scheduler's address, e.g. dask:tcp://10.0.0.5:8786")

    @classmethod
    def parse(cls, text: str | None) -> ExecutorSpec:
        """`local`, `dask:ADDRESS`, `ray` or `ray:ADDRESS` (None or "" = local); ValueError otherwise."""
        if not text or text.strip() == "local":
            return cls("local")
        kind, sep, address = text.strip().partition(":")
        return cls(kind, address.strip() or None if sep else None)

    def __str__(self) -> str:
        return self.kind if self.address is None else f"{self.kind}:{self.address}"


def map_remote(fn: Callable[[Any], Any], points: Sequence[Any], spec: ExecutorSpec,
               on_done: Callable[[int], None] | None = None) -> list[Any]:
    """`fn` over `points` on a Dask or Ray executor, results in point order (see the module doc)."""
    if spec.kind == "dask":
        return _map_dask(fn, points, spec.address or "", on_done)
    if spec.kind == "ray":
        return _map_ray(fn, points, spec.address, on_done)
    raise ValueError(f"map_remote runs dask or ray points, not {spec.kind!r}")


def gather(results: Iterable[Any], on_done: Callable[[int], None] | None = None) -> list[Any]:
    """The results in order, calling `on_done(n)` after the n-th (every sweep runner's progress)."""
    rows: list[Any] = []
    for row in results:
        rows.append(row)
        if on_done:
            on_done(len(rows))
    return rows


def _missing(kind: str, package: str) -> ExecutorUnavailable:
    return ExecutorUnavailable(f"--executor {kind} needs {package}, which is not installed: "
                               f"pip install 'sched-lab[{kind}]'")


def portable(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`fn`, or — when its module is neither sched-lab's own (installed on every worker) nor
    `__main__` (which cloudpickle ships by value) — a picklable stand-in carrying `fn` pickled by
    value, so a worker that cannot import `fn`'s module (an experiment script) can still run it.
    (Dask pickles a task's function by reference whenever plain pickle succeeds, so registering the
    module with cloudpickle is not enough there.)"""
    import cloudpickle

    name = getattr(fn, "__module__", None) or "__main__"
    module = sys.modules.get(name)
    if name == "__main__" or name.split(".")[0] == "sched_lab" or module is None:
        return fn
    registered = name in cloudpickle.list_registry_pickle_by_value()
    if not registered:
        cloudpickle.register_pickle_by_value(module)
    try:
        blob = cloudpickle.dumps(fn)
    except (TypeError, AttributeError, pickle.PicklingError):
        return fn                    # a builtin or C function: by reference, as the worker can import it
    finally:
        if not registered:
            cloudpickle.unregister_pickle_by_value(module)
    return partial(call_pickled, blob)


def apply_to(fn: Callable[[Any], Any], point: Any) -> Any:
    """`fn(point)` (Ray's remote function: `fn` travels as an argument)."""
    return fn(point)


def call_pickled(blob: bytes, point: Any) -> Any:
    """Run the function pickled in `blob` on `point` (the worker side of `portable`)."""
    import cloudpickle

    return cloudpickle.loads(blob)(point)


def _map_dask(fn: Callable[[Any], Any], points: Sequence[Any], address: str,
              on_done: Callable[[int], None] | None) -> list[Any]:
    try:
        from distributed import Client
    except ImportError:
        raise _missing("dask", "Dask distributed") from None
    try:
        client = Client(address, timeout=f"{DASK_CONNECT_TIMEOUT_S}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ExecutorUnavailable(f"cannot reach the Dask scheduler at {address!r}: {exc}") from exc
    try:
        futures = client.map(portable(fn), list(points), pure=False)
        return gather((fut.result() for fut in futures), on_done)
    finally:
        client.close()


def _map_ray(fn: Callable[[Any], Any], points: Sequence[Any], address: str | None,
             on_done: Callable[[int], None] | None) -> list[Any]:
    try:
        import ray
    except ImportError:
        raise _missing("ray", "Ray") from None
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f" at {address!r}" if address else ""
            raise ExecutorUnavailable(f"cannot start or reach Ray{where}: {exc}") from exc
    try:
        remote = ray.remote(apply_to)
        shipped = portable(fn)
        refs = [remote.remote(shipped, p) for p in points]

        def results() -> Iterable[Any]:
            for ref in refs:
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayTaskError as exc:
                    raise exc.as_instanceof_cause() from None
        return gather(results(), on_done)
    finally:
        if started:
            ray.shutdown()
