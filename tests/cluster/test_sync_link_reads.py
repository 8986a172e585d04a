"""SyncLink's reads that must not wait (a worker's check for a cancel before each queued task, worker.py): they poll
the socket first, and return what has arrived, [] when nothing has, and fail clearly once the peer or we closed."""

from __future__ import annotations

import socket

import pytest

from real_cluster import protocol as proto
from real_cluster.error import ConnectionFailed
from real_cluster.messages import CancelTask, Heartbeat, to_wire
from real_cluster.sync_link import SyncLink

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def pair():
    ours, theirs = socket.socketpair()          # (blocking, as a worker's direct link is)
    link = SyncLink(ours)
    yield link, theirs
    link.close()
    theirs.close()


def _frames(*msgs: object) -> bytes:
    return b"".join(proto.encode_frame(*to_wire(m)) for m in msgs)


def test_a_read_that_must_not_wait_returns_nothing_then_everything_that_came(pair):
    link, peer = pair
    assert link.recv_many(block=False) == []
    assert link.recv_many(block=False) == []            # (the poll is made once and kept)
    sent = [CancelTask(task_id="t", attempt=0), Heartbeat()]
    peer.sendall(_frames(*sent))
    assert link.recv_many(block=False) == sent
    assert link.recv_many(block=False) == []


def test_half_a_frame_waits_for_the_rest_without_blocking(pair):
    link, peer = pair
    frame = _frames(CancelTask(task_id="t", attempt=3))
    peer.sendall(frame[:5])
    assert link.recv_many(block=False) == []
    peer.sendall(frame[5:])
    assert link.recv_many(block=False) == [CancelTask(task_id="t", attempt=3)]


def test_a_caller_told_the_socket_is_readable_reads_at_once(pair):
    link, peer = pair
    peer.sendall(_frames(Heartbeat()))
    assert link.recv_many(block=False, ready=True) == [Heartbeat()]


def test_a_peer_that_closed_and_a_link_we_closed_both_fail_clearly(pair):
    link, peer = pair
    peer.close()
    with pytest.raises(ConnectionFailed, match="closed the connection"):
        link.recv_many(block=False)
    link.close()
    with pytest.raises(ConnectionFailed, match="receive failed"):
        link.recv_many(block=False)
