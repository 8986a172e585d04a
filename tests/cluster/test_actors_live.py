"""Ray-style actors on the live cluster (issue 14 item 1): view.actor, ActorHandle calls, named actors, kill,
max_concurrency, restarts after SIGKILL of the actor's worker and of its engine, handles passed to tasks.

Executions are counted with marker files (one line per run), never with in-memory state of the test.
The first tests drive a worker's actor table in this process (worker_actors.py) with real RunTask
messages; the rest run real controllers, engines and workers.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from _wait import wait_for_file, wait_until

from real_cluster import Client, RemoteError, require
from real_cluster.error import ActorDiedError, ImpossibleDependency
from real_cluster.messages import RunTask
from real_cluster.serialize import pack_call, unpack_result
from real_cluster.worker import execute
from real_cluster.worker_actors import ActorTable

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
def test_worker_runs_a_constructor_then_methods_on_that_instance(monkeypatch):
    import real_cluster.worker as worker
    monkeypatch.setattr(worker, "ACTORS", ActorTable())
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
    assert worker.ACTORS.delete("a") and not worker.ACTORS.delete("a")
    gone = execute(call)
    assert gone.ename == "ActorDiedError"
    missing = execute(RunTask(task_id="x", attempt=0, payload=pack_call("nope", (), {}), actor_id="b",
                              actor_role="call", incarnation=0))
    assert missing.ename == "ActorDiedError"


def test_worker_runs_threaded_calls_concurrently_with_output_per_call(monkeypatch, tmp_path):
    import real_cluster.worker as worker
    table = ActorTable()
    monkeypatch.setattr(worker, "ACTORS", table)
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
    try:
        table.delete("o")
    finally:
        import real_cluster.worker_actors as wa
        if wa._routers is not None:         # leave this process's streams as they were
            import sys
            sys.stdout, sys.stderr = wa._routers[0].fallback, wa._routers[1].fallback
        wa._routers, wa._want_routers = None, False
