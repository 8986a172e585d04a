"""Serialization of calls and results with cloudpickle (by value for lambdas and `__main__` code).

Plain functions travel framed, their pickled bytes cached on both ends: fncache.py.

Only clients and engines ever call these; the controller never unpickles a payload.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable

import cloudpickle

from .fncache import WORKER_FUNCTIONS

PICKLE_PROTOCOL = 5


def pack_call(f: Callable, args: tuple, kwargs: dict) -> bytes:
    """The payload of one task: the function, its positional and its keyword arguments."""
    return cloudpickle.dumps((f, args, kwargs), protocol=PICKLE_PROTOCOL)


def unpack_call(payload: bytes) -> tuple[Callable, tuple, dict]:
    """Inverse of `pack_call`, and of fncache's framed payloads (engines only: it runs code from the pickle).

    A framed payload's function comes from this process's cache (fncache.WORKER_FUNCTIONS)."""
    return WORKER_FUNCTIONS.unpack(payload)


def lacks_function(payload: bytes) -> bool:
    """True when `payload` names by digest alone a function this process was never sent (or evicted)."""
    return WORKER_FUNCTIONS.lacks(payload)


_SIMPLE = (type(None), bool, int, float, str, bytes)
_NONE = pickle.dumps(None, protocol=PICKLE_PROTOCOL)


def pack_result(value: Any) -> bytes:
    """A task's return value as bytes (plain pickle for simple values: bench_live.py, no-op burst)."""
    if value is None:
        return _NONE
    if type(value) in _SIMPLE:
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    if type(value) in (list, tuple) and all(type(v) in _SIMPLE for v in value):
        return pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    return cloudpickle.dumps(value, protocol=PICKLE_PROTOCOL)


def unpack_result(data: bytes) -> Any:
    """Inverse of `pack_result` (clients only)."""
    return pickle.loads(data)


def map_chunk(f: Callable, *chunks: Any) -> list:
    """What one task of a parallel map runs: `list(map(f, *chunks))`."""
    return list(map(f, *chunks))
