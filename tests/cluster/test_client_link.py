"""The client's connection (client_link.py) on a live cluster: submissions written by many threads at once
arrive whole and each gets its own result; closing a client fails the work still pending with
ConnectionFailed, ends its reader thread and refuses new work without leaving it outstanding; the
handshake's retry rules (a refused address is not retried); a waiting thread reads its result itself when no other
thread reads (`ClientLink.lead`), handles everyone's messages meanwhile, keeps its timeout, and sees a lost
connection as ConnectionFailed."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from _wait import wait_until

from real_cluster import Client
from real_cluster.client_link import ClientLink
from real_cluster.error import ConnectionFailed
from real_cluster.profile import CLIENT_FILE


def test_threads_submitting_at_once_each_get_their_own_results(rc):
    view = rc.load_balanced_view()
    results: dict[int, list] = {}
    errors: list[BaseException] = []

    def submit(k: int) -> None:
        try:
            ars = [view.apply_async(lambda x: x * 2, k * 1000 + i) for i in range(150)]
            results[k] = [ar.get(60) for ar in ars]
        except BaseException as exc:       # reported below, with the thread's index
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors and not any(t.is_alive() for t in threads)
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


def _own_client(session_cluster) -> Client:
    return Client(session_cluster.dir / "security" / CLIENT_FILE, timeout=10)


def test_a_waiting_thread_reads_its_own_result_when_nobody_else_reads(session_cluster):
    other = _own_client(session_cluster)
    try:
        view = other.load_balanced_view()
        resolved_in: list[str] = []
        for i in range(30):
            ar = view.apply_async(abs, -i)
            ar.add_done_callback(lambda _f: resolved_in.append(threading.current_thread().name))
            assert ar.get(30) == i
        assert len(resolved_in) == 30
        # the first results come through the reader thread; once a waiter has read, it keeps off the socket
        assert threading.current_thread().name in resolved_in[1:]
    finally:
        other.close()


def test_while_one_thread_reads_another_threads_result_and_a_timeout_still_arrive(session_cluster, gate):
    other = _own_client(session_cluster)
    try:
        view = other.load_balanced_view()
        assert view.apply_sync(abs, -1) == 1
        held = gate.hold(view)
        outcome: dict[str, object] = {}

        def wait_held() -> None:
            try:
                outcome["held"] = held.get(60)
            except BaseException as exc:       # reported below
                outcome["held"] = exc

        waiter = threading.Thread(target=wait_held)
        waiter.start()
        wait_until(lambda: other._link._token.locked(), 10, "the waiting thread to read the socket itself")
        t0 = time.monotonic()
        assert view.apply_sync(abs, -7) == 7                   # handled by the thread that reads
        with pytest.raises(TimeoutError):
            gate.hold(view).get(0.3)                           # our deadline holds whoever reads
        assert time.monotonic() - t0 < 10
        gate.open()
        waiter.join(30)
        assert not waiter.is_alive() and outcome["held"] is None
    finally:
        gate.open()
        other.close()


def test_a_thread_reading_for_its_result_sees_the_connection_close(session_cluster, gate):
    other = _own_client(session_cluster)
    try:
        view = other.load_balanced_view()
        assert view.apply_sync(abs, -2) == 2
        held = gate.hold(view)
        outcome: dict[str, BaseException | None] = {}

        def wait_held() -> None:
            try:
                held.get(60)
                outcome["error"] = None
            except BaseException as exc:       # the expected ConnectionFailed, checked below
                outcome["error"] = exc

        waiter = threading.Thread(target=wait_held)
        waiter.start()
        wait_until(lambda: other._link._token.locked(), 10, "the waiting thread to read the socket itself")
        other.close()
        waiter.join(15)
        assert not waiter.is_alive()
        assert isinstance(outcome["error"], ConnectionFailed)
        reader = other._link._reader
        wait_until(lambda: not reader.is_alive(), 10, "the reader thread to end")
    finally:
        gate.open()
        other.close()


def test_waiting_without_reading_after_a_thread_read_still_gets_results(session_cluster):
    """After a waiting thread read the socket (the reader thread keeps off it a while), `Future.result`,
    `concurrent.futures.wait`/`as_completed` and a done-callback still get their results (they have it read)."""
    import concurrent.futures as cf
    other = _own_client(session_cluster)
    try:
        view = other.load_balanced_view()
        for i in range(5):
            assert view.apply_sync(abs, -i) == i                # this thread reads: the reader thread parks
            ar = view.apply_async(abs, -10 - i)
            done, _ = cf.wait([ar], timeout=30)
            assert done == {ar} and ar.result(0) == 10 + i
            assert view.apply_sync(abs, -1) == 1
            assert [f.result() for f in cf.as_completed([view.apply_async(abs, -2)], timeout=30)] == [2]
            assert view.apply_sync(abs, -1) == 1
            called = threading.Event()
            view.apply_async(abs, -3).add_done_callback(lambda _f: called.set())
            assert called.wait(30)
            assert view.apply_async(abs, -4).result(30) == 4
        with pytest.raises(TimeoutError):
            view.apply_async(time.sleep, 0.5).result(0.05)     # a timeout still raises (the builtin's subclass)
    finally:
        other.close()
