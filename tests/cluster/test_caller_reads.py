"""A waiting caller reads its own answers (client_link.py, `read_until`) on a live cluster: a loop of apply_sync is
read by the caller, not the reader thread, and nothing changes with caller reads off; Ctrl-C while an answer is
between the socket and its AsyncResult loses nothing, and Ctrl-C while waiting interrupts at once; a wait inside a
done-callback reads on (in the caller and in the reader thread); waits that are not a caller's read (a request's
reply, an unordered imap) do not wait out the reader thread's lease, and a request inside a done-callback is
answered; several threads waiting at once each get their answers; a first engine list that came with the handshake
is handed out."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from _wait import run_threads, wait_until

from real_cluster import Client
from real_cluster import client_link, protocol
from real_cluster.profile import CLIENT_FILE


@pytest.fixture
def own_client(session_cluster):
    """A client of its own (counts from zero), closed at the end."""
    made: list[Client] = []

    def make() -> Client:
        made.append(Client(session_cluster.dir / "security" / CLIENT_FILE, timeout=10))
        return made[-1]
    yield make
    for c in made:
        c.close()


def _parked(rc: Client) -> Client:
    """After a caller's read (the lease running): the reader thread has left the socket to callers. (An answer can
    beat its `get` to the socket on a loaded machine, and the reader thread hand it out: call again then.)"""
    view = rc.load_balanced_view()
    wait_until(lambda: view.apply_sync(abs, -1) == 1 and rc._link.reads[1] > 0, 30, "a caller's own read")
    wait_until(lambda: rc._link.parked, 10, "the reader thread to park")
    return rc


def test_a_loop_of_apply_sync_is_read_by_the_caller(own_client):
    rc = own_client()
    view = rc.load_balanced_view()
    assert [view.apply_sync(abs, -k) for k in range(60)] == list(range(60))
    by_reader, by_callers = rc._link.reads
    assert by_callers >= 30, rc._link.reads


def test_with_caller_reads_off_the_reader_thread_reads_everything(own_client, monkeypatch):
    monkeypatch.setenv("SCHED_LAB_CALLER_READS", "0")
    rc = own_client()
    view = rc.load_balanced_view()
    assert [view.apply_sync(abs, -k) for k in range(30)] == list(range(30))
    assert rc._link.reads[1] == 0


def test_the_engine_list_that_came_with_the_handshake_is_handed_out(own_client):
    rc = own_client()
    assert wait_until(lambda: rc.ids, 10, "the engine list") == [0, 1, 2, 3]


def test_ctrl_c_between_the_socket_and_the_answer_loses_nothing(own_client, monkeypatch):
    """SIGINT lands just after a `recv` took the answer's bytes, before they are decoded: it is raised once they
    are handed out, and the answer is there (without the hold, the bytes are gone and the stream out of step)."""
    assert threading.current_thread() is threading.main_thread()      # (only the main thread gets KeyboardInterrupt)
    monkeypatch.setattr(client_link, "CALLER_LEASE_S", 60.0)           # the reader thread stays parked
    rc = _parked(own_client())
    view = rc.load_balanced_view()
    real_recv_into = protocol.recv_into
    fired = []

    def recv_then_interrupt(sock, scratch, flags=0):
        data = real_recv_into(sock, scratch, flags)
        if data and not fired and threading.current_thread() is threading.main_thread():
            fired.append(len(data))
            signal.raise_signal(signal.SIGINT)      # the user's Ctrl-C, at the worst moment
        return data

    ar = view.apply_async(pow, 3, 4)
    monkeypatch.setattr(protocol, "recv_into", recv_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        ar.get(30)
    monkeypatch.setattr(protocol, "recv_into", real_recv_into)
    assert fired and ar.ready() and ar.get(0) == 81
    assert view.apply_sync(pow, 2, 10) == 1024         # the stream is still in step


def test_ctrl_c_while_waiting_for_an_answer_interrupts_at_once(own_client, gate):
    assert threading.current_thread() is threading.main_thread()
    rc = own_client()
    view = rc.load_balanced_view()
    held = gate.hold(view, value=7)            # runs until the gate opens: get() waits for the socket meanwhile
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))   # as a terminal's Ctrl-C: to the process
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            held.get(60)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 30
    gate.open()
    assert held.get(60) == 7 and view.apply_sync(abs, -2) == 2


def test_a_timeout_in_a_caller_read_leaves_the_client_working(own_client, gate):
    rc = own_client()
    view = rc.load_balanced_view()
    held = gate.hold(view, value=3)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        held.get(0.2)
    assert time.monotonic() - t0 < 10
    gate.open()
    assert held.get(60) == 3 and view.apply_sync(abs, -4) == 4


def test_a_wait_inside_a_done_callback_reads_on(own_client):
    rc = own_client()
    view = rc.load_balanced_view()
    got: list = []

    def nested(_):
        got.append(view.apply_async(abs, -len(got) - 10).get(30))

    first = view.apply_async(abs, -1)
    first.add_done_callback(nested)
    assert first.get(30) == 1 and got == [10]     # handed out by this thread's read: the callback ran here
    second = view.apply_async(abs, -2)
    second.add_done_callback(nested)              # nobody waits: the reader thread hands it out (lease or not)
    wait_until(lambda: len(got) == 2, 30, "the second callback's nested wait")
    assert got == [10, 11] and view.apply_sync(abs, -5) == 5


def test_waits_that_are_not_a_callers_read_do_not_wait_out_the_lease(own_client, monkeypatch):
    """With a lease longer than a request's own 30 s timeout: a request (its reply read by the caller) and an
    unordered imap (concurrent.futures.wait, which the reader thread must serve: `waiting()`) answer at once."""
    monkeypatch.setattr(client_link, "CALLER_LEASE_S", 120.0)
    rc = _parked(own_client())
    t0 = time.monotonic()
    status = rc.queue_status()
    assert "unassigned" in status and time.monotonic() - t0 < 20
    _parked(rc)
    view = rc.load_balanced_view()
    t0 = time.monotonic()
    assert sorted(view.imap(abs, [-1, -2, -3], ordered=False)) == [1, 2, 3]      # (concurrent.futures.wait)
    assert time.monotonic() - t0 < 20


def test_threads_waiting_at_once_each_get_their_answers(own_client):
    rc = own_client()
    view = rc.load_balanced_view()
    results, errors, ended = run_threads(lambda k: [view.apply_async(abs, -(k * 100 + i)).get(60) for i in range(60)],
                                         4, 180)
    assert not errors and ended
    assert results == {k: [k * 100 + i for i in range(60)] for k in range(4)}
    assert rc._link.reads[1] > 0


def test_a_request_inside_a_done_callback_is_answered(own_client):
    """The caller reads a request's reply too: a done-callback handed out by this thread can ask the controller
    (it waited out the request's timeout when only the busy reader thread could read the reply)."""
    rc = own_client()
    view = rc.load_balanced_view()
    statuses: list = []
    ar = view.apply_async(abs, -1)
    ar.add_done_callback(lambda _: statuses.append(rc.queue_status()))
    t0 = time.monotonic()
    assert ar.get(30) == 1
    assert len(statuses) == 1 and "unassigned" in statuses[0] and time.monotonic() - t0 < 20
