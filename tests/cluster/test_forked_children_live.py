"""Forked processes: a task's child must not keep its dead worker's connections alive, and a process forked from a
client must not use or close the parent's connection or cluster.

Before, a child a task forked held the worker's pipe to its nanny (and its direct link to the controller): the
nanny saw the worker die only when the child ended too, and the engine ran nothing meanwhile. Now the nanny watches
the worker's pidfd as well as its pipe; a child forked by Python lets go of the worker's connections at once
(worker.py); a program a task starts inherits neither. A child forked by a C library keeps the direct link open
(nothing runs in it to let go): the tasks queued behind the dead one go to the next worker on the nanny's report
all the same — that case also reads the report before the link's end, which once counted the first queued task as
another death. In every case they run once each, while the child lives on. A child of the client's process finds
its copies of the client's connections closed (client_link.py) and its Cluster stops nothing. Real processes, real
sockets; every child is stopped at the end, pass or fail."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from _wait import direct_links_attached, mark_pid, started_then_hold, wait_for_file, wait_until

from real_cluster.error import ConnectionFailed, EngineError
from real_cluster.profile import pid_alive

pytestmark = pytest.mark.timeout(120)


def _leave_a_child_then_die(how, child_pid_file, go, release):
    """Start a child that lives until `release` exists (`how`: "fork", a C "cfork" that runs no at-fork handlers,
    or "exec"), write its pid, wait for `go`, then end this worker process at once."""
    import ctypes
    import os
    import subprocess
    import sys
    import time
    if how == "exec":
        wait = f"import os, time\nwhile not os.path.exists({release!r}): time.sleep(0.02)"
        pid = subprocess.Popen([sys.executable, "-c", wait], close_fds=False).pid
    else:
        libc = ctypes.PyDLL(None)
        pid = os.fork() if how == "fork" else libc.fork()
        if pid == 0:                        # (libc calls only: a C fork leaves Python's state as it was)
            for _ in range(3000):
                if libc.access(release.encode(), 0) == 0:
                    break
                libc.usleep(20000)
            libc._exit(0)
    with open(child_pid_file + ".tmp", "w") as fh:
        fh.write(str(pid))
    os.rename(child_pid_file + ".tmp", child_pid_file)
    deadline = time.monotonic() + 60
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.01)
    os._exit(3)


def _sockets_of(pid: int) -> list[str]:
    """The sockets among `pid`'s open descriptors. One closed between the listing and its readlink is skipped: an
    exec'd child still starting up opens and closes files (an inherited socket would stay open)."""
    links = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            links.append(os.readlink(fd))
        except FileNotFoundError:
            continue
    return [link for link in links if link.startswith("socket:")]


@pytest.mark.parametrize("how", ["fork", "cfork", "exec"])
def test_a_worker_that_dies_leaving_a_child_is_reported_at_once_and_its_queue_runs_once(make_cluster, tmp_path, how):
    cluster = make_cluster(1, hwm=4)
    rc = cluster.client
    v = rc.load_balanced_view()
    wait_until(lambda: direct_links_attached(cluster) >= 1, 15, "the worker to attach its direct link")
    child_pid_file, go, release, marker = (tmp_path / n for n in ("child", "go", "release", "runs"))
    child = None
    try:
        with v.temp_flags(retries=0):
            first = v.apply_async(_leave_a_child_then_die, how, str(child_pid_file), str(go), str(release))
            child = int(wait_for_file(child_pid_file, 15).read_text())
            queued = [v.apply_async(mark_pid, str(marker)) for _ in range(3)]
            wait_until(lambda: rc.queue_status()[0]["tasks"] == 4, 15, "the three sent to the worker behind the first")
            if how == "exec":
                assert _sockets_of(child) == []             # a program a task starts gets none of the worker's
            go.touch()
            with pytest.raises(EngineError, match="exited with status 3"):
                first.get(30)                               # reported while the child lives on
            pids = [ar.get(30) for ar in queued]            # (the C fork's child holds the direct link open)
            assert pid_alive(child)
        assert len(set(pids)) == 1                          # each once, on the next worker
        assert sorted(marker.read_text().split()) == sorted(map(str, pids))
        log = (cluster.dir / "log" / "controller.log").read_text()
        assert "counted as the worker's death" not in log
        assert log.count("never started on the worker that went away; sent again through the nanny") == 3
        assert v.apply_sync(mark_pid, str(marker)) == pids[0] and rc.ids == [0]
    finally:
        release.touch()
        if child is not None:
            _stop(child)


def _stop(pid: int) -> None:
    """A child told to end (its release exists): killed if it has not ended within 5 s."""
    try:
        wait_until(lambda: not pid_alive(pid), 5, "the child to end")
    except AssertionError:
        os.kill(pid, signal.SIGKILL)


def _exit_code(pid: int, timeout_s: float = 30) -> int | None:
    """A forked child's exit code once it has ended; None if it had not within `timeout_s` (it is killed then)."""
    deadline = time.monotonic() + timeout_s
    while (ended := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    if ended[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return None
    return os.waitstatus_to_exitcode(ended[1])


def test_a_process_forked_from_the_client_leaves_the_parents_connection_and_cluster_alone(make_cluster):
    """The child's copies of the client and the Cluster are closed at the fork: using them raises, saying why;
    closing them (explicitly, a `with` block left, the garbage collector) shuts nothing of the parent's down."""
    cluster = make_cluster(1)
    rc = cluster.client
    v = rc.load_balanced_view()
    assert v.apply_sync(abs, -1) == 1
    pid = os.fork()
    if pid == 0:                                            # the child: never back into pytest
        code = 3
        try:
            try:
                v.apply_sync(abs, -2)
                code = 1
            except ConnectionFailed as exc:
                code = 0 if "create a Client of its own here" in str(exc) else 2
            rc.close()
            cluster.stop()
        finally:
            os._exit(code)
    assert _exit_code(pid) == 0                             # 1: it was served, 2: wrong message
    assert v.apply_sync(abs, -3) == 3 and rc.ids == [0]
    assert cluster.controller is not None and cluster.controller.poll() is None


def test_a_result_pending_at_the_fork_raises_in_the_child_and_arrives_in_the_parent(make_cluster, tmp_path):
    """In a process forked from the client, waiting for a result still pending at the fork — `get()`, `wait()`,
    `result()`, `exception()`, iterating a map, the client's `wait()`, all without a timeout — raises
    ConnectionFailed at once (it is answered to the parent only: before, the child waited forever); a result done
    before the fork is still there, and a submission raises too. The fork happens while another thread holds the
    results', the client's and its function cache's locks (as the reader thread, or another submitting thread, may):
    the child, where that thread does not exist, is not stuck on them. The parent gets both pending results once
    their tasks end."""
    cluster = make_cluster(2)
    rc = cluster.client
    v = rc.load_balanced_view()
    done = v.apply_async(abs, -1)
    assert done.get(30) == 1
    marker, release = str(tmp_path / "started"), str(tmp_path / "release")
    pending = v.apply_async(started_then_hold, marker, release, 60, "late")
    amr = v.map_async(started_then_hold, [marker] * 2, [release] * 2, [60] * 2, [1, 2])
    holding, let_go = threading.Event(), threading.Event()

    def hold() -> None:             # (`pending` as the reader thread has it while delivering its result: out of the
        with pending._cond, amr._cond, rc._lock, rc.functions._lock:       # waiting ones, its condition held)
            waiting = rc._waiters.pop(pending.msg_ids[0])
            rc._delivering = waiting
            holding.set()
            let_go.wait(60)
            rc._waiters[pending.msg_ids[0]] = waiting
            rc._delivering = None
    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert holding.wait(10)
    pid = os.fork()
    if pid == 0:                                            # the child: never back into pytest
        code = 3
        try:
            raised = 0
            for call in (pending.get, pending.wait, pending.result, pending.exception, lambda: list(amr),
                         lambda: next(iter(amr)), amr.get, rc.wait):
                try:
                    call()
                except ConnectionFailed as exc:
                    raised += "delivered there, not here" in str(exc) and "Client of its own" in str(exc)
            try:
                v.apply_async(lambda: None)         # (shipped by value: packed under the function cache's lock)
            except ConnectionFailed as exc:
                raised += "Client of its own" in str(exc)
            code = 0 if raised == 9 and done.get() == 1 and done.result() == 1 and pending.ready() is False else 1
        finally:
            os._exit(code)
    let_go.set()
    holder.join(10)
    assert _exit_code(pid) == 0         # 1: a wait returned or said otherwise; None: it hung (without the fix)
    Path(release).touch()
    assert pending.get(30) == "late" and amr.get(30) == [1, 2] and rc.wait(timeout=30)
