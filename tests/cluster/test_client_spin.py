"""A caller waiting for the only task out of its process's clients polls before it sleeps (client_link.py, "A caller
waiting ..."): it polls when that task is the only one out, never with others out (of its client or of another
client of the process); polls that run out back off (1, 2, 4, ... waits sleep at once, up to a cap) and a poll
answered resets that; Ctrl-C during a poll interrupts it and loses nothing; the limit comes from
SCHED_LAB_CLIENT_SPIN_US, and is 0 for a process confined to one CPU."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from _wait import wait_until

from real_cluster import Client
from real_cluster import client_link
from real_cluster.profile import CLIENT_FILE


@pytest.fixture
def spinning_client(session_cluster, monkeypatch):
    """`make(limit_us)`: a client of its own (counts from zero) whose waits poll up to `limit_us`; closed at the end."""
    made: list[Client] = []

    def make(limit_us: int) -> Client:
        monkeypatch.setenv(client_link.SPIN_ENV, str(limit_us))
        made.append(Client(session_cluster.dir / "security" / CLIENT_FILE, timeout=10))
        assert made[-1]._link.spin_s == limit_us / 1e6
        return made[-1]
    yield make
    for c in made:
        c.close()


def test_a_wait_for_the_only_task_out_polls_and_is_answered(spinning_client):
    rc = spinning_client(30_000_000)               # (30 s: no poll runs out on a loaded machine)
    view = rc.load_balanced_view()
    assert [view.apply_sync(abs, -k) for k in range(40)] == list(range(40))
    answered, ran_out = rc._link.spins
    assert ran_out == 0
    assert answered >= 20, rc._link.spins          # (an answer the reader thread read first is not waited for)
    assert answered <= rc._link.reads[1]            # each poll ended in a caller's read


def test_a_wait_with_other_tasks_out_never_polls(spinning_client, gate):
    rc = spinning_client(30_000_000)
    view = rc.load_balanced_view()
    held = gate.hold(view, value=5)                 # out until the gate opens
    assert view.apply_sync(abs, -3) == 3            # two out: sleeps at once
    assert view.map_sync(abs, [-1, -2, -3]) == [1, 2, 3]     # a wait for several tasks: never
    ar = view.apply_async(abs, -6)
    assert ar.get(30) == 6
    assert rc._link.spins == [0, 0]
    gate.open()
    assert held.get(60) == 5
    assert rc._link.spins[1] == 0                   # (its own wait: the only task out by then)


def test_a_poll_that_runs_out_backs_off_and_an_answered_one_resets_that(spinning_client):
    rc = spinning_client(50_000)                    # 50 ms
    link = rc._link
    view = rc.load_balanced_view()
    assert view.apply_sync(time.sleep, 0.3) is None     # outlasts the poll
    assert link.spins == [0, 1] and (link._spin_skip, link._spin_backoff) == (1, 2)
    assert view.apply_sync(time.sleep, 0.3) is None     # sleeps at once
    assert link.spins == [0, 1] and link._spin_skip == 0
    assert view.apply_sync(time.sleep, 0.3) is None     # polls again, and runs out again
    assert link.spins == [0, 2] and (link._spin_skip, link._spin_backoff) == (2, 4)
    wait_until(lambda: view.apply_sync(abs, -1) == 1 and link.spins[0] > 0, 30, "a quick answer to a poll")
    assert link._spin_backoff == 1


def test_the_backoff_doubles_up_to_its_cap(monkeypatch):
    """On a real socket that no answer comes to: polls run out at waits 1, 3, 6, 11, ... (each followed by twice the
    last run of waits that sleep at once), then once in every SPIN_BACKOFF_MAX + 1 waits; an answer to the next poll
    resets the backoff."""
    monkeypatch.setenv(client_link.SPIN_ENV, "200")
    a, b = socket.socketpair()
    link = client_link.ClientLink(a)
    try:
        cap = client_link.SPIN_BACKOFF_MAX
        polled = []
        for wait in range(1, 500):
            before = link.spins[1]
            assert link._spin(None) is False
            if link.spins[1] > before:
                polled.append(wait)
        skips, expected = 1, [1]
        while expected[-1] < 500:
            expected.append(expected[-1] + skips + 1)
            skips = min(cap, 2 * skips)
        assert polled == expected[:-1] and link.spins[0] == 0
        while link._spin_skip:                      # up to the next poll, which the answer meets
            assert link._spin(None) is False
        b.sendall(b"x")
        assert link._spin(None) is True
        assert link.spins[0] == 1 and (link._spin_skip, link._spin_backoff) == (0, 1)
    finally:
        link.close()
        b.close()


def test_a_wait_polls_only_for_the_only_task_of_all_this_process_clients(spinning_client, gate):
    first, second = spinning_client(30_000_000), spinning_client(30_000_000)
    held = gate.hold(first.load_balanced_view(), value=4)      # the first client's task, out until the gate opens
    view = second.load_balanced_view()
    assert [view.apply_sync(abs, -k) for k in range(5)] == list(range(5))
    assert second._link.spins == [0, 0]             # another client of this process had a task out
    gate.open()
    assert held.get(60) == 4
    wait_until(lambda: view.apply_sync(abs, -1) == 1 and second._link.spins[0] > 0, 30, "a poll, alone again")


def test_ctrl_c_during_a_poll_interrupts_it_and_loses_nothing(spinning_client, gate):
    assert threading.current_thread() is threading.main_thread()      # (only the main thread gets KeyboardInterrupt)
    rc = spinning_client(60_000_000)                # the whole wait is a poll
    view = rc.load_balanced_view()
    held = gate.hold(view, value=9)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            held.get(60)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 30
    assert rc._link.spins == [0, 0]                 # interrupted inside the poll: neither answered nor run out
    gate.open()
    assert held.get(60) == 9 and view.apply_sync(abs, -2) == 2


def test_the_limit_comes_from_the_environment(monkeypatch, caplog):
    monkeypatch.delenv(client_link.SPIN_ENV, raising=False)
    multi = len(os.sched_getaffinity(0)) > 1
    assert client_link.spin_limit() == (client_link.SPIN_S if multi else 0.0)
    monkeypatch.setenv(client_link.SPIN_ENV, "0")
    assert client_link.spin_limit() == 0.0
    monkeypatch.setenv(client_link.SPIN_ENV, "250")
    assert client_link.spin_limit() == (0.00025 if multi else 0.0)
    monkeypatch.setenv(client_link.SPIN_ENV, "fast")
    with caplog.at_level(logging.WARNING, logger="real_cluster.client"):
        assert client_link.spin_limit() == (client_link.SPIN_S if multi else 0.0)
    assert "SCHED_LAB_CLIENT_SPIN_US='fast' is not a number" in caplog.text


def test_a_process_confined_to_one_cpu_never_polls():
    code = ("import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
            "from real_cluster.client_link import spin_limit; print(spin_limit())")
    env = dict(os.environ, SCHED_LAB_CLIENT_SPIN_US="500")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) == 0.0
