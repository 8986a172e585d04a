"""Synchronisation for live tests: wait on a state the code exposes, with a deadline, never a bare sleep.

`wait_until` polls a predicate in the test process. `started_then_sleep` and `started_then_hold` are task
bodies (shipped to engines by value, see tests/cluster/conftest.py): they create a file when the task
starts, so the test can wait for "this task is running" instead of guessing how long dispatch takes;
`started_then_hold` then runs until the test creates a release file (bounded by `timeout_s`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def run_threads(body: Callable[[int], T], n: int, timeout_s: float) -> tuple[dict[int, T], list[BaseException], bool]:
    """`body(k)` for k in range(n), in n threads at once, each joined within `timeout_s`: (what each returned, by k;
    what they raised; whether every thread ended)."""
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(k: int) -> None:
        try:
            results[k] = body(k)
        except BaseException as exc:        # (returned to the test, which reports it)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)
    return results, errors, not any(t.is_alive() for t in threads)


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str, interval_s: float = 0.02) -> T:
    """Poll `predicate` until it returns something truthy (returned); AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def wait_for_file(path: str | Path, timeout_s: float) -> Path:
    """Wait until `path` exists (e.g. a task's start marker); returns it."""
    p = Path(path)
    return wait_until(lambda: p.exists() and p, timeout_s, f"file {p}")


def started_then_sleep(marker: str, seconds: float, value: object = None) -> object:
    """Task body: create `marker` (the task has started), then sleep `seconds` (the workload); returns `value`."""
    import os
    import time
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    return value


def started_then_hold(marker: str, release: str, timeout_s: float = 60.0, value: object = None) -> object:
    """Task body: create `marker`, then run until `release` exists (at most `timeout_s`); returns `value`."""
    import os
    import time
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    deadline = time.monotonic() + timeout_s
    while not os.path.exists(release) and time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def pids() -> tuple[int, int]:
    """Task body: (the worker's pid, its parent's: the nanny's)."""
    import os
    return os.getpid(), os.getppid()


def mark_pid(marker: str) -> int:
    """Task body: append this worker's pid to `marker` (one line a run); returns it."""
    import os
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    return os.getpid()


def direct_links_attached(cluster) -> int:
    """How many times a worker of `cluster` has attached its direct link (the controller logs each)."""
    log = cluster.dir / "log" / "controller.log"
    return log.read_text().count("its worker attached a direct link") if log.exists() else 0


def run_on_every_engine(rc, timeout_s: float) -> None:
    """Run one trivial task on each of `rc`'s engines and wait for all of them.

    An engine runs its tasks in the order they arrive, so whatever the controller dispatched to an engine
    before this call has finished by the time it returns: the point after which a duplicate run is visible.
    """
    ars = [rc.load_balanced_view(targets=eid).apply_async(int) for eid in rc.ids]
    for ar in ars:
        ar.get(timeout_s)


class Gate:
    """Tasks that run until the test opens the gate (`started_then_hold`): no timing guesses."""

    def __init__(self, path: Path):
        self.path = path
        self.release = str(path / "release")
        self.n = 0

    def hold(self, view, value=None):
        self.n += 1
        return view.apply_async(started_then_hold, str(self.path / f"started-{self.n}"), self.release, 60.0, value)

    def open(self) -> None:
        Path(self.release).touch()
