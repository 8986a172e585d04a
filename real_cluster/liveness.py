"""The controller's watch over its engines: heartbeats, paused reads while the database catches up, actors' hold.

A mixin of Controller (it needs `config`, `engines`, `scheduler`, `db`, `_engines_paused`, `_held_by_actors` and
`_engine_lost`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from . import tcp_state

log = logging.getLogger("real_cluster.controller")


class Liveness:
    """Controller mixin: the heartbeat monitor, and reading engines paused and resumed (database backpressure)."""

    config: Any
    engines: dict[int, Any]
    scheduler: Any
    db: Any
    _engines_paused: bool
    _held_by_actors: bool

    def _engine_lost(self, eid: int, reason: str) -> None: ...

    async def _heartbeat_monitor(self) -> None:
        limit = self.config.hb_period_s * self.config.hb_misses
        while True:
            await asyncio.sleep(self.config.hb_period_s)
            now = time.monotonic()
            if self._engines_paused:        # we are not reading them (database backpressure): ask the kernel
                self._check_paused_engines(limit)
                continue
            for eng in list(self.engines.values()):
                seen = max(eng.last_seen, eng.link.last_activity)     # bytes of a big frame count as progress
                if now - seen > limit:
                    self._engine_lost(eng.engine_id, f"nothing received for {now - seen:.1f} s")
            try:                            # a diagnostic: it must never stop this liveness loop
                self._check_held_by_actors()
            except Exception:
                log.exception("checking whether actors hold every engine failed")

    def _check_held_by_actors(self) -> None:
        """Warn (once while it lasts) when tasks wait that no engine will have room for until an actor goes: at
        hwm=1 an actor's pinned slot is its engine's only one, so as many actors as engines starve the view."""
        core = self.scheduler
        if not core.actors_hold_every_engine():         # (O(engines) each period; the count once an episode)
            self._held_by_actors = False
        elif not self._held_by_actors:
            held = core.held_by_actors()
            if held:
                log.warning("%d task(s) wait for an engine, but every engine's slots (hwm=%d) are held by actors: "
                            "they run once an actor is killed or dies, or an engine joins (with actors, use hwm 0 or "
                            "more engines than actors)", held, core.hwm)
                self._held_by_actors = True

    def _check_paused_engines(self, limit: float) -> None:
        """While engine reads are paused: one that closed is read again (its end is handled as usual), one the
        kernel heard nothing from though we had room to receive is lost (tcp_state.py)."""
        for eng in list(self.engines.values()):
            transport = eng.link.transport
            if transport is None or transport.is_closing():
                continue
            verdict = tcp_state.verdict(transport.get_extra_info("socket"), limit)
            if verdict == "closed":
                transport.resume_reading()
            elif verdict == "silent":
                self._engine_lost(eng.engine_id, f"nothing received for over {limit:.1f} s (reads were paused, "
                                                 f"but the kernel received nothing either)")

    def _pause_engines(self) -> None:
        """Results arrive faster than the disk takes them: stop reading engines (memory stays bounded)."""
        log.info("task database backlog %d MiB: reading from engines paused until it commits",
                 self.db.queued_bytes >> 20)
        self._engines_paused = True
        self.db.request_commit()
        for eng in self.engines.values():
            for link in (eng.link, eng.direct):
                if link is not None and link.transport is not None and not link.transport.is_closing():
                    link.transport.pause_reading()

    def _resume_engines(self) -> None:
        self._engines_paused = False
        now = time.monotonic()
        for eng in self.engines.values():
            eng.last_seen = max(eng.last_seen, now)      # silence while we did not read is not theirs
            for link in (eng.link, eng.direct):
                if link is not None and link.transport is not None and not link.transport.is_closing():
                    link.transport.resume_reading()

