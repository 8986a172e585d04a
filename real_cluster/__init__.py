"""The live sched-lab cluster: controller, engines and an IPython-parallel-style client over asyncio sockets.

    import real_cluster as ipp          # code written for ipyparallel's task interface runs as is
    with ipp.Cluster(n=4, profile="demo") as rc:
        view = rc.load_balanced_view()
        view.map_sync(lambda x: x * x, range(10))

docs/porting.md lists every ipyparallel task-interface name and what differs here.
"""

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

__all__ = ["Client", "Cluster", "LoadBalancedView", "ParallelFunction", "RemoteFunction", "AsyncResult",
           "AsyncMapResult", "AsyncHubResult", "Metadata", "Dependency", "require", "depend", "dependent",
           "interactive", "RemoteError", "CompositeError", "TimeoutError", "error",
           "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"]
