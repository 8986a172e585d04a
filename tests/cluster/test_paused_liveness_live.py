"""Engine liveness while the controller does not read engines (more than 64 MiB of results wait for a locked
database): an engine killed during the pause is noticed within the liveness timeout, not when reads resume,
and live engines whose frames wait unread are not declared lost however long the pause lasts. Real
processes, a database locked by another process, the controller's own log."""

from __future__ import annotations

import signal
import time

import pytest
from _marker_db import locked
from _wait import wait_until

pytestmark = pytest.mark.timeout(240)

def _blob(i):
    return bytes([i % 251]) * 1_000_000


def test_engine_death_is_noticed_while_engine_reads_are_paused(make_cluster):
    cluster = make_cluster(3, controller_args=["--hb-period", "0.5", "--hb-misses", "4"])   # lost after 2 s
    rc = cluster.client
    v = rc.load_balanced_view()
    assert v.map_sync(abs, range(-3, 0)) == [3, 2, 1]
    log_path = cluster.dir / "log" / "controller.log"
    with locked(cluster.dir / "tasks.db") as locker:
        with v.temp_flags(retries=1):
            ars = v.map_async(_blob, range(100), chunksize=1)              # 100 MB of results: > 64 MiB wait
        wait_until(lambda: "reading from engines paused" in log_path.read_text(), 60, "engine reads to pause")
        paused_at = time.monotonic()
        victim = cluster.engines[2]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        wait_until(lambda: " lost: " in log_path.read_text(), 10 * 2.0, "the killed engine to be noticed")
        noticed_after = time.monotonic() - paused_at
        time.sleep(max(0.0, 5.0 - (time.monotonic() - paused_at)))      # the pause outlasts the liveness limit
        lost = [line for line in log_path.read_text().splitlines() if " lost: " in line]
        assert len(lost) == 1, lost                                      # the live engines were not declared lost
        assert locker.poll() is None and not ars.ready()                 # still paused: nothing has committed
    values = ars.get(120)
    assert [len(x) for x in values] == [1_000_000] * 100 and [x[0] for x in values] == [i % 251 for i in range(100)]
    print(f"\nkilled engine noticed {noticed_after:.1f} s into the pause (liveness limit 2 s)")
    assert len(rc.ids) == 2


def _nanny_pid():
    import os
    return os.getppid()                      # the worker's parent is its engine's nanny


def test_a_stopped_idle_engine_is_lost_while_reads_are_paused_and_busy_ones_are_not(make_cluster):
    cluster = make_cluster(3, controller_args=["--hb-period", "0.5", "--hb-misses", "4"])   # lost after 2 s
    rc = cluster.client
    by_pid = {p.pid: p for p in cluster.engines}
    nanny_of = {eid: rc.load_balanced_view(targets=eid).apply_sync(_nanny_pid) for eid in rc.ids}
    busy, idle = sorted(rc.ids)[:2], sorted(rc.ids)[2]
    log_path = cluster.dir / "log" / "controller.log"
    stopped = by_pid[nanny_of[idle]]
    with locked(cluster.dir / "tasks.db") as locker:
        try:
            with rc.load_balanced_view(targets=busy).temp_flags(retries=1) as v:
                ars = v.map_async(_blob, range(100), chunksize=1)
            # hung: no heartbeat, no close. Stopped now, while reads still run (the pause comes once 64 MiB of results
            # wait): a heartbeat it sent after the pause began would wait unread, and the kernel's "unread bytes:
            # alive, judged after the pause" (tcp_state.py) would rightly keep it (seen in CI when stopped after)
            stopped.send_signal(signal.SIGSTOP)
            wait_until(lambda: "reading from engines paused" in log_path.read_text(), 60, "engine reads to pause")
            paused_at = time.monotonic()
            wait_until(lambda: f"engine {idle} lost" in log_path.read_text(), 20, "the stopped engine to be noticed")
            noticed_after = time.monotonic() - paused_at
            time.sleep(max(0.0, 5.0 - (time.monotonic() - paused_at)))
            lost = [line for line in log_path.read_text().splitlines() if " lost: " in line]
            assert len(lost) == 1, lost                              # the busy engines behind unread frames: not
            assert locker.poll() is None and not ars.ready()                 # still paused
        finally:
            stopped.send_signal(signal.SIGCONT)
    assert [len(x) for x in ars.get(120)] == [1_000_000] * 100
    print(f"\nstopped idle engine noticed {noticed_after:.1f} s into the pause (liveness limit 2 s)")
