"""A caller reading its own answers from a controller that misbehaves after a proper handshake (it holds the key): a
malformed frame closes the connection with the reason and wakes nobody forever; half a frame and silence is a
timeout that loses nothing (the rest, when it comes, is handed out whole and in order); a peer that closes in the
middle of a frame closes the connection. Each ends with the reader thread gone or the link still serving, and no
message handed out twice."""

from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from _wait import wait_until

from real_cluster import client_link
from real_cluster import protocol as proto
from real_cluster.client_link import ClientLink
from real_cluster.messages import Auth, EnginesChanged, Hello, Welcome, from_wire, to_wire

KEY = "k" * 64


class FakeController:
    """A listener that runs the real handshake, sends an engine list, then sends whatever the test hands it."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conn: socket.socket | None = None
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        conn.settimeout(30)
        nonce = proto.new_nonce()
        conn.sendall(proto.encode_frame(*to_wire(Hello(nonce=nonce, version=proto.PROTOCOL_VERSION))))
        decoder = proto.FrameDecoder(proto.HANDSHAKE_LIMITS)
        frames: list = []
        while not frames:
            frames = decoder.feed(conn.recv(4096))
        auth = from_wire(*frames[0])
        assert isinstance(auth, Auth)
        proto.check_proof(proto.peer_proof(KEY, auth.role, nonce, auth.nonce), auth.mac)
        conn.sendall(proto.encode_frame(*to_wire(Welcome(mac=proto.server_proof(KEY, auth.role, nonce, auth.nonce)))))
        conn.sendall(proto.encode_frame(*to_wire(EnginesChanged(ids=(0,)))))
        self.conn = conn
        self.ready.set()

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.listener.close()


@pytest.fixture
def peer(monkeypatch):
    monkeypatch.setattr(client_link, "CALLER_LEASE_S", 60.0)      # the reader thread stays parked after a read
    fake = FakeController()
    got: list = []
    closed: list[str] = []
    link = ClientLink.open("127.0.0.1", fake.port, KEY, timeout=10)
    link.start(got.append, closed.append)
    assert fake.ready.wait(10)
    wait_until(lambda: got, 10, "the engine list")
    yield fake, link, got, closed
    link.close(timeout=10)
    fake.close()


def _engines(ids: tuple[int, ...]) -> bytes:
    return proto.encode_frame(*to_wire(EnginesChanged(ids=ids)))


def _read_then(link: ClientLink, act, until, timeout: float) -> bool:
    """A caller's read: `act()` once it is reading (no message waiting yet), until `until()` or `timeout` s."""
    acted = []

    def done() -> bool:
        if not acted:
            acted.append(1)
            act()
        return until()
    return link.read_until(done, time.monotonic() + timeout)


def test_a_malformed_frame_closes_the_link_with_its_reason(peer):
    fake, link, got, closed = peer
    head = b'{"type": nope}'
    bad = struct.pack("!IHB", 3 + len(head), len(head), 0) + head     # a whole frame whose header does not parse
    with pytest.raises(proto.ProtocolError):
        from_wire(*proto.FrameDecoder(proto.RESULT_LIMITS).feed(bad)[0])
    t0 = time.monotonic()
    assert _read_then(link, lambda: fake.send(bad), lambda: False, 60) is False
    assert time.monotonic() - t0 < 30
    wait_until(lambda: closed, 30, "on_close")
    assert "ProtocolError" in closed[0] and link.closed
    wait_until(lambda: not link._reader.is_alive(), 30, "the reader thread to end")
    assert len(got) == 1                        # the engine list only, once


def test_half_a_frame_and_silence_is_a_timeout_and_the_rest_is_handed_out_whole(peer):
    fake, link, got, closed = peer
    frame = _engines((0, 1, 2))
    t0 = time.monotonic()
    assert _read_then(link, lambda: fake.send(frame[:7]), lambda: len(got) > 1, 0.5) is True
    assert len(got) == 1 and not closed and time.monotonic() - t0 < 10
    assert _read_then(link, lambda: fake.send(frame[7:] + _engines((5,))), lambda: len(got) == 3, 30) is True
    assert [m.ids for m in got] == [(0,), (0, 1, 2), (5,)] and not closed


def test_a_peer_that_closes_inside_a_frame_closes_the_link(peer):
    fake, link, got, closed = peer

    def send_half_and_close() -> None:
        fake.send(_engines((0, 1))[:9])
        fake.conn.close()
    assert _read_then(link, send_half_and_close, lambda: False, 60) is False
    wait_until(lambda: closed, 30, "on_close")
    assert "closed" in closed[0] and len(got) == 1
    wait_until(lambda: not link._reader.is_alive(), 30, "the reader thread to end")
