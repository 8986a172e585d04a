"""fncache.py without a cluster: when a client's cached function bytes are reused and when they are
re-pickled (a helper redefined in `__main__`, a closure over a changed value, a changed default or
keyword default, a rebound global, a replaced code object, in-place mutation), checked by unpickling
the bytes and calling the result; the framing checks the controller applies; the worker's cache
(misses, digests, LRU bound); the controller's mirror of it."""

from __future__ import annotations

import pickle

import pytest

from real_cluster.fncache import (
    HEADER, MODE_APPLY, FunctionCache, FunctionNotCached, FunctionRouter, EngineFunctionCache, check_submitted,
    digest_of, frame, parse, snapshot, strip_function, whole_payload,
)
from real_cluster.messages import TaskDone, from_wire, to_wire


def _main_namespace(source: str) -> dict:
    """A fresh `__main__`-like namespace holding the functions of `source` (as a notebook cell does)."""
    ns: dict = {"__name__": "__main__"}
    exec(compile(source, "<cell>", "exec"), ns)
    return ns


def _run(cache: FunctionCache, f, *args):
    """What an engine computes from the payload `cache` packs for f(*args) (a fresh worker cache)."""
    fn, a, kw = EngineFunctionCache().unpack(cache.pack_call(f, args, {}))
    return fn(*a, **kw)


def test_unchanged_function_is_pickled_once():
    ns = _main_namespace("def f(x):\n    return x + 1\n")
    cache = FunctionCache()
    payloads = [cache.pack_call(ns["f"], (i,), {}) for i in range(50)]
    assert cache.misses == 1 and cache.hits == 49
    assert len({parse(p)[1] for p in payloads}) == 1
    assert _run(cache, ns["f"], 41) == 42


def test_redefining_a_helper_in_main_invalidates_its_callers():
    ns = _main_namespace("def helper():\n    return 1\ndef f(x):\n    return helper() + x\n")
    cache = FunctionCache()
    assert _run(cache, ns["f"], 10) == 11
    exec(compile("def helper():\n    return 2\n", "<cell 2>", "exec"), ns)       # the user re-runs a cell
    assert _run(cache, ns["f"], 10) == 12
    assert cache.misses == 2


def test_redefining_the_function_itself_ships_the_new_one():
    ns = _main_namespace("def f():\n    return 'old'\n")
    cache = FunctionCache()
    assert _run(cache, ns["f"]) == "old"
    exec(compile("def f():\n    return 'new'\n", "<cell 2>", "exec"), ns)
    assert _run(cache, ns["f"]) == "new"


def test_closure_over_a_changed_value():
    def make():
        value = 1

        def f():
            return value

        def set_value(v):
            nonlocal value
            value = v
        return f, set_value

    f, set_value = make()
    cache = FunctionCache()
    assert _run(cache, f) == 1
    set_value(5)
    assert _run(cache, f) == 5
    set_value(5)                        # the same value again: still valid
    assert _run(cache, f) == 5 and cache.misses == 2


def test_changed_default_and_keyword_default():
    def f(a=1, *, b=10):
        return a + b

    cache = FunctionCache()
    assert _run(cache, f) == 11
    f.__defaults__ = (2,)
    assert _run(cache, f) == 12
    f.__kwdefaults__["b"] = 20         # changed in place: the dict is the same object
    assert _run(cache, f) == 22
    assert cache.misses == 3


def test_rebound_global_int_to_equal_float_is_noticed():
    ns = _main_namespace("N = 5\ndef f():\n    return N\n")
    cache = FunctionCache()
    assert _run(cache, ns["f"]) == 5
    ns["N"] = 5.0                       # equal, but a different value once pickled
    out = _run(cache, ns["f"])
    assert out == 5.0 and type(out) is float


def test_replaced_code_object():
    def f():
        return "a"

    def g():
        return "b"

    cache = FunctionCache()
    assert _run(cache, f) == "a"
    f.__code__ = g.__code__
    assert _run(cache, f) == "b"


def test_values_that_change_in_place_are_never_cached():
    ns = _main_namespace("DATA = [1]\ndef total():\n    return sum(DATA)\n")
    cache = FunctionCache()
    assert snapshot(ns["total"]) is None
    assert _run(cache, ns["total"]) == 1
    ns["DATA"].append(2)
    assert _run(cache, ns["total"]) == 3
    assert cache.uncacheable == 2 and cache.hits == 0


def test_function_attribute_and_nested_function_changes():
    ns = _main_namespace("def inner():\n    return 1\ndef outer():\n    return inner() + outer.extra\n")
    ns["outer"].extra = 10
    cache = FunctionCache()
    assert _run(cache, ns["outer"]) == 11
    ns["outer"].extra = 20
    assert _run(cache, ns["outer"]) == 21
    ns["inner"].__defaults__ = None
    ns["inner"].__code__ = (lambda: 5).__code__       # the helper changed without a rebinding
    assert _run(cache, ns["outer"]) == 25


def test_recursive_and_builtin_names():
    ns = _main_namespace("def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\ndef m(x):\n    return len(x)\n")
    cache = FunctionCache()
    assert _run(cache, ns["fact"], 5) == 120
    assert _run(cache, ns["m"], "abc") == 3
    ns["len"] = lambda x: -1            # a global now shadows the builtin
    assert _run(cache, ns["m"], "abc") == -1


def test_other_callables_and_importable_functions_travel_plain():
    import functools
    import textwrap
    cache = FunctionCache()
    payload = cache.pack_call(textwrap.dedent, ("  x",), {})        # by reference: a name, nothing to cache
    assert parse(payload) is None and cache.by_reference == 1
    assert pickle.loads(payload) == (textwrap.dedent, ("  x",), {})
    payload = cache.pack_call(functools.partial(pow, 2), (10,), {})
    assert parse(payload) is None
    fn, a, kw = EngineFunctionCache().unpack(payload)
    assert fn(*a, **kw) == 1024


def test_client_cache_is_bounded_in_bytes():
    fs = [_main_namespace(f"def f{i}():\n    return {i}\n")[f"f{i}"] for i in range(20)]
    one = len(FunctionCache().function_bytes(fs[0])[1])
    cache = FunctionCache(max_bytes=one * 5)
    for f in fs:
        cache.function_bytes(f)
    assert cache.stats()["entries"] <= 5 and cache.stats()["bytes"] <= one * 5
    cache.function_bytes(fs[-1])
    assert cache.hits == 1
    few = FunctionCache(max_entries=3)
    for i in range(10):
        few.pack_call(lambda i=i: i, (), {})           # a fresh lambda per call: nothing piles up
    assert few.stats()["entries"] == 3


def test_map_payload_runs_the_chunk():
    ns = _main_namespace("def sq(x):\n    return x * x\n")
    payload = FunctionCache().pack_map(ns["sq"], [[1, 2, 3]])
    fn, a, kw = EngineFunctionCache().unpack(payload)
    assert fn(*a, **kw) == [1, 4, 9]


# ------------------------------------------------------------------------------- framing

def _framed(f=None) -> bytes:
    ns = _main_namespace("def f(x):\n    return -x\n")
    return FunctionCache().pack_call(f or ns["f"], (3,), {})


def test_controller_refuses_malformed_frames():
    good = _framed()
    check_submitted(good)
    check_submitted(pickle.dumps((abs, (1,), {})))          # plain payloads pass untouched
    with pytest.raises(ValueError, match="must carry its function"):
        check_submitted(strip_function(good))
    forged = bytearray(good)
    _, _, n = parse(good)
    forged[HEADER.size] ^= 0xFF                            # a byte of the function
    with pytest.raises(ValueError, match="do not match their digest"):
        check_submitted(bytes(forged))
    with pytest.raises(ValueError, match="runs past the end"):
        check_submitted(good[:HEADER.size + n - 1])
    with pytest.raises(ValueError, match="header"):
        check_submitted(good[:10])
    with pytest.raises(ValueError, match="mode"):
        check_submitted(good[:4] + b"Z" + good[5:])


def test_worker_cache_misses_then_learns():
    good = _framed()
    bare = strip_function(good)
    cache = EngineFunctionCache()
    assert cache.lacks(bare) and not cache.lacks(good)
    with pytest.raises(FunctionNotCached):
        cache.unpack(bare)
    fn, a, kw = cache.unpack(good)
    assert fn(*a) == -3 and not cache.lacks(bare)
    fn, a, kw = cache.unpack(bare)
    assert fn(*a) == -3 and cache.loaded == 1 and cache.reused == 1


def test_worker_refuses_bytes_that_do_not_match_their_digest():
    _, digest, n = parse(_framed())
    other = FunctionCache().function_bytes(_main_namespace("def g(x):\n    return x\n")["g"])[1]
    lie = frame(MODE_APPLY, digest, other, pickle.dumps(((1,), {})))
    with pytest.raises(ValueError, match="digest"):
        EngineFunctionCache().unpack(lie)


def test_worker_cache_is_lru_bounded_in_bytes():
    payloads = [FunctionCache().pack_call(_main_namespace(f"def f{i}():\n    return {i}\n")[f"f{i}"], (), {})
                for i in range(10)]
    size = parse(payloads[0])[2]
    cache = EngineFunctionCache(max_bytes=size * 3 + 2)
    for p in payloads:
        cache.unpack(p)
    held = [not cache.lacks(strip_function(p)) for p in payloads]
    assert held == [False] * 7 + [True] * 3


def test_router_mirrors_the_worker():
    good = _framed()
    router = FunctionRouter()
    assert router.payload_for(0, good) == good                   # first time: with the bytes
    assert router.payload_for(0, good) == strip_function(good)   # then by digest
    assert router.payload_for(1, good) == good                   # another engine has nothing yet
    router.forget(0)
    assert router.payload_for(0, good) == good
    assert router.payload_for(0, good, resend=True) == good
    assert router.counts(0) == {"fn_shipped": 3, "fn_by_digest": 1, "fn_missed": 1}
    router.drop(0)
    assert router.counts(0) == {"fn_shipped": 0, "fn_by_digest": 0, "fn_missed": 0}
    plain = pickle.dumps((abs, (1,), {}))
    assert router.payload_for(1, plain) is plain


def test_a_staged_call_carries_its_function_unless_every_pulling_engine_holds_it():
    good = _framed()
    router = FunctionRouter()
    assert router.payload_for_any([0, 1], good) == good           # nobody holds it
    router.taken(0, good)                                         # engine 0 took it, with the bytes
    assert router.payload_for_any([0, 1], good) == good           # engine 1 still lacks it
    assert router.payload_for_any([0], good) == strip_function(good)
    router.taken(1, good)
    assert router.payload_for_any([0, 1], good) == strip_function(good)
    router.taken(1, good)
    assert router.counts(1) == {"fn_shipped": 1, "fn_by_digest": 1, "fn_missed": 0}
    router.forget(0)                                              # engine 0's worker was replaced
    assert router.payload_for_any([0, 1], good) == good
    assert router.payload_for_any([], good) == good


def test_router_allows_one_miss_per_attempt():
    router = FunctionRouter()
    assert router.first_miss(0, "t", 0) and router.first_miss(1, "t", 0) and router.first_miss(0, "t", 1)
    assert not router.first_miss(0, "t", 0)


def test_fn_unknown_status_crosses_the_wire():
    msg = TaskDone(task_id="t1", attempt=0, status="fn_unknown", started_at=1.0, completed_at=2.0)
    assert from_wire(*to_wire(msg)) == msg


def test_digest_names_the_bytes():
    assert digest_of(b"abc") != digest_of(b"abd") and len(digest_of(b"")) == 16


def test_router_checks_every_submission_also_when_it_remembers_the_digest():
    stored: list[tuple[bytes, bytes]] = []
    router = FunctionRouter(known_bytes=10_000, store=lambda d, b: stored.append((d, b)))
    good = _framed()
    _, digest, n = parse(good)
    assert router.accept(good) == strip_function(good)      # the task keeps its call by digest alone ...
    assert stored == [(digest, good[HEADER.size:HEADER.size + n])]    # ... and the bytes are kept once
    assert router.accept(good) == strip_function(good)      # remembered: compared, not hashed, not stored again
    assert len(stored) == 1
    assert router.accept(strip_function(good)) == strip_function(good)     # by digest: it was sent before
    forged = bytearray(good)
    forged[HEADER.size] ^= 0xFF
    with pytest.raises(ValueError, match="do not match their digest"):
        router.accept(bytes(forged))
    other = strip_function(_framed(_main_namespace("def h():\n    return 3\n")["h"]))
    with pytest.raises(ValueError, match="is unknown to the controller"):
        router.accept(other)
    plain = pickle.dumps((abs, (1,), {}))
    assert router.accept(plain) is plain


def test_router_adds_the_bytes_back_for_an_engine_that_lacks_them():
    """A task kept by digest goes whole to an engine without the function, by digest to one that has it; bytes
    evicted from the router's memory come back from `lookup` (the task database)."""
    table: dict[bytes, bytes] = {}
    router = FunctionRouter(known_bytes=10_000, store=table.__setitem__, lookup=table.get)
    good = _framed()
    kept = router.accept(good)
    assert router.payload_for(0, kept) == good                  # engine 0 lacks it: whole
    assert router.payload_for(0, kept) == kept                  # then by digest
    assert router.payload_for_any([0, 1], kept) == good         # engine 1 lacks it: a staged call carries it
    router._known.clear()                                       # (as after an eviction)
    assert router.payload_for(1, kept) == good                  # from the lookup
    assert router.counts(1) == {"fn_shipped": 1, "fn_by_digest": 0, "fn_missed": 0}
    assert whole_payload(kept, table.get) == good and whole_payload(good, table.get) is good
    assert whole_payload(kept, {}.get) is kept                  # nothing to add: left as it is


def test_a_remembered_by_reference_function_goes_by_value_once_its_name_no_longer_finds_it():
    import sys
    import types

    import cloudpickle

    from real_cluster import fncache
    mod = types.ModuleType("sl_byref_probe")
    exec(compile("def f(x):\n    return x * 3\ndef g(x):\n    return -x\n", "<probe>", "exec"), mod.__dict__)
    f = mod.f
    sys.modules[mod.__name__] = mod
    try:
        cache = FunctionCache()
        for _ in range(2):                      # the second answer comes from the remembered check
            payload = cache.pack_call(f, (4,), {})
            assert parse(payload) is None and pickle.loads(payload) == (f, (4,), {})
        assert cache.by_reference == 2 and fncache._BY_REFERENCE.get(f) is mod
        mod.f = mod.g                           # the name now finds another function: f must travel by value
        assert parse(cache.pack_call(f, (4,), {})) is not None and _run(cache, f, 4) == 12
        mod.f = f
        assert parse(cache.pack_call(f, (4,), {})) is None
        cloudpickle.register_pickle_by_value(mod)       # registered by value after it was remembered
        try:
            assert parse(cache.pack_call(f, (4,), {})) is not None and _run(cache, f, 5) == 15
        finally:
            cloudpickle.unregister_pickle_by_value(mod)
        assert parse(cache.pack_call(f, (4,), {})) is None
        del sys.modules[mod.__name__]           # no longer importable by that name
        assert parse(cache.pack_call(f, (4,), {})) is not None
    finally:
        sys.modules.pop(mod.__name__, None)


def test_router_memory_is_bounded_and_the_database_answers_past_it():
    table: dict[bytes, bytes] = {}
    router = FunctionRouter(known_bytes=3_000, store=table.__setitem__, lookup=table.get)
    fns = [_main_namespace(f"def f{i}(x):\n    return x + {i}\n")[f"f{i}"] for i in range(20)]
    kept = [router.accept(_framed(f)) for f in fns]
    assert router._known_size <= 3_000 and len(router._known) < 20        # bounded in bytes ...
    assert len(table) == 20                                               # ... every one kept in the database
    assert [router.payload_for(0, k) for k in kept] == [_framed(f) for f in fns]    # whole again, from either
