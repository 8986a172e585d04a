"""The client's connection (client_link.py) on a live cluster: submissions written by many threads at once
arrive whole and each gets its own result; closing a client fails the work still pending with
ConnectionFailed, ends its reader thread and refuses new work without leaving it outstanding; the
handshake's retry rules (a refused address is not retried)."""

from __future__ import annotations

import array
import fcntl
import logging
import socket
import termios
import threading
import time

import pytest

from _wait import run_threads, wait_until

from real_cluster import Client
from real_cluster.client_link import ClientLink
from real_cluster.error import ConnectionFailed
from real_cluster.profile import CLIENT_FILE


def test_threads_submitting_at_once_each_get_their_own_results(rc):
    view = rc.load_balanced_view()

    def submit(k: int) -> list:
        ars = [view.apply_async(lambda x: x * 2, k * 1000 + i) for i in range(150)]
        return [ar.get(60) for ar in ars]

    results, errors, ended = run_threads(submit, 8, 120)
    assert not errors and ended
    assert results == {k: [2 * (k * 1000 + i) for i in range(150)] for k in range(8)}


def test_closing_fails_pending_work_ends_the_reader_and_refuses_new_work(session_cluster, gate):
    other = Client(session_cluster.dir / "security" / CLIENT_FILE, timeout=10)
    try:
        view = other.load_balanced_view()
        assert view.apply_sync(abs, -3) == 3
        held = gate.hold(view)                 # runs until the gate opens: still pending when we close
        reader = other._link._reader
        assert reader is not None and reader.is_alive()
        t0 = time.monotonic()
        other.close()
        with pytest.raises(ConnectionFailed):
            held.get(10)
        assert time.monotonic() - t0 < 8
        wait_until(lambda: not reader.is_alive(), 10, "the reader thread to end")
        before = set(other.outstanding)
        with pytest.raises(ConnectionFailed):
            view.apply_async(abs, -1)
        assert set(other.outstanding) == before       # nothing left waiting for an answer that cannot come
    finally:
        gate.open()
        other.close()


def test_a_refused_address_fails_at_once_and_is_not_retried():
    with socket.socket() as s:                 # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectionFailed, match="cannot connect"):
        ClientLink.open("127.0.0.1", port, "0" * 64, timeout=10)
    assert time.monotonic() - t0 < 5


def test_closing_a_tls_client_with_results_unread_reads_no_ciphertext_as_frames(make_cluster, gate, caplog):
    """`close` while the reader is busy and results wait in the kernel's buffer: the reader must not go on reading
    the raw socket (SSLSocket.shutdown drops the SSL object; the ciphertext's first record header then read as a
    frame length: "ProtocolError: frame of 386073344 bytes exceeds the limit", logged at every such close)."""
    cluster = make_cluster(1, controller_args=["--tls"])
    rc = Client(cluster.dir / "security" / CLIENT_FILE, timeout=10)
    try:
        assert rc._link._tls
        view = rc.load_balanced_view()
        in_callback, resume = threading.Event(), threading.Event()
        held = gate.hold(view)
        held.add_done_callback(lambda _: (in_callback.set(), resume.wait(60)))    # runs in the reader thread
        gate.open()
        assert in_callback.wait(60)                 # the reader is busy now: what comes next stays unread
        pending = [view.apply_async(abs, -k) for k in range(200)]
        fd, unread = rc._link.sock.fileno(), array.array("i", [0])

        def kernel_holds_bytes() -> bool:
            fcntl.ioctl(fd, termios.FIONREAD, unread)
            return unread[0] > 0
        wait_until(kernel_holds_bytes, 60, "results waiting unread in the kernel's buffer")
        caplog.set_level(logging.WARNING, logger="real_cluster.client")
        rc._link.close("client closed", timeout=0)     # shut down while the reader is still in the callback
        resume.set()
        reader = rc._link._reader
        wait_until(lambda: not reader.is_alive(), 30, "the reader thread to end")
        assert not [r.getMessage() for r in caplog.records if "ProtocolError" in r.getMessage()]
        with pytest.raises(ConnectionFailed, match="client closed"):
            pending[-1].get(10)
    finally:
        resume.set()
        rc.close()
