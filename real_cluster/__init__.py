"""The live sched-lab cluster: controller, engines and an IPython-parallel-style client over asyncio sockets.

    import real_cluster as ipp          # code written for ipyparallel's task interface runs as is
    with ipp.Cluster(n=4, profile="demo") as rc:
        view = rc.load_balanced_view()
        view.map_sync(lambda x: x * x, range(10))

docs/porting.md lists every ipyparallel task-interface name and what differs here.

The names below are imported when first used (PEP 562): a worker, a nanny and the controller import this package
too (every submodule's parent is imported first), and none of them needs the client's modules.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_WHERE = {
    "ALL_COMPLETED": "concurrent.futures", "FIRST_COMPLETED": "concurrent.futures",
    "FIRST_EXCEPTION": "concurrent.futures",
    "AsyncHubResult": ".asyncmapresult", "AsyncMapResult": ".asyncmapresult", "AsyncResult": ".asyncresult",
    "Client": ".client", "Cluster": ".cluster",
    "CompositeError": ".error", "RemoteError": ".error", "TimeoutError": ".error",
    "Dependency": ".functional", "depend": ".functional", "dependent": ".functional", "interactive": ".functional",
    "require": ".functional",
    "Metadata": ".metadata",
    "LoadBalancedView": ".view", "ParallelFunction": ".view", "RemoteFunction": ".view",
}

__all__ = ["Client", "Cluster", "LoadBalancedView", "ParallelFunction", "RemoteFunction", "AsyncResult",
           "AsyncMapResult", "AsyncHubResult", "Metadata", "Dependency", "require", "depend", "dependent",
           "interactive", "RemoteError", "CompositeError", "TimeoutError", "error",
           "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"]


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        try:                                # a submodule not imported yet (`real_cluster.error`, ...)
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value                 # once: later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:                           # what a type checker and an editor see
    from concurrent.futures import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION

    from . import error
    from .asyncmapresult import AsyncHubResult, AsyncMapResult
    from .asyncresult import AsyncResult
    from .client import Client
    from .cluster import Cluster
    from .error import CompositeError, RemoteError, TimeoutError  # noqa: A004 - ipyparallel exports its TimeoutError
    from .functional import Dependency, depend, dependent, interactive, require
    from .metadata import Metadata
    from .view import LoadBalancedView, ParallelFunction, RemoteFunction
