"""A caller waiting for the only task out of its process's clients polls before it sleeps (client_link.py, "A caller
waiting ..."): it polls when that task is the only one out, never with others out (of its client or of another
client of the process); polls that run out back off (1, 2, 4, ... waits sleep at once, up to a cap) and a poll
answered resets that; Ctrl-C during a poll interrupts it and loses nothing; the limit comes from
SCHED_LAB_CLIENT_SPIN_US, and is 0 for a process confined to one CPU."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from real_cluster import Client
from real_cluster import client_link
from real_cluster.profile import CLIENT_FILE


PROBE = Path(__file__).with_name("_spin_probe.py")


@pytest.fixture
def spinning_client(module_cluster, monkeypatch):
    """`make(limit_us)`: a client of its own (counts from zero) whose waits poll up to `limit_us`; closed at the end."""
    made: list[Client] = []

    def make(limit_us: int) -> Client:
        monkeypatch.setenv(client_link.SPIN_ENV, str(limit_us))
        made.append(Client(module_cluster.dir / "security" / CLIENT_FILE, timeout=10))
        assert made[-1]._link.spin_s == limit_us / 1e6
        return made[-1]
    yield make
    for c in made:
        c.close()


def _probe(cluster, case: str, limit_us: int, *extra: str) -> dict:
    """`_spin_probe.py CASE` against `cluster`, in a process of its own (no earlier clients there)."""
    env = dict(os.environ, **{client_link.SPIN_ENV: str(limit_us)})
    out = subprocess.run([sys.executable, str(PROBE), str(cluster.dir / "security" / CLIENT_FILE), case, *extra],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_wait_for_the_only_task_out_polls_and_is_answered(module_cluster):
    got = _probe(module_cluster, "loop", 30_000_000)         # (30 s: no poll runs out on a loaded machine)
    assert got["values"] == list(range(40))
    answered, ran_out = got["spins"]
    assert ran_out == 0
    assert answered >= 20, got                      # (an answer the reader thread read first is not waited for)
    assert answered <= got["caller_reads"]          # each poll ended in a caller's read


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


def test_a_poll_that_runs_out_backs_off_and_an_answered_one_resets_that(module_cluster):
    got = _probe(module_cluster, "backoff", 50_000)          # 50 ms; three tasks of 0.3 s
    assert got["steps"] == [[[0, 1], 1, 2],         # the poll ran out: the next wait sleeps at once
                            [[0, 1], 0, 2],         # it did
                            [[0, 2], 2, 4]]         # polled again, ran out again: two waits, then four
    assert got["answered"] and got["backoff"] == 1  # a quick answer met a poll: reset


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


def test_a_poll_cut_short_by_the_wait_s_deadline_does_not_back_off(monkeypatch):
    monkeypatch.setenv(client_link.SPIN_ENV, "5000000")        # 5 s
    a, b = socket.socketpair()
    link = client_link.ClientLink(a)
    try:
        t0 = time.monotonic()
        assert link._spin(t0 + 0.05) is False       # (the deadline: a `get(timeout)`)
        assert time.monotonic() - t0 < 2.5
        assert link.spins == [0, 0] and (link._spin_skip, link._spin_backoff) == (0, 1)
    finally:
        link.close()
        b.close()


def test_a_wait_polls_only_for_the_only_task_of_all_this_process_clients(module_cluster):
    got = _probe(module_cluster, "two_clients", 30_000_000)
    assert got["values"] == list(range(5)) and got["held_out_throughout"]
    assert got["while_held"] == [0, 0]              # another client of the process had a task out: no poll
    assert got["alone"]                             # once it was in, a poll


def test_a_closed_clients_leftover_task_does_not_stop_the_polls(module_cluster):
    got = _probe(module_cluster, "closed_leftover", 30_000_000)
    assert got["values"] == list(range(10)) and got["gone_out"] == 1
    assert got["spins"][0] >= 1 and got["spins"][1] == 0, got     # (some answers a loaded machine's reader thread
    # may read before their caller waits)


def test_answers_sent_while_another_process_has_a_task_in_flight_stop_the_polls(module_cluster, spinning_client,
                                                                                 gate):
    rc = spinning_client(30_000_000)                # this process's client: another process's, to the probe
    held = gate.hold(rc.load_balanced_view(), value=6)          # in flight until the probe opens the gate
    got = _probe(module_cluster, "busy_elsewhere", 30_000_000, gate.release)
    assert got["values"] == list(range(10))
    assert sum(got["during"]["spins"]) <= 1, got    # no poll after an answer (the first wait, before one, may poll)
    assert got["during"]["busy_waits"] >= 1, got    # ... because it said "busy" (a loaded machine's reader thread
    # may read some answers before their caller waits: those waits neither poll nor count)
    assert got["ran"] and got["polled_after"]       # the controller idle again: polls again
    assert held.get(60) == 6


def test_ctrl_c_during_a_poll_interrupts_it_and_loses_nothing(module_cluster):
    got = _probe(module_cluster, "ctrl_c", 60_000_000)      # the whole wait is a poll
    assert got["polling"] and got["interrupted"] and got["waited_s"] < 1.9      # before the task's 2 s were up
    assert got["spins"] == [0, 0]                   # interrupted inside the poll: neither answered nor run out
    assert got["held"] is None and got["after"] == 2     # nothing lost: the answer, and the next round trip


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
