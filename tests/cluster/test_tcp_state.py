"""tcp_state.verdict on real loopback TCP connections we do not read: a peer that closed, one that sends,
one that is silent with nothing unread, one that is silent behind unread bytes."""

from __future__ import annotations

import socket
import time

import pytest

from real_cluster.tcp_state import verdict

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_INFO"), reason="TCP_INFO is Linux only")


@pytest.fixture
def pair():
    listener = socket.create_server(("127.0.0.1", 0))
    peer = socket.create_connection(listener.getsockname())
    ours, _ = listener.accept()
    listener.close()
    yield ours, peer
    ours.close()
    peer.close()


def _wait_for_unread(sock: socket.socket, n: int) -> None:
    deadline = time.monotonic() + 5
    while len(sock.recv(1 << 16, socket.MSG_PEEK | socket.MSG_DONTWAIT) if _readable(sock) else b"") < n:
        assert time.monotonic() < deadline, "the bytes did not arrive"
        time.sleep(0.01)


def _readable(sock: socket.socket) -> bool:
    import select
    return bool(select.select([sock], [], [], 0)[0])


def test_a_peer_that_sends_is_alive_and_one_that_closed_is_closed(pair):
    ours, peer = pair
    peer.sendall(b"x" * 100)
    _wait_for_unread(ours, 100)
    assert verdict(ours, 1.0) == "alive"
    peer.close()
    deadline = time.monotonic() + 5
    while verdict(ours, 1.0) != "closed":          # unread bytes are still queued: poll sees the FIN anyway
        assert time.monotonic() < deadline, "the close was not seen"
        time.sleep(0.01)


def test_silence_is_the_peers_only_when_nothing_waits_unread(pair):
    ours, peer = pair
    peer.sendall(b"h")
    _wait_for_unread(ours, 1)
    ours.recv(1)                                    # read it all: from now on we have room
    time.sleep(0.3)
    assert verdict(ours, 0.1) == "silent"
    assert verdict(ours, 5.0) == "alive"
    peer.sendall(b"y" * 10)
    _wait_for_unread(ours, 10)
    time.sleep(0.3)
    assert verdict(ours, 0.1) == "alive"            # silent since, but its bytes wait for us: not its silence


def test_no_socket_is_unknown():
    assert verdict(None, 1.0) == "unknown"
