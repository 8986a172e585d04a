"""A sliced link (a client's, at the controller) handles its messages for at most SLICE_BUDGET_S per loop turn: the
rest wait, reading paused, so another connection's message read meanwhile goes between (an engine's report while a
client's burst of submissions arrives: bench_live.py, 1 ms tasks). Real sockets, both event loops; every wait has a
deadline. Each handler below spins 0.1 ms, so one go holds at most 4 of them (after 3 the 0.3 ms budget is spent)
whatever the machine's speed: a slow machine only makes it hold fewer."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from _loops import run_on, until
from real_cluster import aio_link
from real_cluster import protocol as proto
from real_cluster.aio_link import Link
from real_cluster.messages import CancelTask, Heartbeat, to_wire

pytestmark = pytest.mark.timeout(120)

SPIN_S = 0.0001


def _numbered(n: int) -> bytes:
    return b"".join(proto.encode_frame(*to_wire(CancelTask(task_id=str(i), attempt=0))) for i in range(n))


def _spin() -> None:
    end = time.perf_counter() + SPIN_S
    while time.perf_counter() < end:
        pass


class _Pair:
    """A server-side sliced Link and a client Link over a real socket pair (the server's messages land in `got`)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_message, slice_bytes: int = 8192) -> None:
        self.loop, self.slice_bytes, self.on_message = loop, slice_bytes, on_message
        self.closed: list[str] = []

    async def open(self, role: str = "client") -> tuple[Link, Link]:
        server = Link("k", server=True, on_message=self.on_message,
                      on_ready=lambda link: link.limit_reads(self.slice_bytes) if role == "client" else None,
                      on_close=lambda link, reason: self.closed.append(reason))
        peer = Link("k", server=False, role=role, on_message=lambda link, msg: None)
        a, b = socket.socketpair()
        await self.loop.connect_accepted_socket(lambda: server, a)
        await self.loop.connect_accepted_socket(lambda: peer, b)
        await until(lambda: server.authenticated and peer.authenticated, 10)
        return server, peer


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_a_slow_burst_is_handled_a_budget_per_turn_in_order_and_another_link_goes_between(loop_name: str) -> None:
    n = 600
    got: list[tuple[str, int]] = []             # (message, loop turn)
    tick = [0]

    def on_message(link: Link, msg) -> None:
        if isinstance(msg, CancelTask):
            _spin()
            got.append((msg.task_id, tick[0]))
        else:
            got.append(("engine", tick[0]))

    async def run(loop: asyncio.AbstractEventLoop) -> None:
        def ticker() -> None:
            tick[0] += 1
            if len(got) < n + 1:
                loop.call_soon(ticker)

        pair = _Pair(loop, on_message)
        server, client = await pair.open("client")
        eng_server, engine = await pair.open("engine")
        client.transport.write(_numbered(n))        # one write: ~18 KB, more than two 8 KiB slices
        loop.call_soon(ticker)
        await until(lambda: len(got) >= 20)        # the burst is being handled ...
        engine.transport.write(proto.encode_frame(*to_wire(Heartbeat())))      # ... when the engine reports
        await until(lambda: len(got) == n + 1)
        for link in (client, server, engine, eng_server):
            link.close()

    run_on(loop_name, run)
    burst = [(m, t) for m, t in got if m != "engine"]
    assert [m for m, _ in burst] == [str(i) for i in range(n)]         # all, in order
    turns = [t for _, t in burst]
    per_turn = max(turns.count(t) for t in set(turns))
    assert per_turn <= 8, per_turn      # 4 in the turn's I/O phase, 4 in its callbacks (the ticker's place among
                                        # them varies); 8 KiB slices alone would allow ~270 a turn
    at = [m for m, _ in got].index("engine")
    assert at < n - 100, f"the engine's message waited for {at} of the {n} burst messages"


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_the_owner_cannot_resume_reading_while_messages_wait(loop_name: str) -> None:
    n = 100                                     # (~4.8 KB: one 8 KiB slice reads them all)
    got: list[str] = []
    checks: list[bool] = []

    async def run(loop: asyncio.AbstractEventLoop) -> None:
        pair = _Pair(loop, lambda link, msg: (_spin(), got.append(msg.task_id)))
        server, client = await pair.open("client")
        server.reads_held = True                # the owner holds reads (memory caps) ...
        client.transport.write(_numbered(n))
        await until(lambda: len(got) >= 1)
        checks.append(server._stash is not None and not server.transport.is_reading())
        server.release_reads()                  # ... and lets go while messages wait: reading stays paused
        checks.append(not server.transport.is_reading() and len(got) < n)
        await until(lambda: server._stash is None and server.transport.is_reading())
        for link in (client, server):
            link.close()

    run_on(loop_name, run)
    assert checks == [True, True], checks
    assert got == [str(i) for i in range(n)]


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_messages_waiting_when_the_connection_ends_are_handled_before_its_end(loop_name: str) -> None:
    n = 100                                     # (one read: what was read whole is handled, nothing else)
    got: list[str] = []
    at_close: list[int] = []

    async def run(loop: asyncio.AbstractEventLoop) -> None:
        pair = _Pair(loop, lambda link, msg: (_spin(), got.append(msg.task_id)))
        server, client = await pair.open("client")
        server._on_close = lambda link, reason: at_close.append(len(got))
        client.transport.write(_numbered(n))
        await until(lambda: len(got) >= 1)
        waiting = server._stash is not None
        client.transport.abort()                # the peer is gone: the server's next write fails, its end comes
        await asyncio.sleep(0.01)
        server.send(Heartbeat())
        server.flush()
        await until(lambda: bool(at_close))
        at_close.append(int(waiting))

    run_on(loop_name, run)
    assert at_close[-1] == 1                    # messages were waiting when the peer went
    assert at_close[0] == n                     # ... and all were handled before the close was reported
    assert got == [str(i) for i in range(n)]


def test_the_budget_is_small_beside_a_1_ms_task() -> None:
    assert 0 < aio_link.SLICE_BUDGET_S <= 0.001
