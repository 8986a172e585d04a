"""Functions shipped once per engine, on real clusters (fncache.py): a map of 200 tasks ships the function
bytes at most once per engine (the controller's counters, `function_stats`); a redefined helper reaches the
engines; workers SIGKILLed in the middle of a map lose nothing; a worker that never had a function the
controller names by digest gets it resent (a miss, counted) and the task succeeds; a framed payload
whose bytes do not match their digest is refused with a clear error and the cluster keeps serving."""

from __future__ import annotations

import os
import signal
import time

import pytest

from real_cluster import Client
from real_cluster.fncache import FunctionCache, strip_function
from real_cluster.messages import TaskFlags

pytestmark = pytest.mark.timeout(180)


def _counts(rc: Client) -> dict[int, dict[str, int]]:
    return {eid: v for eid, v in rc.function_stats().items() if eid != "client"}


def _wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _cell(source: str) -> dict:
    ns: dict = {"__name__": "__main__"}
    exec(compile(source, "<cell>", "exec"), ns)
    return ns


def _worker_pids(view, engine_ids) -> dict[int, int]:
    pids = {}
    for eid in engine_ids:
        with view.temp_flags(targets=[eid]):
            pids[eid] = view.apply_sync(os.getpid)
    return pids


def test_map_of_200_ships_the_function_once_per_engine(rc, view):
    ns = _cell(f"SALT = {os.urandom(8).hex()!r}\ndef tag(x):\n    return (x, SALT)\n")    # bytes no engine has
    before = _counts(rc)
    out = view.map_sync(ns["tag"], range(200))
    assert out == [(x, ns["SALT"]) for x in range(200)]
    after = _counts(rc)
    shipped = {eid: after[eid]["fn_shipped"] - before[eid]["fn_shipped"] for eid in after}
    by_digest = sum(after[eid]["fn_by_digest"] - before[eid]["fn_by_digest"] for eid in after)
    assert all(0 <= n <= 1 for n in shipped.values()), shipped
    assert sum(shipped.values()) + by_digest == 200
    assert sum(after[e]["fn_missed"] for e in after) == sum(before[e]["fn_missed"] for e in before)
    # a loop of apply_async: the same
    before = after
    assert [ar.get(timeout=60) for ar in [view.apply_async(ns["tag"], i) for i in range(100)]][-1] == (99, ns["SALT"])
    after = _counts(rc)
    assert sum(after[e]["fn_shipped"] - before[e]["fn_shipped"] for e in after) == 0
    assert rc.function_stats()["client"]["hits"] >= 299


def test_redefinition_reaches_the_engines(rc, view):
    ns = _cell(f"def helper():\n    return 'v1'\ndef f(x):\n    return (helper(), x, {os.urandom(4).hex()!r})\n")
    assert {r[0] for r in view.map_sync(ns["f"], range(40))} == {"v1"}
    exec(compile("def helper():\n    return 'v2'\n", "<cell 2>", "exec"), ns)
    assert {r[0] for r in view.map_sync(ns["f"], range(40))} == {"v2"}
    ns["f"].__defaults__ = None
    exec(compile("def helper():\n    return 'v3'\n", "<cell 3>", "exec"), ns)
    assert view.apply_sync(ns["f"], 0)[0] == "v3"


def test_workers_killed_in_the_middle_of_a_map_lose_nothing(make_cluster, tmp_path):
    rc = make_cluster(2, hwm=0).client          # hwm 0: digest-only tasks wait in the nanny when the worker dies
    rc.wait_for_engines(2, timeout=30)
    view = rc.load_balanced_view()
    ns = _cell("import time\ndef slow(x, marker):\n    time.sleep(0.005)\n    open(marker, 'a').write('.')\n"
               "    return x * 3\n")
    marker = str(tmp_path / "ran")
    pids = _worker_pids(view, rc.ids)
    view.set_flags(retries=3)
    amr = view.map_async(ns["slow"], range(400), [marker] * 400)
    _wait_until(lambda: os.path.exists(marker) and os.path.getsize(marker) >= 40, 60, "40 tasks done")
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)
    assert amr.get(timeout=120) == [x * 3 for x in range(400)]
    assert sum(c["fn_missed"] for c in _counts(rc).values()) >= 1     # queued digest-only tasks were resent
    new_pids = _worker_pids(view, rc.ids)
    assert not set(new_pids.values()) & set(pids.values())     # the workers really were replaced


def test_a_digest_the_fresh_worker_never_had_is_resent(make_cluster):
    rc = make_cluster(1).client
    rc.wait_for_engines(1, timeout=30)
    view = rc.load_balanced_view()
    ns = _cell("def triple(x):\n    return 3 * x\n")
    assert view.apply_sync(ns["triple"], 1) == 3           # engine 0 now holds it
    (eid,) = rc.ids
    old = _worker_pids(view, [eid])[eid]
    os.kill(old, signal.SIGKILL)                            # while idle: the controller is not told
    _wait_until(lambda: not os.path.exists(f"/proc/{old}"), 30, "the nanny to reap its killed worker")
    counts = _counts(rc)[eid]
    assert view.map_sync(ns["triple"], range(5)) == [0, 3, 6, 9, 12]
    after = _counts(rc)[eid]
    assert after["fn_missed"] == counts["fn_missed"] + 1
    assert after["fn_shipped"] == counts["fn_shipped"] + 1
    assert view.apply_sync(os.getpid) != old


def test_forged_digest_is_refused_and_the_cluster_keeps_serving(rc, view):
    payload = bytearray(FunctionCache().pack_call(_cell("def f():\n    return 1\n")["f"], (), {}))
    payload[30] ^= 0xFF                         # a byte of the function: no longer what the digest names
    tid = rc.submit_task(bytes(payload), TaskFlags())
    with pytest.raises(Exception, match="do not match their digest"):
        rc.get_result(tid).get(timeout=30)
    g = _cell(f"def g():\n    return {os.urandom(4).hex()!r}\n")["g"]
    bare = strip_function(FunctionCache().pack_call(g, (), {}))     # by digest, never sent with its bytes
    with pytest.raises(Exception, match="is unknown to the controller"):
        rc.get_result(rc.submit_task(bare, TaskFlags())).get(timeout=30)
    assert view.apply_sync(abs, -4) == 4
    assert view.apply_sync(g) == view.apply_sync(g) == g()        # with its bytes, then by digest


def test_an_engine_missing_a_call_that_carried_its_function_is_a_broken_engine(make_cluster):
    """A fake engine (the engine key, the real protocol) answers fn_unknown twice: the first gets a resend
    with the function's bytes, the second fails the attempt as the engine's (EngineError), nothing loops."""
    from real_cluster.error import EngineError
    from real_cluster.fncache import parse
    from real_cluster.messages import Register, Registered, RunTask, TaskDone
    from real_cluster.profile import ENGINE_FILE, read_connection_file
    from real_cluster.sync_link import SyncLink

    cluster = make_cluster(1)
    rc = cluster.client
    info = read_connection_file(cluster.dir / "security" / ENGINE_FILE)
    link = SyncLink.connect(info.host, info.port, info.key, "engine", tls_fingerprint=info.tls_fingerprint)
    try:
        link.send(Register(uuid="fake", pid=os.getpid(), hostname="fake"))
        reg = link.recv()
        assert isinstance(reg, Registered)
        rc.wait_for_engines(2, timeout=30)
        view = rc.load_balanced_view()
        ns = _cell("def one():\n    return 1\n")
        with view.temp_flags(targets=[reg.engine_id]):
            ar = view.apply_async(ns["one"])
        payloads = []
        for _ in range(2):
            msg = link.recv()
            while not isinstance(msg, RunTask):
                msg = link.recv()
            payloads.append(msg.payload)
            link.send(TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="fn_unknown", started_at=None,
                               completed_at=time.time()))
        assert parse(payloads[0])[2] > 0 and parse(payloads[1])[2] > 0     # first use, then the resend: bytes
        with pytest.raises(EngineError, match="did not run a call that carried its function"):
            ar.get(timeout=30)
        assert _counts(rc)[reg.engine_id]["fn_missed"] == 1
    finally:
        link.close()
    assert rc.load_balanced_view().apply_sync(ns["one"]) == 1          # the real engine still serves
