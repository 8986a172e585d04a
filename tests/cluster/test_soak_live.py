"""A bounded soak (about 30 s; `SCHED_LAB_SOAK_S` changes it): four clients at once mixing bursts of
small tasks, chunked maps, failing tasks and purges, while a chaos thread SIGKILLs an engine every couple of
seconds and starts a replacement. Every answer is right (or the expected error), no task is recorded twice
for one attempt or beyond 1 + retries attempts, the controller's memory stays bounded (sampled, printed),
and every process started is gone at the end."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter

import pytest

from _chaos import replace_an_engine, stop_everything

from real_cluster import Client
from real_cluster.error import RemoteError
from real_cluster.profile import CLIENT_FILE

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SOAK_S = float(os.environ.get("SCHED_LAB_SOAK_S", "30"))
RETRIES = 3


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _boom(x):
    raise ValueError(f"boom {x}")


def _client_loop(i: int, rc: Client, deadline: float, ids: list[str], errors: list[BaseException]) -> None:
    rng = random.Random(i)
    v = rc.load_balanced_view(retries=RETRIES)
    done: list[str] = []
    n = 0
    try:
        while time.monotonic() < deadline:
            n += 1
            kind = rng.choice(("burst", "map", "fail", "purge"))
            if kind == "burst":
                ars = [v.apply_async(pow, k, 2) for k in range(50)]
                assert [a.get(60) for a in ars] == [k * k for k in range(50)]
                done += [m for a in ars for m in a.msg_ids]
            elif kind == "map":
                ar = v.map_async(lambda x: x + 1, range(2000), chunksize=rng.choice((50, 200, 1000)))
                assert ar.get(60) == list(range(1, 2001))
                done += ar.msg_ids
            elif kind == "fail":
                with v.temp_flags(retries=0):
                    ar = v.apply_async(_boom, n)
                try:
                    ar.get(60)
                except RemoteError as exc:      # ValueError, or EngineError if chaos hit its engine
                    assert exc.ename in ("ValueError", "EngineError"), exc
                else:
                    raise AssertionError("a failing task succeeded")
                done += ar.msg_ids
            elif done:
                rc.purge_results(done)
                ids += done
                done = []
        ids += done
    except BaseException as exc:        # reported by the main thread
        errors.append(exc)


def test_soak_mixed_load_with_engine_kills(make_cluster):
    cluster = make_cluster(6)
    pid = cluster.controller.pid
    base = _rss_mb(pid)
    path = cluster.dir / "security" / CLIENT_FILE
    clients = [Client(path, timeout=10) for _ in range(4)]
    deadline = time.monotonic() + SOAK_S
    ids: list[list[str]] = [[] for _ in clients]
    errors: list[BaseException] = []
    started = list(cluster.engines)
    kills = 0
    threads = [threading.Thread(target=_client_loop, args=(i, rc, deadline, ids[i], errors))
               for i, rc in enumerate(clients)]
    samples = []
    try:
        for t in threads:
            t.start()
        chaos = random.Random(99)
        next_kill = time.monotonic() + 2.0
        while any(t.is_alive() for t in threads):
            samples.append(_rss_mb(pid))
            if time.monotonic() >= next_kill and time.monotonic() < deadline - 2:
                started += replace_an_engine(cluster, chaos)
                kills += 1
                next_kill = time.monotonic() + 2.5
            alive = [t for t in threads if t.is_alive()]
            if alive:
                alive[0].join(0.25)                 # sample and pace the chaos every 250 ms until the load ends
            assert time.monotonic() < deadline + 120, "the soak did not finish"
        for t in threads:
            t.join(10)
        assert not errors, errors
        rc = cluster.client
        all_ids = {t for part in ids for t in part}
        recs = Counter((r.task_id, r.attempt) for r in rc.records())
        assert max(recs.values()) == 1                                   # never twice in one attempt
        assert max(a for _, a in recs) <= RETRIES
        ok = Counter(t for (t, _a) in recs if t in all_ids)
        assert set(ok) == all_ids                                        # every task has its records
        rc.purge_results("all")
        after = _rss_mb(pid)
        print(f"\nsoak {SOAK_S:.0f} s: {len(all_ids)} tasks, {kills} engines killed; controller RSS start "
              f"{base:.0f} MiB, peak {max(samples):.0f} MiB, after purge {after:.0f} MiB")
        assert max(samples) - base < 300
        assert kills >= 3
    finally:
        stop_everything(cluster, clients, started)
