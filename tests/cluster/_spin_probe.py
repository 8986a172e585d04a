"""Run by test_client_spin.py in a process of its own: the client's poll asks whether any client of the process has
tasks out, so the tests that need polls to happen start from a process with no earlier clients.

    python _spin_probe.py CONNECTION_FILE CASE      prints one JSON object
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from real_cluster import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))       # tests/: the shared helpers
from _wait import wait_until  # noqa: E402


def _wait_for(predicate, what: str) -> bool:
    """`wait_until` without a pause between tries (a pause past the client's reader lease lets the reader thread
    read the answers a caller's poll is waited for: no poll would ever show); True, or AssertionError at 30 s."""
    return bool(wait_until(predicate, 30, what, interval_s=0))


def loop(conn: str) -> dict:
    with Client(conn, timeout=10) as rc:
        view = rc.load_balanced_view()
        values = [view.apply_sync(abs, -k) for k in range(40)]
        return {"values": values, "spins": rc._link.spins, "caller_reads": rc._link.reads[1]}


def backoff(conn: str) -> dict:
    with Client(conn, timeout=10) as rc:
        link, view, steps = rc._link, rc.load_balanced_view(), []
        for _ in range(3):
            view.apply_sync(time.sleep, 0.3)
            steps.append([list(link.spins), link._spin_skip, link._spin_backoff])
        answered = _wait_for(lambda: view.apply_sync(abs, -1) == 1 and link.spins[0] > 0, "a poll answered")
        return {"steps": steps, "answered": answered, "backoff": link._spin_backoff}


def two_clients(conn: str) -> dict:
    with Client(conn, timeout=10) as first, Client(conn, timeout=10) as second:
        held = first.load_balanced_view().apply_async(time.sleep, 3)
        view = second.load_balanced_view()
        values = [view.apply_sync(abs, -k) for k in range(5)]
        while_held = list(second._link.spins)
        held_out = not held.ready()             # (it was out all along)
        held.get(60)
        alone = _wait_for(lambda: view.apply_sync(abs, -1) == 1 and second._link.spins[0] > 0, "a poll, alone")
        return {"values": values, "while_held": while_held, "held_out_throughout": held_out, "alone": alone}


def _idle(rc: Client) -> bool:
    status = rc.queue_status()
    return status["unassigned"] == 0 and all(v["tasks"] == 0 and v["queue"] == 0 for k, v in status.items()
                                             if k != "unassigned")


def closed_leftover(conn: str) -> dict:
    """A closed client's task, still out when it closed, is answered nowhere: once the controller has run it, it
    does not keep the others from polling."""
    gone = Client(conn, timeout=10)
    gone.load_balanced_view().apply_async(time.sleep, 0.2)
    gone.close()
    with Client(conn, timeout=10) as rc:
        ran = _wait_for(lambda: _idle(rc), "the controller idle")
        view = rc.load_balanced_view()
        values = [view.apply_sync(abs, -k) for k in range(10)]
        return {"values": values, "gone_out": len(gone.outstanding), "spins": rc._link.spins, "ran": ran}


def busy_elsewhere(conn: str, gate_file: str) -> dict:
    """While a task of another process's client runs (until `gate_file` exists), the answers say the controller has
    other tasks in flight: the waits after the first do not poll. Then they do again."""
    import os
    with Client(conn, timeout=10) as rc:
        view = rc.load_balanced_view()
        values = [view.apply_sync(abs, -k) for k in range(10)]
        during = {"spins": list(rc._link.spins), "busy_waits": rc._link.busy_waits}
        open(gate_file, "w").close()
        ran = _wait_for(lambda: _idle(rc), "the controller idle")
        polled = _wait_for(lambda: view.apply_sync(abs, -1) == 1 and rc._link.spins[0] > during["spins"][0],
                           "a poll again")
        return {"values": values, "during": during, "ran": ran, "polled_after": polled, "pid": os.getpid()}


def ctrl_c(conn: str) -> dict:
    """SIGINT (as a terminal's Ctrl-C) while the only task out is waited for with a poll that outlasts it."""
    import os
    import signal
    import threading
    with Client(conn, timeout=10) as rc:
        view = rc.load_balanced_view()
        held = view.apply_async(time.sleep, 2)
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
        t0 = time.monotonic()
        timer.start()
        try:
            held.get(60)
            interrupted = False
        except KeyboardInterrupt:
            interrupted = True
        finally:
            timer.cancel()
        waited = time.monotonic() - t0
        spins = list(rc._link.spins)
        return {"interrupted": interrupted, "waited_s": waited, "spins": spins, "polling": rc._link.spin_s > 0,
                "held": held.get(60), "after": view.apply_sync(abs, -2)}


if __name__ == "__main__":
    print(json.dumps({"loop": loop, "backoff": backoff, "two_clients": two_clients, "ctrl_c": ctrl_c,
                      "closed_leftover": closed_leftover, "busy_elsewhere": busy_elsewhere}[sys.argv[2]](*sys.argv[1:2],
                                                                                                       *sys.argv[3:])))
