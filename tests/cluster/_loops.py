"""Event-loop helpers for tests that drive real_cluster's asyncio Links on real sockets, on either loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest


def loop_named(name: str) -> asyncio.AbstractEventLoop:
    """A new event loop: "uvloop" (skips the test where it is not installed) or "asyncio"."""
    if name == "uvloop":
        return pytest.importorskip("uvloop").new_event_loop()
    return asyncio.new_event_loop()


def run_on(name: str, main: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    """Run `main(loop)` to completion on a new loop named `name`; the loop is always closed."""
    loop = loop_named(name)
    try:
        loop.run_until_complete(main(loop))
    finally:
        loop.close()


async def until(predicate: Callable[[], object], timeout_s: float = 30.0, what: str = "the condition") -> None:
    """Poll `predicate` on the loop until it is true; AssertionError naming `what` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.001)
