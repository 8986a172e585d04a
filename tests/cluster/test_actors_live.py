"""Ray-style actors on the live cluster (issue 14 item 1): view.actor, ActorHandle calls, named actors, kill,
max_concurrency, restarts after SIGKILL of the actor's worker and of its engine, handles passed to tasks.

Executions are counted with marker files (one line per run), never with in-memory state of the test.
The first tests drive a worker's actor table in this process (worker_actors.py) with real RunTask
messages; the rest run real controllers, engines and workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from _wait import wait_for_file, wait_until

from real_cluster import Client, RemoteError, require
from real_cluster import protocol as proto
from real_cluster.controller import Controller, ControllerConfig
from real_cluster.error import ActorDiedError, ClusterError, ImpossibleDependency, TaskAborted
from real_cluster.messages import RunTask
from real_cluster.serialize import pack_call, unpack_result
from real_cluster.worker import execute
from real_cluster.worker_actors import ActorTable
from sched_lab.core import ActorKillRequested, ActorSpec, EngineJoined, Outcome, TaskFinished, TaskSpec, TaskSubmitted

WAIT_S = 60.0           # deadlines for events (5x headroom on a loaded 2-core machine)


# ---------------------------------------------------------------------------------------- actor classes
class Counter:
    """Counts; records each construction in `marker` (one line per run)."""

    def __init__(self, start: int = 0, marker: str | None = None):
        self.value = start
        if marker:
            with open(marker, "a") as fh:
                fh.write(f"{os.getpid()}\n")

    def incr(self, by: int = 1) -> int:
        self.value += by
        return self.value

    def get(self) -> int:
        return self.value

    def fail(self, text: str) -> None:
        raise ValueError(text)

    def pid(self) -> int:
        return os.getpid()

    def engine_pid(self) -> int:
        return os.getppid()

    def hold(self, marker: str, release: str, timeout_s: float = 120.0) -> int:
        """Record this run in `marker`, then wait for `release`; returns the current value."""
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        deadline = time.monotonic() + timeout_s
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.value


class Log:
    """Appends what it is told to a list, in call order."""

    def __init__(self) -> None:
        self.items: list = []

    def add(self, item: object) -> int:
        self.items.append(item)
        return len(self.items)

    def all(self) -> list:
        return list(self.items)


class Overlap:
    """Each call records (start, end) and waits for a release file: the calls' overlap is measurable."""

    def __init__(self, folder: str):
        self.folder = folder

    def work(self, i: int, release: str) -> tuple[float, float]:
        start = time.time()
        Path(self.folder, f"start-{i}").write_text(f"{start!r}\n")
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.005)
        print(f"call {i} done")
        return start, time.time()


@require("no_such_module_anywhere_1f3a")
class NeedsMissing:
    def ping(self) -> str:
        return "pong"


def _lines(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


# ------------------------------------------------------------------------------ the worker's actor table
@pytest.fixture
def table(monkeypatch):
    """A fresh actor table for worker.execute, and this process's output streams as they were afterwards."""
    import sys

    import real_cluster.worker as worker
    import real_cluster.worker_actors as wa
    t = ActorTable()
    monkeypatch.setattr(worker, "ACTORS", t)
    saved = sys.stdout, sys.stderr
    yield t
    sys.stdout, sys.stderr = saved
    wa._routers, wa._want_routers = None, False


def test_worker_runs_a_constructor_then_methods_on_that_instance(table):
    create = RunTask(task_id="c", attempt=0, payload=pack_call(Counter, (5,), {}), actor_id="a", actor_role="create",
                     incarnation=0, max_concurrency=1)
    assert execute(create).status == "ok"
    call = RunTask(task_id="m", attempt=0, payload=pack_call("incr", (2,), {}), actor_id="a", actor_role="call",
                   incarnation=0, max_concurrency=1)
    done = execute(call)
    assert done.status == "ok" and unpack_result(done.result) == 7
    failed = execute(RunTask(task_id="f", attempt=0, payload=pack_call("fail", ("boom",), {}), actor_id="a",
                             actor_role="call", incarnation=0))
    assert failed.status == "error" and failed.ename == "ValueError" and failed.evalue == "boom"
    assert unpack_result(execute(call).result) == 9            # the failure changed nothing else
    stale = execute(RunTask(task_id="s", attempt=0, payload=pack_call("get", (), {}), actor_id="a",
                            actor_role="call", incarnation=1))
    assert stale.status == "error" and stale.ename == "ActorDiedError" and "incarnation 1" in stale.evalue
    assert table.delete("a") and not table.delete("a")
    gone = execute(call)
    assert gone.ename == "ActorDiedError"
    missing = execute(RunTask(task_id="x", attempt=0, payload=pack_call("nope", (), {}), actor_id="b",
                              actor_role="call", incarnation=0))
    assert missing.ename == "ActorDiedError"


def test_worker_runs_threaded_calls_concurrently_with_output_per_call(table, tmp_path):
    create = RunTask(task_id="c", attempt=0, payload=pack_call(Overlap, (str(tmp_path),), {}), actor_id="o",
                     actor_role="create", incarnation=0, max_concurrency=3)
    assert execute(create).status == "ok"
    release = tmp_path / "go"
    replies: list = []
    lock = threading.Lock()

    def send(msg):
        with lock:
            replies.append(msg)
    for i in range(3):
        msg = RunTask(task_id=f"w{i}", attempt=0, payload=pack_call("work", (i, str(release)), {}), actor_id="o",
                      actor_role="call", incarnation=0, max_concurrency=3)
        assert table.is_threaded(msg)
        table.submit(msg, execute, send)
    for i in range(3):                      # all three run at once: each started before any was released
        wait_for_file(tmp_path / f"start-{i}", WAIT_S)
    release.touch()
    wait_until(lambda: len(replies) == 3, WAIT_S, "three replies")
    assert sorted(r.stdout for r in replies) == [f"call {i} done\n" for i in range(3)]
    assert all(r.status == "ok" for r in replies)
    assert table.delete("o")


# ------------------------------------------------------------------------------------------ live cluster
@pytest.fixture(autouse=True)
def _no_actor_outlives_its_test(request):
    """Actors pin a slot of the shared cluster's engines (hwm 1): kill what a test left alive."""
    shared = "rc" in request.fixturenames or "view" in request.fixturenames
    rc = request.getfixturevalue("rc") if shared else None
    yield
    if rc is not None:
        for row in rc.actors():
            if row["state"] != "dead":
                rc.kill_actor(row["actor_id"])


def test_calls_run_on_one_instance_in_order_and_a_raising_method_fails_that_call_only(rc, view, tmp_path):
    marker = tmp_path / "constructed"
    h = view.actor(Counter, 10, marker=str(marker))
    calls = [h.incr(i) for i in range(1, 6)]         # made before the instance exists: they wait for it
    bad = h.fail("nope")
    after = h.get()
    assert [c.get(WAIT_S) for c in calls] == [11, 13, 16, 20, 25]
    with pytest.raises(RemoteError) as info:
        bad.get(WAIT_S)
    assert info.value.ename == "ValueError" and "nope" in str(info.value)
    assert not isinstance(info.value, ActorDiedError)
    assert after.get(WAIT_S) == 25 and h.creation.get(WAIT_S) is None
    assert len(_lines(marker)) == 1                         # one constructor run
    with pytest.raises(AttributeError, match="no method 'incrr'"):
        h.incrr(1)
    [row] = [a for a in rc.actors() if a["actor_id"] == h.actor_id]
    assert row["class"] == "Counter" and row["state"] == "alive" and row["engine_id"] in rc.ids
    status = rc.queue_status()
    assert status[row["engine_id"]]["actors"] >= 1
    rc.kill_actor(h)


def test_constructor_keywords_that_clash_with_options_go_in_init_kwargs(view):
    class Named:
        def __init__(self, name: str, max_concurrency: int):
            self.both = (name, max_concurrency)

        def both_(self) -> tuple:
            return self.both
    h = view.actor(Named, init_kwargs={"name": "inner", "max_concurrency": 7})
    assert h.both_().get(WAIT_S) == ("inner", 7) and h.name is None
    with pytest.raises(TypeError, match="given twice"):
        view.actor(Named, name=None, init_kwargs={"x": 1}, x=2)
    with pytest.raises(TypeError, match="needs a class"):
        view.actor(len)
    with pytest.raises(ValueError, match="max_concurrency"):
        view.actor(Counter, max_concurrency=0)


def test_named_actor_from_a_second_client_with_per_client_order(rc, view, session_cluster):
    name = f"log-{os.urandom(4).hex()}"
    h = view.actor(Log, name=name)
    with pytest.raises(ValueError, match="already exists"):
        view.actor(Log, name=name)
    other = Client(profile=session_cluster.profile, timeout=30)
    try:
        h2 = other.get_actor(name)
        assert h2.actor_id == h.actor_id and h2.name == name
        n = 40
        results: dict[str, list] = {}

        def submit(handle, tag):
            results[tag] = [handle.add((tag, i)) for i in range(n)]
        threads = [threading.Thread(target=submit, args=(h, "a")), threading.Thread(target=submit, args=(h2, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT_S)
        for tag in "ab":
            for ar in results[tag]:
                ar.get(WAIT_S)
        items = h.all().get(WAIT_S)
        assert len(items) == 2 * n
        for tag in "ab":                                    # each client's calls ran in its submission order
            assert [i for t, i in items if t == tag] == list(range(n))
        with pytest.raises(ValueError, match="no live actor"):
            other.get_actor("never-created-" + name)
    finally:
        other.close()
    rc.kill_actor(h)
    wait_until(lambda: rc.actors() and [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]["state"] == "dead",
               WAIT_S, "the killed actor dead")
    h3 = view.actor(Log, name=name)                          # a dead actor's name is free again
    assert h3.add(1).get(WAIT_S) == 1
    rc.kill_actor(h3)


def test_max_concurrency_runs_n_calls_at_once_never_more(view, tmp_path):
    n, calls = 3, 8
    h = view.actor(Overlap, str(tmp_path), max_concurrency=n)
    release = tmp_path / "release"
    ars = [h.work(i, str(release)) for i in range(calls)]
    for i in range(n):                                      # the first N start while none may finish
        wait_for_file(tmp_path / f"start-{i}", WAIT_S)
    release.touch()
    spans = [ar.get(WAIT_S) for ar in ars]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == n
    assert [ar.stdout for ar in ars] == [f"call {i} done\n" for i in range(calls)]   # output per call
    assert sorted(range(calls), key=lambda i: spans[i][0])[:n] == list(range(n))    # FIFO start
    view.client.kill_actor(h)


def test_kill_actor_fails_queued_and_later_calls(rc, view, tmp_path):
    marker, release = tmp_path / "ran", tmp_path / "release"
    h = view.actor(Counter)
    running = h.hold(str(marker), str(release))
    queued = [h.incr() for _ in range(3)]
    wait_for_file(marker, WAIT_S)
    rc.kill_actor(h)
    for ar in [running, *queued]:
        with pytest.raises(RemoteError) as info:
            ar.get(WAIT_S)
        assert info.value.ename in ("ActorDiedError", "TaskAborted")      # the running one: stopped by the kill
    for ar in queued:
        with pytest.raises(ActorDiedError):
            ar.get(WAIT_S)
    with pytest.raises(ActorDiedError):
        h.get().get(WAIT_S)
    release.touch()


def test_require_on_the_class_is_checked_on_the_engines(view):
    h = view.actor(NeedsMissing)
    with pytest.raises(ImpossibleDependency):
        h.creation.get(WAIT_S)
    with pytest.raises(ActorDiedError):
        h.ping().get(WAIT_S)


def test_a_handle_passed_to_a_task_and_to_another_actor(view):
    h = view.actor(Counter, 100)

    def bump(handle, by):
        return handle.incr(by).get(30)
    assert view.apply_sync(bump, h, 5) == 105

    class Caller:
        def __init__(self, target):
            self.target = target

        def poke(self) -> int:
            return self.target.incr(1).get(30)
    c = view.actor(Caller, h)
    assert c.poke().get(WAIT_S) == 106
    assert h.get().get(WAIT_S) == 106
    view.client.kill_actor(c)
    view.client.kill_actor(h)


def test_restart_after_sigkill_of_the_actors_worker(make_cluster, tmp_path):
    cluster = make_cluster(2)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=WAIT_S)
    view = rc.load_balanced_view()
    built, ran, release = tmp_path / "built", tmp_path / "ran", tmp_path / "release"
    h = view.actor(Counter, 0, marker=str(built), max_restarts=2, max_task_retries=1)
    first_pid = h.pid().get(WAIT_S)
    engine = [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]["engine_id"]
    h.incr(5).get(WAIT_S)
    # kill 1: a call in flight is retried once, on the new instance (constructor run again: state is fresh)
    held = h.hold(str(ran), str(release))
    wait_until(lambda: len(_lines(ran)) == 1, WAIT_S, "the held call running")
    os.kill(first_pid, signal.SIGKILL)
    during = h.get()                                        # made during the restart: runs on the new instance
    wait_until(lambda: len(_lines(ran)) == 2, WAIT_S, "the held call retried")
    second_pid = int(_lines(ran)[1])
    assert second_pid != first_pid and len(_lines(built)) == 2
    # kill 2 while the retry runs: no retries left for that call -> ActorDiedError; the actor restarts again
    os.kill(second_pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError):
        held.get(WAIT_S)
    assert during.get(WAIT_S) == 0                          # the new instance: constructed with 0, not 5
    assert len(_lines(ran)) == 2                            # exactly 1 + max_task_retries runs
    third_pid = h.pid().get(WAIT_S)
    assert third_pid not in (first_pid, second_pid) and len(_lines(built)) == 3
    row = [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]
    assert row["restarts"] == 2 and row["engine_id"] == engine      # only the worker died: same engine
    # kill 3: restarts used up -> the call in flight, the queued ones and later ones fail ActorDiedError
    ran3 = tmp_path / "ran3"
    held3 = h.hold(str(ran3), str(release))
    queued = [h.incr() for _ in range(3)]
    wait_until(lambda: len(_lines(ran3)) == 1, WAIT_S, "the third held call running")
    os.kill(third_pid, signal.SIGKILL)
    for ar in [held3, *queued]:
        with pytest.raises(ActorDiedError):
            ar.get(WAIT_S)
    wait_until(lambda: [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]["state"] == "dead", WAIT_S,
               "the actor dead")
    with pytest.raises(ActorDiedError):
        h.get().get(WAIT_S)
    assert len(_lines(built)) == 3 and len(_lines(ran3)) == 1       # no restart, no retry
    release.touch()
    assert view.apply_sync(os.getpid) > 0                  # the engines serve on


def test_restart_after_sigkill_of_the_actors_engine(make_cluster, tmp_path):
    cluster = make_cluster(2)
    rc = cluster.client
    rc.wait_for_engines(2, timeout=WAIT_S)
    view = rc.load_balanced_view()
    built, ran, release = tmp_path / "built", tmp_path / "ran", tmp_path / "release"
    h = view.actor(Counter, 7, marker=str(built), max_restarts=1, max_task_retries=1)
    nanny = h.engine_pid().get(WAIT_S)
    engine = [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]["engine_id"]
    held = h.hold(str(ran), str(release))
    wait_until(lambda: len(_lines(ran)) == 1, WAIT_S, "the held call running")
    os.kill(nanny, signal.SIGKILL)                          # the engine dies (its worker with it)
    wait_until(lambda: len(_lines(ran)) == 2, WAIT_S, "the held call retried on the re-created actor")
    release.touch()
    assert held.get(WAIT_S) == 7                            # the retry ran on a fresh instance
    assert len(_lines(built)) == 2 and h.engine_pid().get(WAIT_S) != nanny
    row = [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]
    assert row["engine_id"] != engine and row["restarts"] == 1 and row["state"] == "alive"


def test_a_handle_on_an_engine_needs_the_client_file_and_says_which(tmp_path, monkeypatch):
    from real_cluster import actors
    engine_file = tmp_path / "security" / "controller-engine.json"
    engine_file.parent.mkdir()
    engine_file.write_text("{}")
    monkeypatch.delenv(actors.CLIENT_FILE_ENV, raising=False)
    monkeypatch.setenv(actors.ENGINE_FILE_ENV, str(engine_file))
    with pytest.raises(ClusterError, match="controller-client.json is not readable.*engine key grants no client"):
        actors.client_file_for_worker()
    (tmp_path / "security" / "controller-client.json").write_text("{}")
    assert actors.client_file_for_worker() == tmp_path / "security" / "controller-client.json"
    monkeypatch.setenv(actors.CLIENT_FILE_ENV, str(tmp_path / "elsewhere.json"))
    with pytest.raises(ClusterError, match="elsewhere.json"):
        actors.client_file_for_worker()
    monkeypatch.delenv(actors.ENGINE_FILE_ENV)
    monkeypatch.delenv(actors.CLIENT_FILE_ENV)
    with pytest.raises(ClusterError, match="no client in this process"):
        actors.client_file_for_worker()


def test_creation_honours_the_views_targets_and_after(rc, view, tmp_path, gate):
    target = rc.ids[-1]
    with view.temp_flags(targets=[target]):
        h = view.actor(Counter)
    assert h.creation.get(WAIT_S) is None
    assert [a for a in rc.actors() if a["actor_id"] == h.actor_id][0]["engine_id"] == target
    rc.kill_actor(h)
    marker = tmp_path / "built"
    first = gate.hold(view)
    wait_for_file(gate.path / "started-1", WAIT_S)
    with view.temp_flags(after=[first]):
        late = view.actor(Counter, 0, marker=str(marker))
    call = late.incr()
    assert not call.wait(0.5) and not marker.exists()         # neither built nor called before `first` ends
    gate.open()
    assert call.get(WAIT_S) == 1 and len(_lines(marker)) == 1


def test_abort_of_a_running_call_stops_it_and_its_actor_restarts(rc, view, tmp_path):
    built, ran, release = tmp_path / "built", tmp_path / "ran", tmp_path / "release"
    h = view.actor(Counter, 3, marker=str(built), max_restarts=1)
    assert h.incr(4).get(WAIT_S) == 7
    held = h.hold(str(ran), str(release))
    wait_until(lambda: len(_lines(ran)) == 1, WAIT_S, "the held call running")
    assert rc.abort(held) == 1
    with pytest.raises(TaskAborted):
        held.get(WAIT_S)
    assert h.get().get(WAIT_S) == 3                  # its worker was stopped: a fresh instance
    assert len(_lines(built)) == 2 and len(_lines(ran)) == 1
    release.touch()


def test_actor_messages_travel_in_binary_headers_and_bad_ones_name_the_field():
    import struct

    from real_cluster.error import InvalidField
    from real_cluster.messages import Submit, TaskFlags, from_wire, to_wire
    run = RunTask(task_id="t1", attempt=3, payload=b"p", actor_id="a1", actor_role="recreate", incarnation=2,
                  max_concurrency=5)
    call = Submit(task_id="t2", flags=TaskFlags(actor_id="a1"), submitted_at=5.0, payload=b"p")
    for msg in (run, call):
        header, buffers = to_wire(msg)
        assert type(header) is bytes and from_wire(header, buffers) == msg
    labelled = Submit(task_id="t3", flags=TaskFlags(actor_id="a1", label="L"), submitted_at=5.0, payload=b"p")
    assert type(to_wire(labelled)[0]) is dict and from_wire(*to_wire(labelled)) == labelled    # other flags: JSON
    for role, conc, aid, field in ((9, 1, b"a", "actor_role"), (2, 0, b"a", "max_concurrency"),
                                   (2, 1, b"", "actor_id")):
        bad = struct.pack("!BBIIHBH", 0, 5, 0, 1, conc, role, 2) + b"t9" + aid
        with pytest.raises(InvalidField) as info:
            from_wire(bad, [b"p"])
        assert info.value.field == field and info.value.task_id == "t9"



def test_tasks_held_by_actors_at_hwm_1_are_reported_and_run_when_an_actor_goes(make_cluster):
    cluster = make_cluster(2, hwm=1)
    rc = cluster.client
    view = rc.load_balanced_view()
    log = cluster.dir / "log" / "controller.log"
    a, b = view.actor(Counter), view.actor(Counter)
    assert (a.incr().get(WAIT_S), b.incr().get(WAIT_S)) == (1, 1)       # one on each engine: each pins its slot
    ar = view.apply_async(pow, 2, 5)
    warning = "1 task(s) wait for an engine, but every engine's slots (hwm=1) are held by actors"
    wait_until(lambda: warning in log.read_text(), WAIT_S, "the controller's warning")
    status = rc.queue_status()
    assert status["unassigned"] == 1 and all(status[e]["actors"] == 1 for e in rc.ids)
    rc.kill_actor(b)                                                    # its slot is free: the task runs there
    assert ar.get(WAIT_S) == 32
    assert a.incr().get(WAIT_S) == 2


def test_the_held_by_actors_warning_comes_once_an_episode(caplog):
    ctl = Controller(ControllerConfig(key=proto.new_key(), engine_key=proto.new_key(), hwm=1))   # not started
    core, now = ctl.scheduler, time.time()

    def settle(tid: str, engine: int) -> None:
        core.handle(TaskFinished(now, tid, engine, 0, Outcome.OK, None, now))

    def warnings() -> int:
        return sum("held by actors" in r.getMessage() for r in caplog.records)

    caplog.set_level(logging.WARNING, logger="real_cluster.controller")
    core.handle(EngineJoined(now, 0))
    core.handle(TaskSubmitted(now, TaskSpec("ca", creates_actor=ActorSpec("A"))))
    settle("ca", 0)
    core.handle(TaskSubmitted(now, TaskSpec("t1")))
    for _ in range(3):                  # held: warned at the first check only
        ctl._check_held_by_actors()
    assert core.held_by_actors() == 1 and warnings() == 1
    core.handle(ActorKillRequested(now, "A"))       # t1 takes the freed slot: over
    ctl._check_held_by_actors()
    core.handle(TaskSubmitted(now, TaskSpec("cb", creates_actor=ActorSpec("B"))))
    settle("t1", 0)
    settle("cb", 0)
    core.handle(TaskSubmitted(now, TaskSpec("t2")))
    ctl._check_held_by_actors()         # a second episode: warned again
    ctl._check_held_by_actors()
    assert warnings() == 2


def test_a_failing_held_by_actors_check_never_stops_the_liveness_loop(caplog):
    calls = []

    class Broken(Controller):
        def _check_held_by_actors(self):
            calls.append(time.monotonic())
            raise RuntimeError("injected")

    ctl = Broken(ControllerConfig(key=proto.new_key(), engine_key=proto.new_key(), hb_period_s=0.02))   # not started

    async def run() -> None:
        monitor = asyncio.ensure_future(ctl._heartbeat_monitor())
        deadline = time.monotonic() + WAIT_S
        while len(calls) < 3 and not monitor.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert not monitor.done(), monitor      # (the injected error would have ended it at the first call)
        monitor.cancel()

    caplog.set_level(logging.ERROR, logger="real_cluster.controller")
    asyncio.run(run())
    assert len(calls) >= 3 and "checking whether actors hold every engine failed" in caplog.text
