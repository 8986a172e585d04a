"""Tasks queued on a worker's direct link (hwm > 1: direct_links.py, worker.py): every plain task goes straight to the
worker, so they run while the nanny is stopped; one still queued there can be aborted before it starts (answered
when the worker gets to it, as ipyparallel's engine does; the worker lives on); when the worker dies, or is killed
for an abort of the task it runs, the tasks queued behind it never started and run once each on the next worker,
none failed, none run twice. Real processes, real sockets."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from _wait import direct_links_attached, mark_pid, pids, started_then_hold, wait_for_file, wait_until

from real_cluster.error import EngineError, TaskAborted

pytestmark = pytest.mark.timeout(120)


def _hold_then_die(started, release):
    """`started_then_hold` (at most 60 s), then end this worker process at once."""
    import os
    started_then_hold(started, release, 60.0)
    os._exit(3)


def _runs(marker: Path) -> list[str]:
    return marker.read_text().split() if marker.exists() else []


def test_with_hwm_above_one_every_plain_task_goes_straight_to_the_worker(make_cluster):
    cluster = make_cluster(1, hwm=3)                          # liveness 5 s: a short stop of the nanny is no death
    rc = cluster.client
    v = rc.load_balanced_view()
    wait_until(lambda: direct_links_attached(cluster) >= 1, 15, "the worker to attach its direct link")
    worker, nanny = v.apply_sync(pids)
    os.kill(nanny, signal.SIGSTOP)
    try:                                                      # through the nanny they would wait for SIGCONT
        results = [v.apply_async(pids) for _ in range(60)]
        assert [ar.get(4.0) for ar in results] == [(worker, nanny)] * 60
    finally:
        os.kill(nanny, signal.SIGCONT)
    zero = make_cluster(2, hwm=0).client.load_balanced_view()
    assert zero.map_sync(abs, range(-300, 0)) == list(range(300, 0, -1))


def test_a_task_queued_on_the_worker_is_aborted_before_it_starts_and_the_worker_lives_on(make_cluster, tmp_path):
    cluster = make_cluster(1, hwm=3)
    rc = cluster.client
    v = rc.load_balanced_view()
    wait_until(lambda: direct_links_attached(cluster) >= 1, 15, "the worker to attach its direct link")
    started, release, marker = tmp_path / "started", tmp_path / "release", tmp_path / "runs"
    first = v.apply_async(started_then_hold, str(started), str(release), 60.0, "first")
    wait_for_file(started, 15)
    second = v.apply_async(mark_pid, str(marker))             # both queued on the worker, behind the first
    third = v.apply_async(mark_pid, str(marker))
    assert rc.abort(second) == 1                              # answered when the worker gets to it, as in
    release.touch()                                           # ipyparallel (the one running holds the worker)
    assert first.get(10) == "first"
    with pytest.raises(TaskAborted, match="before it started"):
        second.get(10)
    holder = int(started.read_text().split()[0])
    assert third.get(10) == holder                            # the same worker: nobody killed it
    assert _runs(marker) == [str(holder)]                     # the aborted one never ran
    assert v.apply_sync(mark_pid, str(marker)) == holder and rc.ids == [0]


@pytest.mark.parametrize("how", ["dies", "aborted"])
def test_the_tasks_queued_behind_a_worker_that_went_away_run_once_each_on_the_next(make_cluster, tmp_path, how):
    cluster = make_cluster(1, hwm=4)
    rc = cluster.client
    v = rc.load_balanced_view()
    wait_until(lambda: direct_links_attached(cluster) >= 1, 15, "the worker to attach its direct link")
    started, release, marker = tmp_path / "started", tmp_path / "release", tmp_path / "runs"
    with v.temp_flags(retries=0):
        first = v.apply_async(_hold_then_die, str(started), str(release))
        wait_for_file(started, 15)
        queued = [v.apply_async(mark_pid, str(marker)) for _ in range(3)]
        wait_until(lambda: rc.queue_status()[0]["tasks"] == 4, 15, "the three sent to the worker behind the first")
        if how == "dies":
            release.touch()                                   # the worker ends itself: the nanny reports it died
            with pytest.raises(EngineError):
                first.get(30)
        else:
            assert rc.abort(first) == 1                       # the nanny kills the worker running it
            with pytest.raises(TaskAborted):
                first.get(30)
        pids = [ar.get(30) for ar in queued]                  # none failed, though its worker is gone
    dead = int(started.read_text().split()[0])
    assert len(set(pids)) == 1 and dead not in pids
    assert sorted(_runs(marker)) == sorted(map(str, pids))    # each ran once
    log = (cluster.dir / "log" / "controller.log").read_text()
    assert "counted as the worker's death" not in log
    assert log.count("never started on the worker that went away; sent again through the nanny") == 3
    assert rc.ids == [0]
