"""The nanny's report of a worker it stopped leaves in one write: the task that ended as asked, the worker's
replacement and the others that died with it. Sent one by one, the controller could read the first alone, answer the
client, and dispatch that client's next actor call to the instance that was already gone before it read the
replacement (test_actors_live.py::test_abort_of_a_running_call_stops_it_and_its_actor_restarts failed so once in CI,
the call dying with ActorDiedError instead of waiting for the re-created actor)."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from real_cluster import protocol as proto
from real_cluster.messages import TaskDone, WorkerReplaced, from_wire
from real_cluster.nanny import Nanny
from real_cluster.sync_link import SyncLink

pytestmark = pytest.mark.timeout(30)


class _CountedWrites:
    """The nanny's real socket, with its writes counted (a reader cannot tell one write from several)."""

    def __init__(self, sock: socket.socket, writes: list[int]):
        self._sock, self._writes = sock, writes

    def sendall(self, data: bytes) -> None:
        self._writes.append(len(data))
        self._sock.sendall(data)


def test_an_aborted_call_its_workers_replacement_and_the_calls_beside_it_leave_in_one_write():
    mine, controller = socket.socketpair()
    nanny = Nanny.__new__(Nanny)                 # no controller, no worker process: only the reporting is run
    nanny.current = SimpleNamespace(task_id="held", attempt=0, time_limit_s=None)
    nanny.current_started_at, nanny.current_since = 1.0, 1.0
    nanny.side = {("beside", 0): (SimpleNamespace(task_id="beside", attempt=0), None, 2.0)}
    nanny.worker = None
    nanny._replace_worker = lambda: None         # (would start a fresh worker process)
    link = SyncLink(mine)
    writes: list[int] = []
    link.sock = _CountedWrites(mine, writes)
    nanny._end_current(link, "aborted", "TaskAborted", "aborted while running", ("held", 0))
    assert len(writes) == 1, f"the report took {len(writes)} writes"     # (three before)
    controller.settimeout(5)
    data = controller.recv(1 << 20)
    msgs = [from_wire(h, b) for h, b in proto.FrameDecoder(proto.DEFAULT_LIMITS).feed(data)]
    assert [type(m) for m in msgs] == [TaskDone, WorkerReplaced, TaskDone]
    assert (msgs[0].task_id, msgs[0].status) == ("held", "aborted")         # ended as asked, reported first
    assert (msgs[2].task_id, msgs[2].status) == ("beside", "died")
    mine.close()
    controller.close()
