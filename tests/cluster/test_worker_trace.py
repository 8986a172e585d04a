"""The worker's step trace (worker.TRACE_ENV, read by benchmarks/bench_gap.py): with the variable set, each task
leaves its five steps, in order, in a file named after the worker; the task itself cannot see the variable."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from real_cluster import protocol as proto
from real_cluster.messages import Heartbeat, RunTask, TaskDone, from_wire, to_wire
from real_cluster.serialize import pack_call
from real_cluster.worker import TRACE_ENV

pytestmark = pytest.mark.timeout(60)


def test_each_task_leaves_its_steps_in_order(tmp_path):
    mine, theirs = socket.socketpair()
    env = dict(os.environ, **{TRACE_ENV: str(tmp_path)})
    proc = subprocess.Popen([sys.executable, "-m", "real_cluster.worker", "--fd", str(theirs.fileno())],
                            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL)
    theirs.close()
    mine.settimeout(30)
    decoder, pending = proto.FrameDecoder(proto.DEFAULT_LIMITS), []

    def recv():
        while not pending:
            data = mine.recv(1 << 16)
            assert data, "the worker closed its pipe"
            pending.extend(from_wire(h, b) for h, b in decoder.feed(data))
        return pending.pop(0)

    try:
        assert isinstance(recv(), Heartbeat)
        for i in range(3):
            mine.sendall(proto.encode_frame(*to_wire(RunTask(task_id=f"t{i}", attempt=0,
                                                             payload=pack_call(os.environ.get, (TRACE_ENV,), {})))))
            done = recv()
            assert isinstance(done, TaskDone) and done.task_id == f"t{i}" and done.status == "ok"
    finally:
        mine.close()                        # the worker ends (and writes what it holds) when its pipe closes
        proc.wait(20)
    import pickle
    assert pickle.loads(done.result) is None                # the task did not see the variable
    files = list(tmp_path.glob("worker-*.trace"))
    assert [f.name for f in files] == [f"worker-{proc.pid}.trace"]
    steps: dict[str, list[tuple[str, int]]] = {}
    for line in files[0].read_text().splitlines():
        tid, event, ns = line.split()
        steps.setdefault(tid, []).append((event, int(ns)))
    assert sorted(steps) == ["t0", "t1", "t2"]
    for events in steps.values():
        assert [e for e, _ in events] == ["w_wake", "w_decoded", "w_call", "w_return", "w_sent"]
        stamps = [ns for _, ns in events]
        assert stamps == sorted(stamps)
