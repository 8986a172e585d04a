"""bench_live's harness (the benchmark itself is never timed here): within a run every peer is up at once and the
peers take turns workload by workload in an alternating order, each turn with this process's heap collected and
frozen; every started peer is stopped, also when another fails to start; a ratio is the median of the runs' ratios;
a burst's CPU leaves out the other peers' process trees. The peers here run tasks inline in this process (the
real peers are run by test_bench_cli.py and test_bench_byvalue.py)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from concurrent.futures import Future

import pytest

from _wait import wait_until
from sched_lab.apps.bench import live
from sched_lab.apps.bench.live import Sizes, bench_peers, descendants_cpu_s, table_rows
from sched_lab.apps.bench.live_peers import MODES, Peer

TINY = Sizes(roundtrips=3, burst=4, map_items=6, sleep_tasks=2, lognormal_tasks=2, lognormal_mean_s=0.001)


class InlinePeer(Peer):
    """Runs each task inline; logs its starts and stops."""

    def __init__(self, name: str, log: list, fail_start: bool = False):
        self.name, self.log, self.fail_start = name, log, fail_start

    def start(self) -> None:
        self.log.append(("start", self.name))
        if self.fail_start:
            raise RuntimeError(f"{self.name} would not start")

    def stop(self) -> None:
        self.log.append(("stop", self.name))

    def apply_sync(self, f, *args):
        return f(*args)

    def apply_async(self, f, *args):
        fut: Future = Future()
        fut.set_result(f(*args))
        return fut

    def wait_all(self, futures) -> None:
        for fut in futures:
            fut.result()

    def map(self, f, seq, chunksize, fns):
        return [f(x) for x in seq]


def _logged_workloads(log: list) -> list:
    def wrap(work):
        def run(peer, sizes, fns, ctx):
            log.append((work.__name__, peer.name, gc.get_freeze_count() > 0))
            return work(peer, sizes, fns, ctx)
        return run
    return [wrap(w) for w in live.WORKLOADS]


def test_peers_are_all_up_in_a_run_and_take_turns_workload_by_workload(monkeypatch) -> None:
    log: list = []
    names = [w.__name__ for w in live.WORKLOADS]
    monkeypatch.setattr(live, "WORKLOADS", _logged_workloads(log))
    peers = [InlinePeer("sched-lab", log), InlinePeer("ProcessPoolExecutor", log)]
    out = bench_peers(peers, TINY, 2, 0.001, [0.001, 0.002], MODES)
    n_turns = len(names) * len(MODES) * 2
    assert len(log) == 2 * (4 + n_turns)
    for i, run in enumerate((log[:len(log) // 2], log[len(log) // 2:])):
        assert run[:2] == [("start", "sched-lab"), ("start", "ProcessPoolExecutor")]
        assert run[-2:] == [("stop", "sched-lab"), ("stop", "ProcessPoolExecutor")]
        turns = run[2:-2]
        assert all(frozen for _, _, frozen in turns)            # each turn ran on a frozen heap
        for w, name in enumerate(names):
            mine = turns[w * 4:(w + 1) * 4]                      # 2 modes x 2 peers, then the next workload
            assert {t[0] for t in mine} == {name}
            first = "sched-lab" if (i + w) % 2 == 0 else "ProcessPoolExecutor"
            assert mine[0][1] == first and mine[1][1] != first   # both peers, then both again (the other mode)
    assert gc.get_freeze_count() == 0
    for mode in MODES:
        ours = out[mode]["sched-lab"]
        assert len(ours["runs"]) == 2 and set(ours["ratio"]) == {"ProcessPoolExecutor"}
        assert ours["ratio"]["ProcessPoolExecutor"]["map_c1_n"] == 1.0
        assert "ratio" not in out[mode]["ProcessPoolExecutor"]


def test_every_started_peer_is_stopped_when_another_fails_to_start() -> None:
    log: list = []
    peers = [InlinePeer("sched-lab", log), InlinePeer("ProcessPoolExecutor", log, fail_start=True)]
    with pytest.raises(RuntimeError, match="would not start"):
        bench_peers(peers, TINY, 1, 0.001, [0.001])
    assert log == [("start", "sched-lab"), ("start", "ProcessPoolExecutor"), ("stop", "sched-lab")]


def test_a_ratio_is_the_median_of_the_runs_ratios_and_judges_the_goal() -> None:
    ours = [{"rt_median_ms": 2.0}, {"rt_median_ms": 6.0}, {"rt_median_ms": 1.1}]
    ppe = [{"rt_median_ms": 1.0}, {"rt_median_ms": 2.0}, {"rt_median_ms": 1.0}]
    summary = live._summary("sched-lab", ours, {"sched-lab": ours, "ProcessPoolExecutor": ppe})
    assert summary["ratio"]["ProcessPoolExecutor"]["rt_median_ms"] == 2.0       # runs: 2, 3, 1.1
    assert summary["median"]["rt_median_ms"] / 1.0 == 2.0 and ours[1]["rt_median_ms"] / ppe[1]["rt_median_ms"] == 3
    results = {"sched-lab": {"median": {"rt_median_ms": 1.0}, "ratio": {"ProcessPoolExecutor": {"rt_median_ms": 1.1}}},
               "ProcessPoolExecutor": {"median": {"rt_median_ms": 1.0}}}
    _, rows = table_rows(results)
    row = next(r for r in rows if r[0].startswith("apply_sync round trip, median"))
    assert row[3] == "1.10" and row[-2:] == ["≤ 1.2× PPE", "yes"]
    results["sched-lab"]["ratio"]["ProcessPoolExecutor"]["rt_median_ms"] = 1.3      # medians equal, paired ratio not
    row = next(r for r in table_rows(results)[1] if r[0].startswith("apply_sync round trip, median"))
    assert row[3] == "1.30" and row[-1] == "no"


def test_a_burst_leaves_out_the_other_peers_process_trees() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"])
    grandchildren: list[int] = []
    try:
        def both_up() -> bool:              # the child and its own child
            tree = descendants_cpu_s()
            grandchildren[:] = [p for p in tree if p != child.pid and _ppid(p) == child.pid]
            return child.pid in tree and bool(grandchildren)

        wait_until(both_up, 30, "the child's child to start", interval_s=0.05)
        left = descendants_cpu_s({child.pid})
        assert child.pid not in left and not set(grandchildren) & set(left)
    finally:
        for pid in (*grandchildren, child.pid):
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        child.wait(10)


def _ppid(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            data = fh.read()
    except OSError:
        return -1
    return int(data[data.rindex(")") + 2:].split()[1])
