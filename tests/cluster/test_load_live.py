"""Load on a live cluster: 100,000 queued tasks and a 1,000,000-item chunked map (the controller's resident
memory is measured, printed, stays bounded, and purging gives it back: a second round does not grow it),
8 clients submitting at once, and 16 engines on this 2-core machine (some killed mid-run). Every task
ends exactly once per attempt. Figures print with `-s`."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable

import pytest
from _wait import wait_until

from real_cluster import Client
from real_cluster.error import CompositeError
from real_cluster.hub_requests import REQUEST_SLICE
from real_cluster.profile import CLIENT_FILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def test_100k_queued_tasks_bounded_memory_and_purge(make_cluster):
    cluster = make_cluster(0)                                 # no engine yet: everything queues
    rc = cluster.client
    pid = cluster.controller.pid
    base = rss_mb(pid)
    v = rc.load_balanced_view()
    rounds = []
    for _ in range(2):                                        # the second round must reuse what purge freed
        ar = v.map_async(abs, range(100_000), chunksize=1)
        wait_until(lambda: rc.queue_status()["unassigned"] == 100_000, 120, "100,000 queued tasks", interval_s=0.05)
        queued = rss_mb(pid)
        assert rc.abort() == 100_000                          # ids travel as a JSON buffer, not a header
        assert ar.wait(60)
        assert rc.queue_status()["unassigned"] == 0
        t0 = time.monotonic()
        status = rc.result_status(ar.msg_ids)                 # (quadratic once: 97 s for these 100,000 ids)
        assert time.monotonic() - t0 < 10 and len(status["completed"]) == 100_000 and status["pending"] == []
        assert len(rc.hub_history()) == 100_000               # a reply far beyond a header's 64 KiB
        assert rc.purge_results("all") == 100_000
        rounds.append((queued, rss_mb(pid)))
    cluster.start_engines(2)
    rc.wait_for_engines(2, 30)
    assert v.map_sync(abs, range(-50, 0)) == list(range(50, 0, -1))
    print(f"\ncontroller RSS: start {base:.0f} MiB; 100k queued {rounds[0][0]:.0f} MiB, after abort+purge "
          f"{rounds[0][1]:.0f} MiB; second round {rounds[1][0]:.0f} / {rounds[1][1]:.0f} MiB")
    assert rounds[0][0] - base < 600                          # bounded: well under 6 KiB per queued task
    assert rounds[1][0] < rounds[0][0] * 1.15 + 20            # purge freed the first round (core and controller)


def _queue_then_abort_in_a_thread(cluster, n: int):
    """Queue `n` tasks from a client of its own (no engines: all wait), then abort them from a thread. Returns the
    client, its map, the thread and the thread's outcome (filled when the abort returns or raises)."""
    rc = Client(cluster.dir / "security" / CLIENT_FILE, timeout=60)
    ar = rc.load_balanced_view().map_async(abs, range(n), chunksize=1)
    wait_until(lambda: cluster.client.queue_status()["unassigned"] == n, 60, f"{n} queued tasks", interval_s=0.05)
    outcome: dict[str, object] = {}

    def abort() -> None:
        try:
            outcome["aborted"] = rc.abort()
        except Exception as exc:                  # (the connection closed under it: the test says whether it may)
            outcome["error"] = exc
    thread = threading.Thread(target=abort, daemon=True)
    thread.start()
    return rc, ar, thread, outcome


def _falls_a_slice_at_a_time(thread: threading.Thread, count: Callable[[], int], n: int) -> None:
    """Ask another client's `count()` back to back while `thread`'s big request runs: some answer comes between
    its slices (strictly between n and 0), and the count only falls."""
    seen = []
    while thread.is_alive():
        seen.append(count())
    thread.join(60)
    assert any(0 < c < n for c in seen), f"no answer between the slices: {sorted(set(seen))[:5]}"
    assert seen == sorted(seen, reverse=True)


def test_a_big_abort_goes_a_slice_at_a_time_and_others_are_served_meanwhile(make_cluster):
    cluster = make_cluster(0)
    other = cluster.client                      # another client: its requests are answered between the slices
    n = 10 * REQUEST_SLICE
    rc, ar, thread, outcome = _queue_then_abort_in_a_thread(cluster, n)
    _falls_a_slice_at_a_time(thread, lambda: other.queue_status()["unassigned"], n)
    assert outcome == {"aborted": n}
    assert other.queue_status()["unassigned"] == 0
    assert ar.wait(30)
    with pytest.raises(CompositeError) as info:
        ar.get(1)
    assert len(info.value.elist) == n and {e[0] for e in info.value.elist} == {"TaskAborted"}
    assert len(other.db_query({"ename": "TaskAborted"}, ["msg_id"])) == n
    rc.close()


def test_a_big_purge_goes_a_slice_at_a_time_and_others_are_served_meanwhile(make_cluster):
    cluster = make_cluster(0)
    other = cluster.client
    n = 10 * REQUEST_SLICE
    rc, ar, thread, outcome = _queue_then_abort_in_a_thread(cluster, n)
    thread.join(60)
    assert outcome == {"aborted": n} and ar.wait(30)
    purged: list[int] = []
    purger = threading.Thread(target=lambda: purged.append(rc.purge_results("all")), daemon=True)
    purger.start()
    _falls_a_slice_at_a_time(purger, lambda: len(other.hub_history()), n)     # the rows left
    assert purged == [n] and other.hub_history() == []
    rc.close()


def test_a_client_that_leaves_during_its_big_abort_loses_no_task(make_cluster):
    cluster = make_cluster(0)
    other = cluster.client
    n = 10 * REQUEST_SLICE
    rc, ar, thread, outcome = _queue_then_abort_in_a_thread(cluster, n)
    wait_until(lambda: 0 < other.queue_status()["unassigned"] < n, 60, "the abort under way")
    rc.close()                                  # the reply has nowhere to go: the slices go on without it
    thread.join(60)
    assert not thread.is_alive() and "aborted" not in outcome
    wait_until(lambda: other.queue_status()["unassigned"] == 0, 60, "every slice aborted")
    assert len(other.db_query({"ename": "TaskAborted"}, ["msg_id"])) == n
    cluster.start_engines(1)                    # and the controller serves on
    other.wait_for_engines(1, 30)
    assert other.load_balanced_view().apply_sync(abs, -3) == 3


def test_a_resubmit_of_several_slices_gets_every_result_even_those_ahead_of_its_reply(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    n = 3 * REQUEST_SLICE + 1                   # four slices: the first ones run while the last are resubmitted
    first = rc.load_balanced_view().map_async(abs, range(-n, 0), chunksize=1)
    assert first.get(120) == list(range(n, 0, -1))
    again = rc.resubmit(first.msg_ids)
    assert again.get(120) == [[v] for v in range(n, 0, -1)]     # (a map's tasks each answer their chunk)
    assert not set(again.msg_ids) & set(first.msg_ids) and len(set(again.msg_ids)) == n
    assert all(md["submitted"] is not None for md in again.metadata)


def test_get_result_of_many_large_results_loads_only_what_its_client_has_room_for(make_cluster):
    cluster = make_cluster(2)
    pid = cluster.controller.pid
    n, size = 40, 8 << 20                       # 320 MiB of results; a client is sent 16 MiB ahead at most
    ar = cluster.client.load_balanced_view().map_async(lambda i: bytes([i]) * size, range(n), chunksize=1)
    assert [len(r) for r in ar.get(120)] == [size] * n
    with Client(cluster.dir / "security" / CLIENT_FILE, timeout=60) as other:
        base = peak = rss_mb(pid)
        fetched = other.get_result(ar.msg_ids, owner=False, block=False)
        while not fetched.ready():
            peak = max(peak, rss_mb(pid))
            fetched.wait(0.01)                  # sample every 10 ms until every result arrived
        assert fetched.get(1) == [[bytes([i]) * size] for i in range(n)]     # (each task answers its chunk)
    print(f"\ncontroller RSS while another client fetched {n} results of {size >> 20} MiB: {base:.0f} -> peak "
          f"{peak:.0f} MiB")
    assert peak - base < 160                    # (all at once: +304 MiB, measured)


def test_million_item_map_with_chunksize(make_cluster):
    cluster = make_cluster(2)
    rc = cluster.client
    pid = cluster.controller.pid
    base = rss_mb(pid)
    v = rc.load_balanced_view()
    data = list(range(1_000_000))
    peaks = []
    for _ in range(2):
        t0 = time.monotonic()
        ar = v.map_async(lambda x: 2 * x + 1, data, chunksize=20_000)
        peak = 0.0
        while not ar.ready():
            peak = max(peak, rss_mb(pid))
            ar.wait(0.05)                                     # sample every 50 ms until the map is done
        out = ar.get(1)
        elapsed = time.monotonic() - t0
        assert len(out) == 1_000_000 and out[0] == 1 and out[-1] == 1_999_999 and sum(out) == 1_000_000 ** 2
        done = rss_mb(pid)
        assert rc.purge_results("all") == 50
        peaks.append((peak, done, rss_mb(pid), elapsed))
        del out, ar
    print(f"\ncontroller RSS: start {base:.0f} MiB; 1M-item map (50 chunks) peak {peaks[0][0]:.0f} MiB, done "
          f"{peaks[0][1]:.0f}, after purge {peaks[0][2]:.0f}; second map peak {peaks[1][0]:.0f}, after purge "
          f"{peaks[1][2]:.0f} MiB; {peaks[0][3]:.1f} s and {peaks[1][3]:.1f} s")
    assert peaks[0][0] - base < 300
    assert peaks[1][2] < peaks[0][2] * 1.15 + 20


def test_eight_clients_submitting_at_once(make_cluster):
    cluster = make_cluster(4, db="memory")
    path = cluster.dir / "security" / CLIENT_FILE
    clients = [Client(path, timeout=10) for _ in range(8)]
    start = threading.Barrier(8)
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def work(i: int, rc: Client) -> None:
        try:
            v = rc.load_balanced_view()
            start.wait(10)
            singles = [v.apply_async(pow, i, k) for k in range(150)]
            mapped = v.map_async(lambda x, i=i: (i, x), range(300), chunksize=7)
            results[i] = ([s.get(60) for s in singles], mapped.get(60),
                          [m for s in singles for m in s.msg_ids] + mapped.msg_ids)
        except BaseException as exc:     # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i, rc)) for i, rc in enumerate(clients)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors
        all_ids = []
        for i in range(8):
            singles, mapped, ids = results[i]
            assert singles == [i ** k for k in range(150)]
            assert mapped == [(i, x) for x in range(300)]
            all_ids += ids
        assert len(set(all_ids)) == 8 * (150 + 43)
        recs = Counter((r.task_id, r.attempt) for r in cluster.client.records())
        assert all(recs[(t, 0)] == 1 for t in all_ids) and max(recs.values()) == 1
    finally:
        for rc in clients:
            rc.close()


def _pid_after(seconds):
    import os
    import time
    time.sleep(seconds)
    return os.getppid()          # the engine (nanny) process; the task runs in its worker


def test_sixteen_engines_on_two_cores_with_kills(make_cluster):
    cluster = make_cluster(16, db="memory")
    rc = cluster.client
    v = rc.load_balanced_view(retries=2)
    pids = {p.pid for p in cluster.engines}
    first = v.map_sync(_pid_after, [0.05] * 64)
    assert set(first) == pids                                  # with hwm=1 every engine takes work
    ar = v.map_async(_pid_after, [0.01] * 800)
    wait_until(lambda: ar.progress >= 32, 30, "the map to be running on every engine")   # kill it mid-run
    victims = cluster.engines[:2]
    for p in victims:
        p.send_signal(signal.SIGKILL)
    for p in victims:
        p.wait(5)
    out = ar.get(90)
    assert len(out) == 800 and set(out) <= pids
    wait_until(lambda: len(rc.ids) == 14, 10, "14 engines left")
    recs = Counter((r.task_id, r.attempt) for r in rc.records())
    assert max(recs.values()) == 1
    ok = Counter(r.task_id for r in rc.records() if str(r.outcome) == "ok")
    assert all(ok[t] == 1 for t in ar.msg_ids)                 # each task succeeded exactly once
