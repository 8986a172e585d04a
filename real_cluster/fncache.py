"""Ship a task's function once per engine: a client cache by function object, an engine cache by digest.

How this works. A call whose function is a plain Python function travels as a *framed payload*:

    MAGIC (4) | mode (1: A apply, M map) | digest (16: blake2b of the function bytes) | n (u32)
    | n bytes: the cloudpickled function (n = 0: "the engine has it") | the pickled (args, kwargs)

Every other callable, and a function cloudpickle pickles by reference (importable from a module: a
few bytes naming it), travels as before (one cloudpickle of (f, args, kwargs); its first byte is
pickle's 0x80, never MAGIC's 0x00). Client side, `FunctionCache` pickles a function once and reuses
the bytes while a *snapshot* of everything cloudpickle would capture is unchanged: the code object,
defaults and keyword defaults, closure cell contents, the globals the code names (recursively for
functions it reaches), the function's `__dict__`. Values are compared by identity, so a rebinding
anywhere (a redefined helper in `__main__`, a new closure value, a new default) re-pickles. Values
that can change in place without a rebinding (lists, dicts, instances, classes pickled by value)
make a function *uncacheable*: it is pickled afresh every call, always correct.
The client sends a function's bytes to the controller once per connection (the first call that uses it;
later calls name it by digest: `Client.submit_task`, under one lock with the write, so no call naming a
digest overtakes the one carrying its bytes). The controller's `FunctionRouter` checks the bytes, keeps them
once (in memory, LRU, and in the task database's `functions` table, written with the task: a recovery or a
resubmit finds them there) and keeps each task by digest alone; it adds the bytes back when dispatching to an
engine that lacks them and leaves them out for one it already sent them to, mirroring the engine's LRU. The
engine's worker keeps the unpickled functions by digest (`EngineFunctionCache`). A worker that lacks a digest
(it was restarted, or evicted it) answers TaskDone status `fn_unknown`; the controller then resends that
attempt with the bytes, so a cache miss costs one round trip and never fails a task. The caches are LRU,
bounded in function bytes. Speed: benchmarks/bench_live.py --by-value; a 4.5 KB function costs no more per
task than a 0.5 KB one (docs/performance-history.md, "Functions to the controller once").
"""

from __future__ import annotations

import hashlib
import logging
import operator
import pickle
import struct
import sys
import threading
from collections import OrderedDict
from types import BuiltinFunctionType, CodeType, FunctionType, MethodType, ModuleType
from typing import Any, Callable

import cloudpickle

log = logging.getLogger("real_cluster.fncache")

# modules registered to be pickled by value (an unknown cloudpickle: a non-empty stand-in, so _by_reference never trusts its cache)
_PICKLE_BY_VALUE_MODULES: Any = getattr(cloudpickle.cloudpickle, "_PICKLE_BY_VALUE_MODULES", (None,))

PICKLE_PROTOCOL = 5
MAGIC = b"\x00SLF"
MODE_APPLY, MODE_MAP = b"A", b"M"
HEADER = struct.Struct("!4sc16sI")          # magic, mode, digest, length of the function bytes
DIGEST_BYTES = 16
CLIENT_CACHE_BYTES = 64 << 20               # function bytes a client keeps pickled
CLIENT_CACHE_ENTRIES = 1024                 # functions a client keeps (a fresh lambda per call must not pile up)
ENGINE_CACHE_BYTES = 64 << 20               # function bytes (pickled size) a worker keeps unpickled
SNAPSHOT_MAX_ITEMS = 4096                   # a function reaching more values than this is not cached
FN_UNKNOWN = "fn_unknown"                   # TaskDone status: the worker lacks the payload's function

_MISSING = object()                         # a global name the function's module does not define
_EMPTY_CELL = object()
_ATOMS = frozenset({type(None), bool, int, float, complex, str, bytes, range, type(Ellipsis),
                    type(NotImplemented), BuiltinFunctionType, ModuleType, CodeType})
_SIMPLE_ARGS = frozenset({type(None), bool, int, float, str, bytes})


class FunctionNotCached(LookupError):
    """A framed payload names a function (by digest) this process has not been sent."""


def digest_of(fn_bytes: bytes) -> bytes:
    """The 16-byte blake2b digest that names a function's pickled bytes."""
    return hashlib.blake2b(fn_bytes, digest_size=DIGEST_BYTES).digest()


# ------------------------------------------------------------------------------------ framing

def frame(mode: bytes, digest: bytes, fn_bytes: bytes, call_bytes: bytes) -> bytes:
    """A framed payload (`fn_bytes` b"" for the digest alone)."""
    return b"".join((HEADER.pack(MAGIC, mode, digest, len(fn_bytes)), fn_bytes, call_bytes))


def parse(payload: bytes) -> tuple[bytes, bytes, int] | None:
    """(mode, digest, length of the function bytes) of a framed payload; None for a plain one.

    Raises ValueError naming what is wrong with a malformed frame."""
    if payload[:4] != MAGIC:
        return None
    if len(payload) < HEADER.size:
        raise ValueError(f"payload: a framed call needs a {HEADER.size}-byte header, got {len(payload)} bytes")
    _, mode, digest, n = HEADER.unpack_from(payload)
    if mode not in (MODE_APPLY, MODE_MAP):
        raise ValueError(f"payload: unknown call mode {mode!r}")
    if HEADER.size + n > len(payload):
        raise ValueError(f"payload: function length {n} runs past the end ({len(payload)} bytes)")
    return mode, digest, n


def check_submitted(payload: bytes) -> None:
    """What the controller requires of a submitted payload: plain, or framed with function bytes
    matching their digest (so an engine cache keyed by digest is never poisoned). Raises ValueError."""
    head = parse(payload)
    if head is None:
        return
    _, digest, n = head
    if n == 0:
        raise ValueError("payload: a submitted call must carry its function bytes (length 0)")
    if digest_of(payload[HEADER.size:HEADER.size + n]) != digest:
        raise ValueError("payload: the function bytes do not match their digest")


def strip_function(payload: bytes) -> bytes:
    """The same framed call naming its function by digest alone."""
    _, mode, digest, n = HEADER.unpack_from(payload)
    if not n:
        return payload
    return b"".join((HEADER.pack(MAGIC, mode, digest, 0), payload[HEADER.size + n:]))


def whole_payload(payload: Any, function_bytes: Callable[[bytes], bytes | None]) -> Any:
    """`payload` with its function bytes: a framed call naming its function by digest alone gets them from
    `function_bytes(digest)` (left as it is if that has none); anything else is returned as it is."""
    if type(payload) is not bytes or payload[:4] != MAGIC or len(payload) < HEADER.size:
        return payload
    _, mode, digest, n = HEADER.unpack_from(payload)
    fn_bytes = None if n else function_bytes(digest)
    return payload if fn_bytes is None else frame(mode, digest, fn_bytes, payload[HEADER.size:])


def _pack_args(args: tuple, kwargs: dict) -> bytes:
    if not kwargs and all(type(a) in _SIMPLE_ARGS for a in args):
        return pickle.dumps((args, kwargs), protocol=PICKLE_PROTOCOL)
    return cloudpickle.dumps((args, kwargs), protocol=PICKLE_PROTOCOL)


# ---------------------------------------------------------------------------- client: snapshots

_BY_REFERENCE: dict[Any, ModuleType] = {}     # function or class -> the module it was found in by name


def _by_reference(obj: Any) -> bool:
    """Whether cloudpickle pickles `obj` (a function or class) by its importable name.

    A positive answer is remembered (cloudpickle's own check was a third of a by-reference task's client
    CPU, bench_cpu_split.py) and trusted while the module is still imported under that name, the name
    still resolves to `obj` and neither the module nor a package of it is registered to be pickled by value."""
    module_name = getattr(obj, "__module__", None)
    if module_name == "__main__":     # the common case, decided as cloudpickle does
        return False
    try:
        module = _BY_REFERENCE.get(obj)
    except TypeError:                 # an unhashable class (its metaclass says so): ask cloudpickle each time
        module = None
    if module is not None and sys.modules.get(module_name) is module and _resolve(module, obj.__qualname__) is obj \
            and not (_PICKLE_BY_VALUE_MODULES and _registered_by_value(module_name)):
        return True
    try:
        by_ref = bool(cloudpickle.cloudpickle._should_pickle_by_reference(obj))
    except (AttributeError, TypeError, ImportError):     # another cloudpickle: treat it as by value
        return False
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    if by_ref and module is not None and _resolve(module, obj.__qualname__) is obj:
        if len(_BY_REFERENCE) > 4096:
            _BY_REFERENCE.clear()
        try:
            _BY_REFERENCE[obj] = module
        except TypeError:
            pass
    return by_ref


def _registered_by_value(module_name: str) -> bool:
    """Whether `cloudpickle.register_pickle_by_value` named this module or a package holding it."""
    parts = module_name.split(".")
    return any(".".join(parts[:i]) in _PICKLE_BY_VALUE_MODULES for i in range(1, len(parts) + 1))


def _resolve(module: ModuleType, qualname: Any) -> Any:
    """`module.<qualname>` (dotted names followed), or None."""
    if type(qualname) is not str:
        return None
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj


_NAMES: dict[CodeType, tuple[str, ...]] = {}


def _global_names(code: CodeType) -> tuple[str, ...]:
    """Names the code (and the code nested in it) may look up as globals: a superset of what
    cloudpickle captures."""
    names = _NAMES.get(code)
    if names is None:
        seen: dict[str, None] = {}
        todo = [code]
        while todo:
            c = todo.pop()
            seen.update(dict.fromkeys(c.co_names))
            todo.extend(k for k in c.co_consts if type(k) is CodeType)
        names = tuple(seen)
        if len(_NAMES) > 4096:
            _NAMES.clear()
        _NAMES[code] = names
    return names


def _add(value: Any, out: list, seen: set[int]) -> bool:
    """Append what identifies `value` as cloudpickle would capture it; False if it may change in place."""
    if len(out) > SNAPSHOT_MAX_ITEMS:
        return False
    t = type(value)
    out.append(value)
    if t in _ATOMS:
        return True
    if t is FunctionType:
        return _add_function(value, out, seen)
    if t is tuple or t is frozenset:
        return all(_add(v, out, seen) for v in value)
    if t is MethodType:
        return _add(value.__func__, out, seen) and _add(value.__self__, out, seen)
    if isinstance(value, type):
        return _by_reference(value)     # a class pickled by value has a mutable __dict__
    return False


def _add_function(f: FunctionType, out: list, seen: set[int]) -> bool:
    if id(f) in seen:                   # recursion: already being captured
        return True
    seen.add(id(f))
    if _by_reference(f):
        return True
    code = f.__code__
    out += (code, f.__defaults__, f.__name__, f.__qualname__, f.__module__)
    if f.__defaults__ is not None and not _add(f.__defaults__, out, seen):
        return False
    for mapping in (f.__kwdefaults__, f.__dict__):
        if mapping:
            for k, v in mapping.items():
                out.append(k)
                if not _add(v, out, seen):
                    return False
        else:
            out.append(None)
    for cell in f.__closure__ or ():
        try:
            value = cell.cell_contents
        except ValueError:
            out.append(_EMPTY_CELL)
            continue
        if not _add(value, out, seen):
            return False
    g = f.__globals__
    for name in _global_names(code):
        value = g.get(name, _MISSING)
        if value is _MISSING:
            out.append(_MISSING)
        elif not _add(value, out, seen):
            return False
    return True


def snapshot(f: Callable) -> tuple | None:
    """What cloudpickle would capture of `f`, as a tuple of objects compared by identity; None when
    `f` is not a plain function or captures a value that can change without a rebinding."""
    if type(f) is not FunctionType:
        return None
    out: list = [f]
    return tuple(out) if _add_function(f, out, set()) else None


def _same(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(map(operator.is_, a, b))


class FunctionCache:
    """A client's pickled functions, by function object, re-pickled whenever their snapshot changes.

    `pack_call` / `pack_map` return the payload of one task. Thread-safe. `stats()` counts hits,
    misses (pickled afresh) and uncacheable calls. `max_bytes=0` turns caching and framing off: every
    call is one plain cloudpickle, as before issue 15 (benchmarks/bench_live.py --by-value measures both)."""

    def __init__(self, max_bytes: int = CLIENT_CACHE_BYTES, max_entries: int = CLIENT_CACHE_ENTRIES):
        if max_bytes < 0 or max_entries < 1:
            raise ValueError(f"max_bytes must be >= 0 and max_entries >= 1, got {max_bytes!r}, {max_entries!r}")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[Any, tuple[tuple, bytes, bytes]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.uncacheable = self.by_reference = 0

    def forked(self) -> None:
        """In a process forked from the client's: a lock of its own (another thread may have held this one at the
        fork; the entries stay, nothing is sent from there)."""
        self._lock = threading.Lock()

    def function_bytes(self, f: Callable) -> tuple[bytes, bytes] | None:
        """(digest, cloudpickled bytes) of `f`, from the cache while valid; None if `f` is uncacheable or
        pickled by reference (its name is all that travels: nothing to save)."""
        if type(f) is FunctionType and _by_reference(f):
            self.by_reference += 1
            return None
        snap = snapshot(f) if self.max_bytes else None
        if snap is None:
            self.uncacheable += 1
            return None
        with self._lock:
            entry = self._entries.get(f)
            if entry is not None and _same(entry[0], snap):
                self._entries.move_to_end(f)
                self.hits += 1
                return entry[1], entry[2]
        fn_bytes = cloudpickle.dumps(f, protocol=PICKLE_PROTOCOL)
        digest = digest_of(fn_bytes)
        with self._lock:
            self.misses += 1
            old = self._entries.pop(f, None)
            if old is not None:
                self._bytes -= len(old[2])
            if len(fn_bytes) <= self.max_bytes:
                self._entries[f] = (snap, digest, fn_bytes)
                self._bytes += len(fn_bytes)
                while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                    _, (_, _, dropped) = self._entries.popitem(last=False)
                    self._bytes -= len(dropped)
        return digest, fn_bytes

    def pack_call(self, f: Callable, args: tuple, kwargs: dict) -> bytes:
        """The payload running `f(*args, **kwargs)`."""
        if type(f) is FunctionType and _by_reference(f):
            self.by_reference += 1
            if not kwargs and all(type(a) in _SIMPLE_ARGS for a in args):     # pickle names f as cloudpickle
                return pickle.dumps((f, args, kwargs), protocol=PICKLE_PROTOCOL)   # would, in a tenth the time
            return cloudpickle.dumps((f, args, kwargs), protocol=PICKLE_PROTOCOL)
        found = self.function_bytes(f)
        if found is None:
            return cloudpickle.dumps((f, args, kwargs), protocol=PICKLE_PROTOCOL)
        return frame(MODE_APPLY, found[0], found[1], _pack_args(args, kwargs))

    def pack_map(self, f: Callable, chunks: list) -> bytes:
        """The payload running `list(map(f, *chunks))` (one task of a parallel map)."""
        found = self.function_bytes(f)
        if found is None:
            from .serialize import map_chunk
            return cloudpickle.dumps((map_chunk, (f, *chunks), {}), protocol=PICKLE_PROTOCOL)
        return frame(MODE_MAP, found[0], found[1], _pack_args(tuple(chunks), {}))

    def stats(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "uncacheable": self.uncacheable,
                "by_reference": self.by_reference,
                "entries": len(self._entries), "bytes": self._bytes}


# -------------------------------------------------------------------------------- engine side

class EngineFunctionCache:
    """A worker's unpickled functions by digest (LRU, bounded in pickled bytes). Engines only: it
    unpickles code."""

    def __init__(self, max_bytes: int = ENGINE_CACHE_BYTES):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[bytes, tuple[Callable, int]] = OrderedDict()
        self._bytes = 0
        self.loaded = self.reused = 0

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._entries

    def lacks(self, payload: bytes) -> bool:
        """True for a framed payload naming, by digest alone, a function this cache does not hold."""
        head = parse(payload)
        return head is not None and head[2] == 0 and head[1] not in self._entries

    def unpack(self, payload: bytes) -> tuple[Callable, tuple, dict]:
        """(function, args, kwargs) of a payload, plain or framed (a map chunk runs `map_chunk`).

        Raises FunctionNotCached for a digest it lacks, ValueError for bytes not matching their digest."""
        head = parse(payload)
        if head is None:
            f, args, kwargs = pickle.loads(payload)
            return f, args, kwargs
        mode, digest, n = head
        entry = self._entries.get(digest)
        if entry is not None:
            self._entries.move_to_end(digest)
            self.reused += 1
            f = entry[0]
        elif n:
            fn_bytes = payload[HEADER.size:HEADER.size + n]
            if digest_of(fn_bytes) != digest:
                raise ValueError("payload: the function bytes do not match their digest")
            f = pickle.loads(fn_bytes)
            self._store(digest, f, n)
        else:
            raise FunctionNotCached(f"function {digest.hex()} is not in this worker's cache")
        args, kwargs = pickle.loads(payload[HEADER.size + n:])
        if mode == MODE_MAP:
            from .serialize import map_chunk
            return map_chunk, (f, *args), {}
        return f, args, kwargs

    def _store(self, digest: bytes, f: Callable, nbytes: int) -> None:
        self.loaded += 1
        if nbytes > self.max_bytes:         # used for this call only
            return
        self._entries[digest] = (f, nbytes)
        self._bytes += nbytes
        while self._bytes > self.max_bytes:
            _, (_, size) = self._entries.popitem(last=False)
            self._bytes -= size


WORKER_FUNCTIONS = EngineFunctionCache()        # this process's cache (a worker restart empties it)


# ---------------------------------------------------------------------------- controller side

class FunctionRouter:
    """The controller's functions: the bytes of each (by digest), and which each engine's worker holds (a mirror of
    its LRU).

    `accept` checks a submitted payload and returns what the task keeps (by digest alone: the bytes are kept once,
    here and through `store` in the task database's `functions` table); `payload_for` adds the bytes back for an
    engine that lacks them and strips them for one that has them; `forget` after the worker was replaced; `counts`
    for queue_status (shipped with bytes, by digest alone, misses resent). `lookup(digest)` finds bytes this
    router no longer keeps in memory (the task database: its queue, then its table)."""

    def __init__(self, engine_bytes: int = ENGINE_CACHE_BYTES, known_bytes: int = CLIENT_CACHE_BYTES,
                 store: Callable[[bytes, bytes], Any] | None = None,
                 lookup: Callable[[bytes], bytes | None] | None = None):
        self.engine_bytes = engine_bytes
        self.known_bytes = known_bytes
        self._store = store
        self._lookup = lookup
        self._known: OrderedDict[bytes, bytes] = OrderedDict()     # digest -> function bytes that match it (LRU)
        self._known_size = 0
        self._held: dict[int, OrderedDict[bytes, int]] = {}
        self._sizes: dict[int, int] = {}
        self._counts: dict[int, list[int]] = {}
        self._resent: set[tuple[int, str, int]] = set()     # (engine, task, attempt) resent with the bytes

    def accept(self, payload: bytes) -> bytes:
        """What a task submitted with `payload` keeps: a plain payload as it is, a framed one by digest alone.

        Function bytes are checked against their digest (comparing bytes, not hashing, for a digest known with
        those bytes) and kept; a call naming its function by digest alone must name one sent before (a client
        sends the bytes once per connection, ahead of the calls naming them). Raises ValueError."""
        if payload[:4] != MAGIC:
            return payload
        _, digest, n = parse(payload)  # type: ignore[misc]
        if n == 0:
            if self.function(digest) is None:
                raise ValueError(f"payload: function {digest.hex()} is unknown to the controller (a call may name "
                                 "its function by digest only after one that carried its bytes)")
            return payload
        fn_bytes = payload[HEADER.size:HEADER.size + n]
        known = self._known.get(digest)
        if known is None or known != fn_bytes:
            check_submitted(payload)
            self._remember(digest, fn_bytes)
            if self._store is not None:     # (INSERT OR IGNORE: once more after an eviction here is harmless)
                self._store(digest, fn_bytes)
        else:
            self._known.move_to_end(digest)
        return strip_function(payload)

    def _remember(self, digest: bytes, fn_bytes: bytes) -> None:
        if len(fn_bytes) > self.known_bytes:
            return
        old = self._known.pop(digest, None)
        if old is not None:
            self._known_size -= len(old)
        self._known[digest] = fn_bytes
        self._known_size += len(fn_bytes)
        while self._known_size > self.known_bytes:
            self._known_size -= len(self._known.popitem(last=False)[1])

    def function(self, digest: bytes) -> bytes | None:
        """The bytes of the function named `digest`, or None if it was never accepted."""
        fn_bytes = self._known.get(digest)
        if fn_bytes is not None:
            self._known.move_to_end(digest)
            return fn_bytes
        fn_bytes = self._lookup(digest) if self._lookup is not None else None
        if fn_bytes is not None:
            self._remember(digest, fn_bytes)
        return fn_bytes

    def _whole(self, payload: bytes) -> bytes:
        """A framed payload with its function bytes (they are added to one naming its function by digest alone)."""
        whole = whole_payload(payload, self.function)
        _, _, digest, n = HEADER.unpack_from(payload)
        if whole is payload and not n:      # (never: accepted digests are kept) its worker answers fn_unknown, then
            log.error("function %s of a task is in neither memory nor the task database", digest.hex())   # fails it
        return whole

    def payload_for(self, engine_id: int, payload: bytes, *, resend: bool = False) -> bytes:
        """What to send engine `engine_id` for this payload; `resend` after its worker missed."""
        if payload[:4] != MAGIC:
            return payload
        if resend:                          # (its worker holds nothing now: the bytes go, counted as shipped)
            self._counts.setdefault(engine_id, [0, 0, 0])[2] += 1
            self.forget(engine_id)
        if self._sent(engine_id, payload):
            return strip_function(payload)
        return self._whole(payload)

    def _sent(self, engine_id: int, payload: bytes) -> bool:
        """Count a framed call going to engine `engine_id`; True if its worker holds the function (else it will)."""
        _, _, digest, n = HEADER.unpack_from(payload)
        held = self._held.setdefault(engine_id, OrderedDict())
        counts = self._counts.setdefault(engine_id, [0, 0, 0])
        if digest in held:
            held.move_to_end(digest)
            counts[1] += 1
            return True
        counts[0] += 1
        if not n:
            n = len(self.function(digest) or b"")
        if n <= self.engine_bytes:
            held[digest] = n
            size = self._sizes.get(engine_id, 0) + n
            while size > self.engine_bytes:
                size -= held.popitem(last=False)[1]
            self._sizes[engine_id] = size
        return False

    def payload_for_any(self, engine_ids: list[int], payload: bytes) -> bytes:
        """What to stage for whichever of `engine_ids` takes it (pulling.py): by digest alone if each holds it."""
        if payload[:4] != MAGIC or not engine_ids:
            return payload
        digest = HEADER.unpack_from(payload)[2]
        if all(digest in self._held.get(e, ()) for e in engine_ids):
            return strip_function(payload)
        return self._whole(payload)

    def taken(self, engine_id: int, payload: bytes) -> None:
        """Engine `engine_id` took a staged call (its bytes came with it unless it held them): counted as sent."""
        if payload[:4] == MAGIC:
            self._sent(engine_id, payload)

    def first_miss(self, engine_id: int, task_id: str, attempt: int) -> bool:
        """True the first time this attempt misses on this engine; a second miss (after a resend that
        carried the function) is a broken engine, never a cache miss."""
        key = (engine_id, task_id, attempt)
        if key in self._resent:
            return False
        if len(self._resent) >= 100_000:        # stale entries (attempts that ended) only: start afresh
            self._resent.clear()
        self._resent.add(key)
        return True

    def forget(self, engine_id: int) -> None:
        """The engine's worker was replaced: it holds nothing."""
        held = self._held.get(engine_id)
        if held:
            held.clear()
        self._sizes[engine_id] = 0

    def drop(self, engine_id: int) -> None:
        """The engine is gone."""
        self._held.pop(engine_id, None)
        self._sizes.pop(engine_id, None)
        self._counts.pop(engine_id, None)

    def counts(self, engine_id: int) -> dict[str, int]:
        shipped, by_digest, missed = self._counts.get(engine_id, (0, 0, 0))
        return {"fn_shipped": shipped, "fn_by_digest": by_digest, "fn_missed": missed}
