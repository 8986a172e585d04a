"""The peers of benchmarks/bench_live.py and the two ways each gets its task functions.

Modes: `module` imports the task functions from sched_lab.apps.bench.tasks (every peer pickles them by
reference); `by-value` defines the same functions in `__main__`, as a notebook or a script does, so
cloudpickle-based peers (sched-lab, ipyparallel, Dask, Ray) ship them by value, and the fork-based
pools (ProcessPoolExecutor, multiprocessing.Pool) find them in their forked copy of `__main__`.
Peers: sched-lab (and, in by-value mode, sched-lab with its function cache off: the path before
issue 15), ProcessPoolExecutor(2), multiprocessing.Pool(2), ipyparallel (2 engines), Dask
(LocalCluster, 2 worker processes of 1 thread) and Ray (num_cpus=2) when installed. Each `start`
brings its workers up and `stop` always takes them down.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from types import SimpleNamespace
from typing import Any, Callable

# ipyparallel, Dask and Ray run about 100-2,000 tasks/s here: their burst, chunksize-1 map and 1 ms tasks use
# at most this many items (rates and efficiencies stay comparable; the table shows n)
SLOW_CAP = {"map_items_c1": 2000, "burst": 2000, "sleep_tasks": 2000}
MODES = ("module", "by-value")
PEER_NAMES = ("ppe", "mp", "ipyparallel", "dask", "ray")

BY_VALUE_SOURCE = '''
def noop():
    return None


def ident(x):
    return x


def sleep_s(seconds):
    import time             # inside: ipyparallel ships a __main__ function without its module's globals
    time.sleep(seconds)


def map_chunk(f, chunk):
    return [f(x) for x in chunk]
'''


def task_functions(mode: str) -> SimpleNamespace:
    """noop, ident, sleep_s and map_chunk: imported (`module`) or defined in `__main__` (`by-value`)."""
    if mode == "module":
        from . import tasks
        return SimpleNamespace(noop=tasks.noop, ident=tasks.ident, sleep_s=tasks.sleep_s, map_chunk=tasks.map_chunk)
    if mode != "by-value":
        raise ValueError(f"unknown mode {mode!r} (choose from {', '.join(MODES)})")
    main = sys.modules["__main__"].__dict__
    if "__bench_by_value__" not in main:        # define them once: the same objects for every peer and run
        exec(compile(BY_VALUE_SOURCE, "<__main__ task functions>", "exec"), main)
        main["__bench_by_value__"] = True
    return SimpleNamespace(noop=main["noop"], ident=main["ident"], sleep_s=main["sleep_s"], map_chunk=main["map_chunk"])


class Peer:
    """What each peer implements; futures need only what `wait_all` uses. `modes`: the modes it runs."""

    name = "?"
    caps: dict[str, int] = {}
    modes: tuple[str, ...] = MODES

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def apply_sync(self, f: Callable, *args: Any) -> Any: ...
    def apply_async(self, f: Callable, *args: Any) -> Any: ...
    def wait_all(self, futures: list[Any]) -> None: ...
    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list: ...


def _chunks(seq: Any, chunksize: int) -> list[Any]:
    seq = list(seq)
    return [seq[i:i + chunksize] for i in range(0, len(seq), chunksize)]


class ViewPeer(Peer):
    """A peer driven through an ipyparallel-style load-balanced view (ours and ipyparallel alike)."""

    view: Any = None

    def apply_sync(self, f: Callable, *args: Any) -> Any:
        return self.view.apply_sync(f, *args)

    def apply_async(self, f: Callable, *args: Any) -> Any:
        return self.view.apply_async(f, *args)

    def wait_all(self, futures: list[Any]) -> None:
        for fut in futures:
            fut.get()

    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list:
        return self.view.map_sync(f, seq, chunksize=chunksize)


class Ours(ViewPeer):
    name = "sched-lab"

    def __init__(self, db: str, hwm: int, fn_cache: bool = True, controller_args: tuple[str, ...] = (),
                 name: str | None = None):
        self.db, self.hwm, self.starts, self.fn_cache = db, hwm, 0, fn_cache
        self.controller_args = list(controller_args)
        if not fn_cache:
            self.name, self.modes = "sched-lab, no fn cache", ("by-value",)
        self.name = name or self.name

    def start(self) -> None:
        from real_cluster import Cluster
        from real_cluster.fncache import FunctionCache
        self.starts += 1            # a new profile each run: an empty task database
        tag = "".join(ch if ch.isalnum() else "-" for ch in self.name)
        self.cluster = Cluster(n=2, profile=f"bench-{tag}-{self.starts}", db=self.db, hwm=self.hwm,
                               controller_args=self.controller_args)
        client = self.cluster.start()
        if not self.fn_cache:
            client.functions = FunctionCache(max_bytes=0)      # every call pickled whole (before issue 15)
        self.view = client.load_balanced_view()

    def stop(self) -> None:
        self.cluster.stop()
        self.view = None


class Pool(Peer):
    name = "ProcessPoolExecutor"

    def start(self) -> None:
        self.pool = ProcessPoolExecutor(2)
        list(self.pool.map(abs, range(4)))          # workers up

    def stop(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None

    def apply_sync(self, f: Callable, *args: Any) -> Any:
        return self.pool.submit(f, *args).result()

    def apply_async(self, f: Callable, *args: Any) -> Any:
        return self.pool.submit(f, *args)

    def wait_all(self, futures: list[Any]) -> None:
        for fut in futures:
            fut.result()

    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list:
        return list(self.pool.map(f, seq, chunksize=chunksize))


class MPPool(Peer):
    name = "multiprocessing.Pool"

    def start(self) -> None:
        self.pool = multiprocessing.Pool(2)
        self.pool.map(abs, range(4))

    def stop(self) -> None:
        self.pool.terminate()
        self.pool.join()
        self.pool = None

    def apply_sync(self, f: Callable, *args: Any) -> Any:
        return self.pool.apply(f, args)

    def apply_async(self, f: Callable, *args: Any) -> Any:
        return self.pool.apply_async(f, args)

    def wait_all(self, futures: list[Any]) -> None:
        for fut in futures:
            fut.get()

    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list:
        return self.pool.map(f, seq, chunksize=chunksize)


class IPyParallel(ViewPeer):
    name = "ipyparallel"
    caps = SLOW_CAP

    def start(self) -> None:
        import ipyparallel as ipp
        os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="bench-ipython-"))
        self.cluster = ipp.Cluster(n=2, log_level=40)
        self.rc = None
        try:
            self.rc = self.cluster.start_and_connect_sync()
            self.rc.wait_for_engines(2, timeout=60)
            self.view = self.rc.load_balanced_view()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        try:
            if self.rc is not None:
                self.rc.close()
                self.rc = self.view = None
        finally:
            self.cluster.stop_cluster_sync()


class Dask(Peer):
    """distributed.LocalCluster: 2 worker processes of 1 thread each (its default nannies)."""

    name = "Dask"
    caps = SLOW_CAP

    def start(self) -> None:
        from distributed import Client, LocalCluster
        self.cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        try:
            self.client = Client(self.cluster)
            self.client.wait_for_workers(2, timeout=60)
        except BaseException:
            self.cluster.close()
            raise

    def stop(self) -> None:
        try:
            self.client.close()
        finally:
            self.cluster.close()

    def apply_sync(self, f: Callable, *args: Any) -> Any:
        return self.client.submit(f, *args, pure=False).result()

    def apply_async(self, f: Callable, *args: Any) -> Any:
        return self.client.submit(f, *args, pure=False)

    def wait_all(self, futures: list[Any]) -> None:
        self.client.gather(futures)

    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list:
        if chunksize == 1:
            return self.client.gather(self.client.map(f, list(seq), pure=False))
        parts = self.client.gather([self.client.submit(fns.map_chunk, f, c, pure=False)
                                    for c in _chunks(seq, chunksize)])
        return [x for part in parts for x in part]


class Ray(Peer):
    """A local Ray (num_cpus=2); each function is made remote once, as a Ray user decorates it once."""

    name = "Ray"
    caps = SLOW_CAP

    def start(self) -> None:
        import ray
        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=False)
        self._remote: dict[int, tuple[Callable, Any]] = {}

    def stop(self) -> None:
        self.ray.shutdown()

    def _r(self, f: Callable) -> Any:
        found = self._remote.get(id(f))
        if found is None or found[0] is not f:
            found = self._remote[id(f)] = (f, self.ray.remote(f))
        return found[1]

    def apply_sync(self, f: Callable, *args: Any) -> Any:
        return self.ray.get(self._r(f).remote(*args))

    def apply_async(self, f: Callable, *args: Any) -> Any:
        return self._r(f).remote(*args)

    def wait_all(self, futures: list[Any]) -> None:
        self.ray.get(futures)

    def map(self, f: Callable, seq: Any, chunksize: int, fns: SimpleNamespace) -> list:
        if chunksize == 1:
            remote = self._r(f)
            return self.ray.get([remote.remote(x) for x in seq])
        chunk = self._r(fns.map_chunk)
        parts = self.ray.get([chunk.remote(f, c) for c in _chunks(seq, chunksize)])
        return [x for part in parts for x in part]


def make_peers(wanted: list[str], db: str, hwm: int, by_value: bool) -> list[Peer]:
    """Ours first, then the wanted peers that are installed (a missing one is named on stderr and skipped)."""
    peers: list[Peer] = [Ours(db, hwm)]
    if by_value:
        peers.append(Ours(db, hwm, fn_cache=False))
    optional = {"ipyparallel": ("ipyparallel", IPyParallel, "peers"), "dask": ("distributed", Dask, "dask"),
                "ray": ("ray", Ray, "ray")}
    for name in wanted:
        if name == "ppe":
            peers.append(Pool())
        elif name == "mp":
            peers.append(MPPool())
        elif name in optional:
            module, cls, extra = optional[name]
            try:
                __import__(module)
            except ImportError:
                print(f"[bench] {name}: not installed (pip install 'sched-lab[{extra}]'); skipping it",
                      file=sys.stderr)
                continue
            peers.append(cls())
    return peers
