"""An engine is a nanny and a worker (DESIGN §5), end to end on real processes: a task holding the GIL runs
exactly once and its engine stays; a worker killed by os._exit, by SIGKILL, by the memory limit, or stopped
past the liveness timeout fails its task with EngineError and the same engine id serves the next task;
`time_limit` (TimeLimitExceeded, retries apply); abort of a running task; shutdown of a busy engine;
send_signal to the running task; an engine none of whose workers can start fails its tasks and exits."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from real_cluster.error import EngineError, RemoteError, TaskAborted, TimeLimitExceeded
from real_cluster.messages import Heartbeat
from real_cluster.nanny import Nanny, WorkerProc

pytestmark = pytest.mark.timeout(120)
FAST_HB = ["--hb-period", "0.2", "--hb-misses", "5"]       # an engine silent for 1 s is lost


def _wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _mark_and(marker, action, arg=None):
    """Append this worker's pid to `marker`, then do `action` (what a hostile or long task does)."""
    import os
    import time
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    if action == "sleep":
        time.sleep(arg)
    elif action == "exit":
        os._exit(7)
    elif action == "gil":
        return sum(range(arg))              # one C call: holds the GIL throughout
    elif action == "alloc":
        block = bytearray(arg)              # resident: bytearray zero-fills
        time.sleep(30)
        return len(block)
    return os.getpid()


def _runs(marker: Path) -> list[int]:
    return [int(x) for x in marker.read_text().split()] if marker.exists() else []


def _gil_n_for(seconds: float) -> int:
    """How many integers `sum(range(n))` needs to take at least about `seconds` here: timed at its fastest of five
    (a busy neighbour — the suite's other worker — only ever slows a trial, and a slow one made n too small)."""
    n, fastest = 2_000_000, float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        sum(range(n))
        fastest = min(fastest, time.perf_counter() - t0)
    return int(n * seconds / max(fastest, 1e-6))


def _serves_on(view, eid: int) -> int:
    """The pid of the worker now serving engine `eid` (a task pinned there runs)."""
    with view.temp_flags(targets=eid):
        return view.apply_sync(os.getpid)


# --------------------------------------------------------------------------------- worker death

def test_gil_holding_task_runs_once_and_its_engine_stays(make_cluster, tmp_path):
    cluster = make_cluster(1, controller_args=FAST_HB)
    rc = cluster.client
    v = rc.load_balanced_view(retries=1)        # a false death would run it a second time
    marker = tmp_path / "runs"
    n = _gil_n_for(3.0)                         # three times the liveness timeout
    t0 = time.monotonic()
    ar = v.apply_async(_mark_and, str(marker), "gil", n)
    assert ar.get(60) == n * (n - 1) // 2
    assert time.monotonic() - t0 > 1.0          # it did outlast the liveness timeout
    assert len(_runs(marker)) == 1 and rc.ids == [0]
    assert [str(r.outcome) for r in rc.records() if r.task_id == ar.msg_ids[0]] == ["ok"]


@pytest.mark.parametrize("how", ["os._exit", "SIGKILL"])
def test_dead_worker_fails_its_task_with_engine_error_and_the_engine_serves_on(make_cluster, tmp_path, how):
    cluster = make_cluster(1)
    rc = cluster.client
    v = rc.load_balanced_view()
    marker = tmp_path / "runs"
    if how == "os._exit":
        ar = v.apply_async(_mark_and, str(marker), "exit")
    else:
        ar = v.apply_async(_mark_and, str(marker), "sleep", 60)
        _wait_until(lambda: _runs(marker), 15, "the task to start")
        os.kill(_runs(marker)[0], signal.SIGKILL)
    with pytest.raises(EngineError) as info:
        ar.get(15)
    assert "worker" in info.value.evalue and info.value.ename == "EngineError"
    assert rc.ids == [0]                                       # the engine kept its id
    new_pid = _serves_on(v, 0)
    assert new_pid != _runs(marker)[0]                         # ... with a fresh worker
    assert len(_runs(marker)) == 1


def test_dead_worker_with_retries_runs_the_task_again(make_cluster, tmp_path):
    cluster = make_cluster(1)
    v = cluster.client.load_balanced_view(retries=1)
    marker = tmp_path / "runs"

    def exit_first(marker):
        import os
        with open(marker, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        if len(open(marker).read().split()) == 1:
            os._exit(3)
        return "second"

    assert v.apply_sync(exit_first, str(marker)) == "second"
    assert len(_runs(marker)) == 2


def _at_worker_start(tmp_path: Path, monkeypatch, code: str) -> None:
    """Run `code` at the start-up of every worker process started from now on (a sitecustomize on PYTHONPATH)."""
    site = tmp_path / "site"
    site.mkdir()
    body = "".join(f"    {line}\n" for line in code.splitlines())
    (site / "sitecustomize.py").write_text(f"import sys\nif 'real_cluster.worker' in sys.orig_argv:\n{body}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))


def test_an_engine_whose_workers_cannot_start_fails_its_tasks_and_stops(make_cluster, tmp_path, monkeypatch):
    # (before: the nanny started a fresh worker every ~0.4 s forever and the task waited in its queue for good)
    _at_worker_start(tmp_path, monkeypatch, "sys.exit('worker environment broken on purpose (test)')")
    cluster = make_cluster(0)
    rc = cluster.client
    ar = rc.load_balanced_view().apply_async(os.getpid)     # waits for an engine
    engine = cluster.start_engines(1)[0]                   # registers; each of its workers exits at start-up
    with pytest.raises(EngineError) as info:
        ar.get(60)
    assert "3 worker processes in a row ended before they were ready" in info.value.evalue
    assert "exited with status 1" in info.value.evalue
    _wait_until(lambda: engine.poll() is not None, 30, "the engine to exit")
    assert engine.returncode == 1
    _wait_until(lambda: rc.ids == [], 30, "the controller to see the engine go")
    assert "worker environment broken on purpose" in (cluster.dir / "log" / "engines.out").read_text()


def test_an_engine_registers_once_its_worker_can_run_a_task(make_cluster, tmp_path, monkeypatch):
    # (before: the nanny registered while its worker still started, ~0.2 s of imports, and the first task after
    # `Cluster.start()` waited that long; here its worker takes 3 s, so the first task would wait ~3 s)
    _at_worker_start(tmp_path, monkeypatch, "import time\ntime.sleep(3)")
    cluster = make_cluster(1)
    ar = cluster.client.load_balanced_view().apply_async(os.getpid)
    assert ar.get(60) == cluster.client.load_balanced_view().apply_sync(os.getpid)     # (a worker, and the same one)
    waited = (ar.metadata["started"] - ar.metadata["submitted"]).total_seconds()
    assert waited < 1.5, f"the first task waited {waited:.2f} s for its engine's worker"


def _worker(tmp_path: Path, monkeypatch, code: str | None) -> WorkerProc:
    if code is not None:
        _at_worker_start(tmp_path, monkeypatch, code)
    return WorkerProc()


@pytest.mark.parametrize("start, ready, at_least, at_most", [
    (None, True, 0.0, 30.0),                                   # a usual worker: as soon as it said ready
    ("sys.exit('broken on purpose (test)')", False, 0.0, 30.0),     # one that ends at start-up: as soon as it ended
    ("import time\ntime.sleep(60)", False, 1.0, 30.0),         # one that hangs: at the limit (1 s here)
])
def test_the_nanny_waits_for_its_first_worker_before_registering(tmp_path, monkeypatch, start, ready, at_least,
                                                                  at_most):
    w = _worker(tmp_path, monkeypatch, start)
    try:
        t0 = time.monotonic()
        Nanny._await_worker(SimpleNamespace(worker=w), 1.0 if at_least else 60.0)    # type: ignore[arg-type]
        took = time.monotonic() - t0
        assert at_least <= took < at_most
        if ready:
            msgs = w.read()                                    # nothing was read from it: the serve loop reads
            assert msgs and isinstance(msgs[0], Heartbeat)     # its ready Heartbeat
        elif at_least:
            assert w.proc.poll() is None                       # still starting: the engine registers all the same
        else:
            assert w.read() is None                            # it ended: its end of the pair is closed
    finally:
        w.kill()


def test_workers_that_fail_to_start_now_and_then_do_not_stop_their_engine(make_cluster, tmp_path, monkeypatch):
    # starts 1, 2, 4 and 5 fail: never three in a row once a worker in between said ready (the count starts over)
    count = tmp_path / "starts"
    _at_worker_start(tmp_path, monkeypatch,
                     f"with open({str(count)!r}, 'a+') as fh:\n"
                     "    fh.write('x')\n"
                     "    fh.seek(0)\n"
                     "    n = len(fh.read())\n"
                     "if n in (1, 2, 4, 5):\n"
                     "    sys.exit(f'start {n} fails on purpose (test)')")
    cluster = make_cluster(1)
    rc = cluster.client
    v = rc.load_balanced_view()
    first = v.apply_async(os.getpid).get(60)                # the third worker
    with pytest.raises(EngineError):
        v.apply_async(os._exit, 3).get(60)                  # it dies while ready: starts 4 and 5 fail, 6 serves
    assert v.apply_async(os.getpid).get(60) != first
    assert len(count.read_text()) == 6 and rc.ids == [0] and cluster.engines[0].poll() is None


def test_worker_stopped_past_the_liveness_timeout_counts_as_dead(make_cluster, tmp_path):
    cluster = make_cluster(1, controller_args=FAST_HB)
    rc = cluster.client
    v = rc.load_balanced_view()
    marker = tmp_path / "runs"
    ar = v.apply_async(_mark_and, str(marker), "sleep", 60)
    _wait_until(lambda: _runs(marker), 15, "the task to start")
    pid = _runs(marker)[0]
    os.kill(pid, signal.SIGSTOP)
    t0 = time.monotonic()
    try:
        with pytest.raises(EngineError, match="stopped"):
            ar.get(15)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass                                               # killed by its nanny, as it should be
    assert time.monotonic() - t0 < 5 * 1.0                     # liveness 1 s, checked every 0.1 s
    assert rc.ids == [0] and _serves_on(v, 0) != pid


def test_memory_limit_kills_the_worker_and_names_the_limit(make_cluster, tmp_path):
    limit = 150 * 2**20
    cluster = make_cluster(1, memory_limit=limit)
    rc = cluster.client
    v = rc.load_balanced_view()
    with pytest.raises(EngineError, match=f"memory limit of {limit} bytes"):
        v.apply_sync(_mark_and, str(tmp_path / "runs"), "alloc", 300 * 2**20)
    assert rc.ids == [0] and v.apply_sync(len, [1, 2]) == 2


# ------------------------------------------------------------------------------ stopping tasks

def test_time_limit_stops_a_running_task_and_retries_apply(make_cluster, tmp_path):
    cluster = make_cluster(1)
    rc = cluster.client
    v = rc.load_balanced_view(time_limit=0.5, retries=1)
    marker = tmp_path / "runs"
    t0 = time.monotonic()
    ar = v.apply_async(_mark_and, str(marker), "sleep", 1e9)
    with pytest.raises(TimeLimitExceeded) as info:
        ar.get(30)
    assert time.monotonic() - t0 < 5 * 2 * 0.5 + 5              # two attempts of 0.5 s (+ worker restarts)
    assert isinstance(info.value, RemoteError) and info.value.ename == "TimeLimitExceeded"
    assert "0.5 s" in info.value.evalue
    assert len(_runs(marker)) == 2                             # retried once
    assert [str(r.outcome) for r in rc.records() if r.task_id == ar.msg_ids[0]] == ["time_limit", "time_limit"]
    v.set_flags(time_limit=None, retries=0)
    assert v.apply_sync(abs, -2) == 2 and rc.ids == [0]
    with v.temp_flags(time_limit=30):
        assert v.apply_sync(abs, -3) == 3                      # a task within its limit is untouched
    with pytest.raises(ValueError):
        v.set_flags(time_limit=0)


def test_abort_of_a_running_task_stops_it_within_two_seconds(make_cluster, tmp_path):
    cluster = make_cluster(1, hwm=0)
    rc = cluster.client
    v = rc.load_balanced_view(retries=2)                       # an aborted task is not retried
    marker = tmp_path / "runs"
    hung = v.apply_async(_mark_and, str(marker), "sleep", 1e9)
    behind = v.apply_async(abs, -5)                            # queued behind it on the same engine (hwm=0)
    _wait_until(lambda: _runs(marker), 15, "the task to start")
    t0 = time.monotonic()
    assert rc.abort(hung) == 1
    with pytest.raises(TaskAborted):
        hung.get(5)
    assert time.monotonic() - t0 < 2.0
    assert behind.get(15) == 5                                 # not stranded
    assert rc.ids == [0] and len(_runs(marker)) == 1


def test_shutdown_stops_a_busy_engine(make_cluster, tmp_path):
    cluster = make_cluster(2)
    rc = cluster.client
    v = rc.load_balanced_view()
    marker = tmp_path / "runs"
    with v.temp_flags(targets=0):
        hung = v.apply_async(_mark_and, str(marker), "sleep", 1e9)
    _wait_until(lambda: _runs(marker), 15, "the task to start")
    worker_pid = _runs(marker)[0]
    nanny_pid = int(Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    engine = next(p for p in cluster.engines if p.pid == nanny_pid)
    t0 = time.monotonic()
    rc.shutdown(targets=[0], block=True, timeout=10)
    assert time.monotonic() - t0 < 5 and rc.ids == [1]
    with pytest.raises(EngineError):
        hung.get(10)
    _wait_until(lambda: engine.poll() is not None, 10, "the engine process to exit")
    _wait_until(lambda: not Path(f"/proc/{worker_pid}").exists()
                or "Z" in Path(f"/proc/{worker_pid}/stat").read_text().rsplit(")", 1)[1].split()[0],
                10, "its worker to exit")
    assert v.apply_sync(abs, -1) == 1                          # the other engine serves on


def test_send_signal_reaches_a_task_when_the_cluster_was_started_with_sigint_ignored(make_cluster, tmp_path):
    """A cluster started by a process that ignores and blocks SIGINT (a shell's background job, `nohup`): its
    processes inherit both, yet SIGINT still interrupts the running task."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        cluster = make_cluster(1)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        signal.signal(signal.SIGINT, old)
    rc = cluster.client
    marker = tmp_path / "runs"
    ar = rc.load_balanced_view().apply_async(_mark_and, str(marker), "sleep", 60)
    _wait_until(lambda: _runs(marker), 15, "the task to start")
    assert rc.send_signal(signal.SIGINT, targets=[0]) == [0]
    with pytest.raises(RemoteError) as info:
        ar.get(10)
    assert info.value.ename == "KeyboardInterrupt"


def test_send_signal_reaches_the_running_task(make_cluster, tmp_path):
    cluster = make_cluster(1)
    rc = cluster.client
    v = rc.load_balanced_view()
    marker = tmp_path / "runs"
    ar = v.apply_async(_mark_and, str(marker), "sleep", 60)
    _wait_until(lambda: _runs(marker), 15, "the task to start")
    assert rc.send_signal(signal.SIGINT, targets=[0]) == [0]
    with pytest.raises(RemoteError) as info:
        ar.get(10)
    assert info.value.ename == "KeyboardInterrupt"
    assert v.apply_sync(os.getpid) == _runs(marker)[0]         # the same worker serves on
    with pytest.raises(ValueError):
        rc.send_signal(0)
