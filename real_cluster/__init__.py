"""The live sched-lab cluster: controller, engines and an IPython-parallel-style client over asyncio sockets.

    from real_cluster import Cluster
    with Cluster(n=4, profile="demo") as rc:
        view = rc.load_balanced_view()
        view.map_sync(lambda x: x * x, range(10))
"""

from sched_lab.core.dependency import Dependency

from . import error
from .asyncresult import AsyncResult
from .client import Client
from .cluster import Cluster
from .error import CompositeError, RemoteError
from .functional import depend, dependent, require
from .view import LoadBalancedView, ParallelFunction, RemoteFunction

__all__ = ["Client", "Cluster", "LoadBalancedView", "ParallelFunction", "RemoteFunction", "AsyncResult",
           "Dependency", "require", "depend", "dependent", "RemoteError", "CompositeError", "error"]
