"""A worker's direct link (worker.py, worker_slot.py): tasks go straight from the controller to the worker and back,
so a task completes while its nanny is stopped (for less than the liveness timeout), over the controller's Unix
socket when it is on this host; after the worker is killed,
the fresh worker attaches again and the same engine serves straight on; an answer lost with the link (the nanny
never saw the task end) counts as the worker's death after the liveness timeout, retries apply; with hwm 2 a task
queued behind a running one can still be aborted before it starts, and all the others arrive (more of the queue on
the worker: test_direct_queue_live.py); a profile deeper than a socket address allows still gets the local socket.
The shared TaskSlot's reads are consistent snapshots. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from _wait import direct_links_attached, mark_pid, pids

from real_cluster.error import EngineError, TaskAborted
from real_cluster.worker_slot import TaskSlot

pytestmark = pytest.mark.timeout(120)
FAST_HB = ["--hb-period", "0.2", "--hb-misses", "5"]       # an engine silent for 1 s is lost


def _wait_until(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def _mark_and_sleep(marker, seconds):
    import time
    mark_pid(marker)
    time.sleep(seconds)


def _cut_my_direct_link(marker, times=1):
    """Shut down this worker's own connection to the controller (the task keeps running) in its first `times` runs."""
    import os
    import socket
    import time
    with open(marker, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    with open(marker) as fh:
        if len(fh.read().split()) > times:
            return 0
    cut = 0
    for fd in map(int, os.listdir("/proc/self/fd")):
        try:
            s = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        try:                    # TCP, or the controller's Unix socket (not the nanny's unnamed socket pair)
            if s.type == socket.SOCK_STREAM and (s.family in (socket.AF_INET, socket.AF_INET6)
                                                 or (s.family == socket.AF_UNIX and s.getpeername())):
                s.shutdown(socket.SHUT_RDWR)
                cut += 1
        except OSError:
            pass
        finally:
            s.close()
    time.sleep(0.2)
    return cut


def _stopped(pid: int):
    """A context: `pid` SIGSTOPped inside, always continued after."""
    class _Ctx:
        def __enter__(self):
            os.kill(pid, signal.SIGSTOP)

        def __exit__(self, *exc):
            os.kill(pid, signal.SIGCONT)
    return _Ctx()


def test_a_task_completes_while_its_nanny_is_stopped_and_a_new_worker_attaches_again(make_cluster):
    cluster = make_cluster(1)                                  # liveness 5 s: a 2 s stop is no death
    rc = cluster.client
    v = rc.load_balanced_view()
    _wait_until(lambda: direct_links_attached(cluster) == 1, 15, "the worker to attach its direct link")
    worker, nanny = v.apply_sync(pids)
    with _stopped(nanny):
        assert v.apply_async(pids).get(2.0) == (worker, nanny)    # through the nanny it would wait for SIGCONT
    os.kill(worker, signal.SIGKILL)
    _wait_until(lambda: direct_links_attached(cluster) == 2, 15, "the fresh worker to attach")
    new_worker, same_nanny = v.apply_sync(pids)
    assert new_worker != worker and same_nanny == nanny
    with _stopped(nanny):
        assert v.apply_async(pids).get(2.0) == (new_worker, nanny)
    assert rc.ids == [0]                                       # the same engine all along
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert log.count("its worker attached a direct link from a local socket") == 2      # the Unix socket, not TCP


def test_an_answer_lost_with_the_direct_link_counts_as_the_workers_death(make_cluster, tmp_path):
    cluster = make_cluster(1, controller_args=FAST_HB)
    rc = cluster.client
    v = rc.load_balanced_view()
    _wait_until(lambda: direct_links_attached(cluster) == 1, 15, "the worker to attach its direct link")
    marker = tmp_path / "runs"
    with v.temp_flags(retries=1):
        ar = v.apply_async(_cut_my_direct_link, str(marker))
    assert ar.get(30) == 0                         # the retry's run (its link was not cut again)
    runs = marker.read_text().split()
    assert len(runs) == 2 and len(set(runs)) == 1  # the same worker, twice: it never died, its answer was lost
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "counted as the worker's death" in log
    _wait_until(lambda: direct_links_attached(cluster) == 2, 15, "the worker to attach again by itself")
    marker.unlink()
    with v.temp_flags(retries=0):
        lost = v.apply_async(_cut_my_direct_link, str(marker))
    with pytest.raises(EngineError, match="connection closed"):
        lost.get(30)
    assert v.apply_sync(abs, -3) == 3 and rc.ids == [0]


def test_a_task_queued_behind_a_running_one_can_be_aborted_and_all_others_arrive(make_cluster, tmp_path):
    cluster = make_cluster(1, hwm=2)
    rc = cluster.client
    v = rc.load_balanced_view()
    _wait_until(lambda: direct_links_attached(cluster) == 1, 15, "the worker to attach its direct link")
    marker, started = tmp_path / "runs", tmp_path / "started"
    first = v.apply_async(_mark_and_sleep, str(started), 1.0)  # straight to the worker
    _wait_until(started.exists, 15, "the first task to start")
    second = v.apply_async(mark_pid, str(marker))              # queued on the worker behind the first
    assert rc.abort(second) == 1
    with pytest.raises(TaskAborted):
        second.get(10)
    assert first.get(10) is None
    assert len(started.read_text().split()) == 1
    results = [v.apply_async(abs, -i) for i in range(50)]
    assert [ar.get(30) for ar in results] == list(range(50))
    assert not Path(marker).exists()                           # the aborted one never ran


def test_the_task_slot_reads_what_the_worker_wrote_and_wakes_the_nanny_once():
    nanny = TaskSlot()
    worker = TaskSlot(fd=os.dup(nanny.fd))
    assert nanny.running() is None
    worker.started("t1", 2, 1.5, 100.0, 7.0)
    run = nanny.running()
    assert (run.task_id, run.attempt, run.time_limit_s, run.started_at, run.started_mono) == ("t1", 2, 1.5, 100.0, 7.0)
    assert worker.ended() is False and nanny.running() is None
    worker.started("t2", 0, None, 1.0, 1.0)
    nanny.ask_wakeup()
    assert nanny.running().time_limit_s is None
    worker.started("t3", 0, None, 1.0, 1.0)                    # the nanny's request survives a new start
    assert worker.ended() is True and worker.ended() is False
    worker.started("x" * 10_000, 1, None, 1.0, 1.0)            # a long id is cut, never overflows the page
    assert nanny.running().task_id == "x" * len(nanny.running().task_id) and len(nanny.running().task_id) > 1000
    nanny.close_fd()
    worker.close_fd()


def test_attaching_to_an_unknown_engine_or_with_the_client_key_closes_only_that_connection(make_cluster):
    from real_cluster.error import AuthenticationError, ConnectionFailed
    from real_cluster.messages import AttachWorker
    from real_cluster.profile import CLIENT_FILE, ENGINE_FILE, read_connection_file
    from real_cluster.sync_link import SyncLink
    cluster = make_cluster(1)
    rc = cluster.client
    engine = read_connection_file(cluster.dir / "security" / ENGINE_FILE)
    link = SyncLink.connect(engine.host, engine.port, engine.key, "engine")
    try:
        link.send(AttachWorker(uuid="no-such-engine"))
        with pytest.raises(ConnectionFailed):
            link.recv()                                        # the controller closed it
    finally:
        link.close()
    client = read_connection_file(cluster.dir / "security" / CLIENT_FILE)
    with pytest.raises(AuthenticationError):                   # the client key does not open the engine role
        SyncLink.connect(client.host, client.port, client.key, "engine")
    link = SyncLink.connect(client.host, client.port, client.key, "client")
    try:
        link.send(AttachWorker(uuid="whatever"))               # a client cannot attach either
        with pytest.raises(ConnectionFailed):
            for _ in range(10):                                # (a client is told the engine ids first)
                link.recv()
    finally:
        link.close()
    assert rc.load_balanced_view().apply_sync(abs, -2) == 2 and rc.ids == [0]
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "no engine with uuid 'no-such-engine'" in log


def test_a_profile_path_too_long_for_a_socket_address_still_gets_the_local_socket(make_cluster):
    cluster = make_cluster(1, profile="long-" + "p" * 100)
    sock_path = cluster.dir / "security" / "controller.sock"
    assert len(os.fsencode(str(sock_path))) > 107 and sock_path.exists()      # (bound through /proc/self/fd)
    _wait_until(lambda: direct_links_attached(cluster) == 1, 15, "the worker to attach its direct link")
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "its worker attached a direct link from a local socket" in log and "not listening on" not in log
    assert cluster.client.load_balanced_view().apply_sync(abs, -4) == 4
