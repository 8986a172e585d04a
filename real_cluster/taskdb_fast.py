"""The task database's hot-path helpers: timestamps rounded cheaply, sqlite3 binding without adapter
searches, and a Bloom filter of the task ids in use (taskdb.py uses all three on every task)."""

from __future__ import annotations

import math
import sqlite3

_modf = math.modf


def _us(ts: float | None) -> float | None:
    """A timestamp rounded to the microsecond, the resolution of the datetimes clients compare it with.

    Always equal to `round(ts, 6)`, which costs ~7k instructions (a correctly rounded decimal conversion;
    callgrind of the controller, bench_cpu_split.py). Between 2**30 and 2**33 (years 2004-2242) the cheaper sum
    below is exactly equal: there a double's spacing is 2**-22..2**-20 s, so the fraction times 1e6 is exact or
    at least 1/65536 away from a half (rint rounds it as round() does), and no microsecond lies within an
    error's reach of a midpoint between two doubles (k * 2**23 == odd * 10**6 has no solution).
    """
    if ts is None:
        return None
    if 1073741824.0 <= ts < 8589934592.0:
        frac, whole = _modf(ts)
        return whole + round(frac * 1e6) / 1e6
    return round(ts, 6)


def install_fast_adapters() -> None:
    """Bind None and bytes parameters without sqlite3's adapter search (call once, in the controller process).

    sqlite3 binds only exact int, float, str and bytearray directly; for every other parameter (None, bytes) it
    searches for an adapter and in doing so formats and discards an AttributeError: ~6k instructions each, a
    third of the controller's CPU per task (callgrind, bench_cpu_split.py). Identity adapters for the two turn
    that into one dict hit and a C call; what is stored does not change (None stays NULL, bytes a BLOB).
    Adapters are per process, so this is left to the process that owns the database (controller_app); an
    adapter someone else registered for these types is kept.
    """
    for kind, identity in ((type(None), {}.get), (bytes, bytes)):     # {}.get(None) is None; bytes(b) is b
        if (kind, sqlite3.PrepareProtocol) not in sqlite3.adapters:
            sqlite3.register_adapter(kind, identity)


class IdFilter:
    """A Bloom filter of task ids (1 MiB): "surely new" costs no database read (bench_live.py, burst).

    A "maybe" is settled by the database; the false-positive rate grows with the ids held (about 0.01 %
    at 100,000, 3 % at a million), never the answer's correctness. Hashes are this process's own.
    """

    BITS = 1 << 23                      # (add and __contains__ mask with BITS - 1 written out, 0x7FFFFF: a constant)

    def __init__(self) -> None:
        self._bits = bytearray(self.BITS >> 3)

    # Three bits per key, from bits 0-22, 21-43 and 42-64 of its hash (unrolled: a loop cost half of these).
    def add(self, key: str) -> None:
        h, bits = hash(key), self._bits
        b = h & 0x7FFFFF
        bits[b >> 3] |= 1 << (b & 7)
        b = (h >> 21) & 0x7FFFFF
        bits[b >> 3] |= 1 << (b & 7)
        b = (h >> 42) & 0x7FFFFF
        bits[b >> 3] |= 1 << (b & 7)

    def __contains__(self, key: str) -> bool:
        h, bits = hash(key), self._bits
        b = h & 0x7FFFFF
        if not bits[b >> 3] & (1 << (b & 7)):
            return False
        b = (h >> 21) & 0x7FFFFF
        if not bits[b >> 3] & (1 << (b & 7)):
            return False
        b = (h >> 42) & 0x7FFFFF
        return bool(bits[b >> 3] & (1 << (b & 7)))
