"""DirectView on live clusters (issue 14 item 4): push/pull/execute/scatter/gather round trips, `dview['a']`,
apply on every target in target order, `rc[0]` single values, map's static partition, flags and target
errors, `__main__`/@interactive code seeing the namespace, and a worker SIGKILLed in the middle (the
namespace is empty afterwards, a lost name says the worker was restarted, the engine keeps its id).

The shared 4-engine cluster keeps its namespaces between tests: each test uses names of its own."""

from __future__ import annotations

import os
import signal
import uuid

import numpy as np
import pytest

from _wait import wait_until
from real_cluster import CompositeError, RemoteError, interactive
from real_cluster.directview import DirectView, join_partitions, partition

T = 60      # seconds: the deadline of every wait (5x headroom on a loaded 2-core machine)


def _name(prefix: str = "v") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _user_names() -> list:
    """Task body (interactive): the names in the engine's namespace that are not dunders."""
    return sorted(k for k in globals() if not k.startswith("__"))


# ------------------------------------------------------------------------------ round trips
def test_push_pull_round_trip_on_two_engines(rc):
    e0, e1 = rc.ids[:2]
    dv = rc[[e0, e1]]
    dv.block = True
    a, b = _name(), _name()
    assert dv.push({a: 5, b: [1, 2]}) == [None, None]
    assert dv.pull(a) == [5, 5]
    assert dv.pull([a, b]) == [[5, [1, 2]], [5, [1, 2]]]
    rc[e0].push({a: "zero"}, block=True)
    rc[e1].push({a: "one"}, block=True)
    assert dv.pull(a) == ["zero", "one"]                       # in target order
    assert rc[[e1, e0]].pull(a, block=True) == ["one", "zero"]
    assert rc[e1].pull(a).get(T) == "one"                      # rc[i]: one value, not a list
    assert rc[e0].pull(f"{b}[1] + 40", block=True) == 42       # pull evaluates, as ipyparallel's does


def test_setitem_getitem(rc):
    dv = rc[:]
    name = _name()
    dv[name] = {"x": 1}
    assert dv[name] == [{"x": 1}] * len(rc.ids)
    assert rc[rc.ids[-1]][name] == {"x": 1}
    with pytest.raises(CompositeError) as info:
        dv[_name("missing")]
    assert all(e[0] == "NameError" for e in info.value.elist)


def test_execute_defines_names_prints_and_fails_clearly(rc):
    dv = rc[rc.ids[:2]]
    n = _name()
    ar = dv.execute(f"{n} = 6 * 7\nprint('hello from', {n})", block=True)
    assert ar.get(T) == [None, None] and ar.stdout == ["hello from 42\n"] * 2
    assert dv.pull(n, block=True) == [42, 42]
    with pytest.raises(RemoteError) as info:
        rc[rc.ids[0]].execute("1 / 0", block=True)
    assert info.value.ename == "ZeroDivisionError"
    with pytest.raises(RemoteError) as info:
        rc[rc.ids[0]].execute("def broken(:", block=True)
    assert info.value.ename == "SyntaxError"
    with pytest.raises(TypeError):
        dv.execute(b"x = 1")
    assert dv.apply_sync(abs, -3) == [3, 3]          # the engines serve on after the failures


def test_apply_on_every_target_in_target_order(rc):
    ids = rc.ids
    pids = rc[:].apply_sync(os.getpid)
    assert len(pids) == len(ids) and len(set(pids)) == len(ids)
    for eid, pid in zip(ids, pids):
        one = rc[eid].apply_sync(os.getpid)
        assert one == pid and isinstance(one, int)               # rc[i]: a single value
    assert rc[ids[::-1]].apply_sync(os.getpid) == pids[::-1]
    assert rc[::2].apply_sync(os.getpid) == pids[::2]
    assert rc[[ids[0]]].apply_sync(os.getpid) == [pids[0]]       # a list of one target: a list
    ar = rc.direct_view().apply_async(os.getpid)
    assert ar.get_dict(T) == dict(zip(ids, pids))
    assert [md["engine_id"] for md in ar.metadata] == ids
    assert rc[ids[0]].apply_async(pow, 2, 10).get(T) == 1024
    dv = rc[:]
    dv.block = True
    assert dv.apply(divmod, 7, 2) == [(3, 1)] * len(ids)
    with pytest.raises(CompositeError):
        dv.apply(divmod, 1, 0)


def test_main_and_interactive_functions_see_the_namespace(rc):
    dv = rc[rc.ids[:2]]
    a = _name()
    dv.execute(f"{a} = 10", block=True)
    exec(f"def read():\n    return {a} + 1\n", globals())
    assert dv.apply_sync(interactive(globals()["read"])) == [11, 11]
    exec(f"def write(v):\n    global {a}\n    {a} = v\n", globals())
    dv.apply_sync(interactive(globals()["write"]), 99)
    assert dv.pull(a, block=True) == [99, 99]
    with pytest.raises(CompositeError):            # a module function keeps its own globals (ipyparallel's rule)
        dv.apply_sync(globals()["read"])
    assert dv.map_sync(interactive(lambda i: i + 1), range(3)) == [1, 2, 3]   # also as map's function


def test_shipped_globals_stand_in_for_one_call_and_the_engines_names_win(rc):
    e0 = rc.ids[0]
    name = _name("threshold")
    exec(f"def over(v):\n    return v > {name}\n", globals())
    over = interactive(globals()["over"])
    globals()[name] = 5
    assert rc[e0].apply_sync(over, 6) is True
    globals()[name] = 7                                          # changed on the client: the next call sees it
    assert rc[e0].apply_sync(over, 6) is False
    assert rc.load_balanced_view(targets=e0).apply_sync(over, 6) is False     # load-balanced tasks alike
    assert name not in rc[e0].apply_sync(interactive(_user_names))            # nothing shipped stayed behind
    rc[e0].push({name: 0}, block=True)
    assert rc[e0].apply_sync(over, 6) is True                   # the engine's own value wins
    del globals()[name]


# ---------------------------------------------------------------------------- scatter / gather
def test_partition_and_join_follow_ipyparallel():
    seq = list(range(10))
    assert [partition(seq, p, 4) for p in range(4)] == [[0, 1, 2], [3, 4, 5], [6, 7], [8, 9]]
    assert [partition(seq, p, 4, "r") for p in range(4)] == [[0, 4, 8], [1, 5, 9], [2, 6], [3, 7]]
    assert join_partitions([partition(seq, p, 4, "r") for p in range(4)], "r") == seq
    assert join_partitions([(1, 2), [3]]) == [1, 2, 3] and join_partitions([7, 8]) == [7, 8]
    assert [partition(seq, p, 3, n=4) for p in range(3)] == [[0, 1], [2], [3]]


def test_scatter_gather_round_trips(rc):
    dv = rc[:]
    n = len(rc.ids)
    x = _name()
    assert dv.scatter(x, list(range(10)), block=True) is None
    parts = dv.pull(x, block=True)
    assert parts == [partition(list(range(10)), p, n) for p in range(n)]
    assert dv.gather(x, block=True) == list(range(10))
    ar = dv.gather(x)                                        # non-blocking: the joined list on get()
    assert ar.get(T) == list(range(10))
    dv.scatter(x, list(range(n)), flatten=True, block=True)
    assert dv.pull(x, block=True) == list(range(n))          # flatten: scalars, not 1-element lists
    assert dv.gather(x, block=True) == list(range(n))
    dv.scatter(x, np.arange(12.0).reshape(6, 2), block=True)
    back = dv.gather(x, block=True)
    assert isinstance(back, np.ndarray) and back.tolist() == np.arange(12.0).reshape(6, 2).tolist()
    dv.scatter(x, list("abcdefg"), dist="r", block=True)
    assert dv.gather(x, dist="r", block=True) == list("abcdefg")
    dv.scatter(x, "abcdefg", block=True)                      # str parts are scalars to join, as in ipyparallel
    assert "".join(dv.gather(x, block=True)) == "abcdefg"
    with pytest.raises(ValueError):
        dv.scatter(x, [1], dist="z")


# ---------------------------------------------------------------------------------- map
def test_map_is_a_static_partition_in_order(rc):
    ids = rc.ids
    dv = rc[:]
    pids = dv.apply_sync(os.getpid)
    ar = dv.map_async(lambda v: (v * v, __import__("os").getpid()), range(11))
    out = ar.get(T)
    assert [v for v, _ in out] == [i * i for i in range(11)]
    expected = [pids[p] for p in range(len(ids)) for _ in partition(range(11), p, len(ids))]
    assert [pid for _, pid in out] == expected                 # engine i ran the i-th contiguous part
    assert len(ar.msg_ids) == len(ids)                           # one task per engine
    assert dv.map_sync(pow, [2, 3, 4], [2, 2, 2, 9]) == [4, 9, 16]      # the shortest sequence wins
    assert dv.map_sync(abs, [-1]) == [1]                         # fewer elements than engines: no empty tasks
    assert list(dv.imap(abs, [-1, -2, -3])) == [1, 2, 3]


# ------------------------------------------------------------------------------ flags, errors
def test_flags_and_targets(rc):
    ids = rc.ids
    dv = rc.direct_view()
    assert dv.targets == "all" and dv.block is False and len(dv) == len(ids)
    assert dv.set_flags(block=True) is dv and dv.block is True
    with dv.temp_flags(block=False, targets=ids[0]):
        assert dv.block is False and dv.targets == ids[0]
        assert dv.apply(abs, -1).get(T) == 1
    assert dv.block is True and dv.targets == "all"
    with pytest.raises(KeyError):
        dv.set_flags(retries=2)
    with pytest.raises(ValueError):
        dv.set_flags(targets=[])
    assert dv.block is True
    assert rc[-1].targets == ids[-1] and rc[1:3].targets == ids[1:3]
    with pytest.raises(IndexError):
        rc[max(ids) + 100]
    with pytest.raises(TypeError):
        rc["a"]
    with pytest.raises(IndexError):
        rc[len(ids) + 5:]
    with pytest.raises(ValueError):
        dv.push({"not a name": 1})
    with pytest.raises(TypeError):
        dv.pull(3)
    assert isinstance(rc[:], DirectView) and repr(rc[ids[0]]) == f"<DirectView {ids[0]}>"
    dv.wait()
    assert dv.outstanding == set()


# ------------------------------------------------------------------------ a worker restart
def test_worker_restart_empties_the_namespace_and_says_so(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=T)
    e0, e1 = rc.ids
    dv = rc[:]
    dv.push({"a": 1, "b": 2}, block=True)
    old_pid = rc[e0].apply_sync(os.getpid)
    os.kill(old_pid, signal.SIGKILL)

    def new_worker():
        try:
            pid = rc[e0].apply_async(os.getpid).get(T)
        except RemoteError:           # a task that raced the death (EngineError): ask again
            return None
        return pid if pid != old_pid else None
    wait_until(new_worker, T, "engine 0's fresh worker")

    assert rc.ids == [e0, e1]                                    # the engine kept its id
    assert rc[e0].apply_sync(interactive(_user_names)) == []     # its namespace is empty
    with pytest.raises(RemoteError) as info:
        rc[e0].pull("a", block=True)
    assert info.value.ename == "NameError"
    assert "name 'a' is not defined" in str(info.value) and "worker was restarted" in str(info.value)
    assert rc[e1].pull(["a", "b"], block=True) == [1, 2]         # the other engine kept its namespace
    with pytest.raises(RemoteError) as info:                     # a never-restarted worker does not claim it
        rc[e1].pull("never_pushed", block=True)
    assert "restarted" not in str(info.value)
    dv.push({"a": 3}, block=True)
    assert dv.pull("a", block=True) == [3, 3]
    dv.clear(block=True)
    assert dv.apply_sync(interactive(_user_names)) == [[], []]
    dv.push({"c": 1}, block=True)
    rc.clear(targets=e1, block=True)                             # the client's clear, one engine
    assert dv.apply_sync(interactive(_user_names)) == [["c"], []]


def test_remote_and_parallel_decorators(rc):
    dv = rc[rc.ids[:2]]

    @dv.remote(block=True)
    def engine_pid():
        import os
        return os.getpid()

    assert engine_pid() == dv.apply_sync(os.getpid)

    @dv.parallel(block=True)
    def doubled(part):
        return [2 * v for v in part]

    assert doubled(list(range(5))) == [0, 2, 4, 6, 8]             # engine i got the i-th part
    assert doubled.map([[1], [2, 3], [4]]) == [[2], [4, 6], [8]]     # element-wise: doubled(v) per element
    with pytest.raises(KeyError):
        dv.remote(retries=1)


def test_sync_imports_imports_here_and_on_the_engines(rc, capsys):
    import builtins
    real_import = builtins.__import__
    dv = rc[rc.ids[:2]]
    with dv.sync_imports():
        import colorsys
        from textwrap import dedent as _unused_alias       # noqa: F401 - `as` is ignored on the engines
    assert colorsys.__name__ == "colorsys"                  # imported here too
    assert capsys.readouterr().out == "importing colorsys on engine(s)\nimporting dedent from textwrap on engine(s)\n"
    assert dv.pull(["colorsys.__name__", "dedent.__module__"], block=True) == [["colorsys", "textwrap"]] * 2
    with pytest.raises(ImportError):
        with dv.importer:
            import no_such_module_here          # noqa: F401
    assert builtins.__import__ is real_import               # restored after a failure too


def test_bad_input_is_a_clear_error_and_the_engines_serve_on(rc):
    import threading
    dv = rc[rc.ids[:2]]
    before = list(dv.history)
    with pytest.raises(TypeError, match="pickle"):
        dv.push({"lock": threading.Lock()})                  # refused on the client: nothing was sent
    assert dv.history == before
    lk = _name("lock")
    dv.execute(f"import threading\n{lk} = threading.Lock()", block=True)
    with pytest.raises(CompositeError) as info:
        dv.pull(lk, block=True)
    assert all("could not be pickled" in e[1] for e in info.value.elist)
    with pytest.raises(TypeError):
        dv.scatter("x", iter([1, 2]))                         # ipyparallel's partition needs a sized sequence
    assert dv.apply_sync(abs, -4) == [4, 4]
