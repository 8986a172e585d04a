"""The controller's event loop (`--loop auto|asyncio|uvloop`, default $SCHED_LAB_CONTROLLER_LOOP else auto): the
choice itself, and a real cluster on each loop running tasks, a failure, a retry after a killed worker, a request
answered from the database, and the loop named in the controller's log. uvloop is in the `test` extra, so the rest
of the live tests run on it (what users of the `fast` extra get); this file keeps the asyncio path live too."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections import Counter

import pytest

from _loops import run_on, until
from _wait import wait_until
from real_cluster.aio_link import Link
from real_cluster.controller_app import LOOP_ENV, loop_factory
from real_cluster.messages import Heartbeat

pytestmark = pytest.mark.timeout(120)


def test_the_loop_choice_is_asyncio_uvloop_or_uvloop_when_installed(monkeypatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("asyncio") is None
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop
    with pytest.raises(ValueError, match="--loop must be one of"):
        loop_factory("trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)         # as if it were not installed
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_a_bad_loop_option_is_a_usage_error(lab_dir) -> None:
    from real_cluster.controller_app import main
    with pytest.raises(SystemExit) as exc:
        main(["--profile", "bad-loop", "--loop", "trio"])
    assert exc.value.code == 2


def _boom() -> None:
    raise ValueError("boom")


def _suicide_once(marker: str) -> int:
    import os
    import signal
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return 7


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_cluster_runs_on_each_loop(make_cluster, loop: str, tmp_path, monkeypatch) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.delenv(LOOP_ENV, raising=False)
    cluster = make_cluster(2, controller_args=["--loop", loop])
    view = cluster.client.load_balanced_view()
    assert view.map_sync(lambda x: x * 2, range(50)) == [x * 2 for x in range(50)]
    assert [view.apply_sync(pow, 2, i) for i in range(20)] == [2 ** i for i in range(20)]
    with pytest.raises(Exception, match="boom"):
        view.apply_sync(_boom)
    marker = str(tmp_path / "died-once")
    assert view.set_flags(retries=1).apply_sync(_suicide_once, marker) == 7    # a worker killed: retried
    rows = cluster.client.db_query({"status": "ok"}, keys=["status"])
    assert len(rows) >= 71
    log = cluster.dir / "log" / "controller.log"
    expected = "uvloop" if loop == "uvloop" else "asyncio"
    wait_until(lambda: f"event loop: {expected}" in log.read_text(), timeout_s=10, what="the loop's log line")


SLICE_FRAMES = 10                   # frames of 17 bytes per slice (limit_reads)


def _most_frames_in_a_turn(loop_name: str, n: int, slow_every: int = 0) -> int:
    """A client's burst of `n` frames, sent in one write to a link reading slices of SLICE_FRAMES frames: the most
    frames handled in one loop turn (turns counted by a call_soon ticker). With `slow_every`, every such frame's
    handler works 1 ms (a slow handler, over aio_link.SLICE_BUDGET_S's 0.3 ms: not a wait for anything)."""
    got: list[int] = []
    tick = [0]

    def handle(link: Link, msg: object) -> None:
        got.append(tick[0])
        if slow_every and len(got) % slow_every == 0:
            time.sleep(0.001)

    async def run(loop: asyncio.AbstractEventLoop) -> None:
        def ticker() -> None:
            tick[0] += 1
            if len(got) < n:
                loop.call_soon(ticker)

        server = Link("k", server=True, on_message=handle, on_ready=lambda link: link.limit_reads(17 * SLICE_FRAMES))
        client = Link("k", server=False, role="client", on_message=lambda link, msg: None)
        a, b = socket.socketpair()
        await loop.connect_accepted_socket(lambda: server, a)
        await loop.connect_accepted_socket(lambda: client, b)
        await until(lambda: server.authenticated and client.authenticated, 10, "the handshake")
        assert len(b"".join(_frames(1))) == 17                   # the slice holds whole frames
        client.transport.write(b"".join(_frames(n)))          # one write: the kernel holds the burst
        loop.call_soon(ticker)
        await until(lambda: len(got) == n, 30, "the burst")
        client.close()
        server.close()

    run_on(loop_name, run)
    assert len(got) == n
    return max(Counter(got).values())


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_sliced_link_reads_one_slice_per_loop_turn_on_either_loop(loop_name: str) -> None:
    """A client's burst is read one slice per loop turn (the engines' replies go between): uvloop would read up to 32
    buffers in a row per wake-up; the link pauses itself after a full slice until the next turn."""
    per_turn = _most_frames_in_a_turn(loop_name, 3000)
    assert per_turn <= SLICE_FRAMES, per_turn


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_slice_cut_short_by_the_time_budget_still_ends_its_turn(loop_name: str) -> None:
    """A slice whose handling ran out of time (aio_link.SLICE_BUDGET_S) is finished at the next turn, and the
    next slice is read a turn after that, not in the same turn: every 7th message here takes 1 ms, so the link
    stashes the rest of its slice many times; still at most one slice is handled per turn (in CI under load a
    stash's rest and a fresh slice were once handled together: 19 in a turn; 14 here before the fix, on uvloop)."""
    per_turn = _most_frames_in_a_turn(loop_name, 1400, slow_every=7)
    assert per_turn <= SLICE_FRAMES, per_turn


def _frames(n: int) -> list[bytes]:
    from real_cluster import protocol as proto
    from real_cluster.messages import to_wire
    return [proto.encode_frame(*to_wire(Heartbeat()))] * n
