"""The task functions of benchmarks/bench_live.py, in an importable module.

Every peer (sched-lab engines, the pools' workers, ipyparallel, Dask and Ray) imports this module
by name (the benchmark puts this folder on PYTHONPATH), so every peer pickles the functions by
reference and none pays for pickling code by value.
"""

from __future__ import annotations

import time


def noop() -> None:
    """Does nothing."""
    return None


def ident(x: object) -> object:
    """Returns its argument (the function of the map workloads)."""
    return x


def sleep_s(seconds: float) -> None:
    """Sleeps `seconds`."""
    time.sleep(seconds)


def map_chunk(f: object, chunk: list) -> list:
    """`[f(x) for x in chunk]`: one task of a chunked map for peers without a chunksize (Dask, Ray)."""
    return [f(x) for x in chunk]  # type: ignore[operator]
