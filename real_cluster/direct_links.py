"""The controller's side of workers' direct links (worker.py): attach, and what a closed one leaves behind.

How this works. A worker connects with the engine key and sends `AttachWorker(uuid)`; its connection is
bound to the registered engine with that uuid (`EngineConn.direct`). The controller sends a task over it
when its engine has nothing else out (the attempt is kept in `EngineConn.direct_task`), and the answer comes
back the same way; everything else goes through the nanny. When a direct link closes, the attempt it carried
is the nanny's to report (it saw its worker die, or killed it: abort, time limit, memory limit); if no report
came within the liveness time, the attempt counts as the worker's death (WorkerDied: retries apply).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sched_lab.core import WorkerDied

from . import protocol as proto
from .aio_link import Link
from .messages import AttachWorker
from .task_table import EngineConn

log = logging.getLogger("real_cluster.controller")


class WorkerLink:
    """`Link.state` of a worker's direct connection (worker.py): tasks for `eng` go straight to its worker."""

    __slots__ = ("eng",)

    def __init__(self, eng: EngineConn):
        self.eng = eng


class DirectLinks:
    """Controller mixin: needs `engines`, `config` (hb_period_s, hb_misses), `feed` and `_engines_paused`."""

    engines: dict[int, EngineConn]
    config: Any
    _engines_paused: bool

    def feed(self, event: Any) -> None: ...

    def _attach(self, link: Link, msg: AttachWorker) -> None:
        """A worker's own connection: tasks for its engine go straight to it from now on (worker.py)."""
        eng = next((e for e in self.engines.values() if e.uuid == msg.uuid), None)
        if eng is None:
            raise proto.ProtocolError(f"no engine with uuid {msg.uuid[:64]!r} to attach a worker to")
        old, eng.direct = eng.direct, link
        link.state = WorkerLink(eng)
        if old is not None:
            old.close("replaced by a newer direct link")
        if self._engines_paused and link.transport is not None:     # database backpressure applies to it too
            link.transport.pause_reading()
        log.info("engine %d: its worker attached a direct link from %s", eng.engine_id, link.peer)

    def _nanny_reported(self, eng: EngineConn, msg: Any) -> None:
        """A nanny's TaskDone: if it killed or lost its worker, that worker's direct link is dead even if its
        close has not been read yet, so nothing more (a retry of this very task) may go over it."""
        if msg.status in ("died", "time_limit") or (msg.status == "aborted" and msg.started_at is not None):
            link, eng.direct = eng.direct, None
            if link is not None:
                link.close(f"its worker is gone ({msg.status})")

    def _direct_closed(self, link: Link, reason: str) -> None:
        """A worker's direct link closed. The attempt it carried is the nanny's to report (it saw the worker die or
        killed it); if no report came within the liveness time, it counts as the worker's death (retries apply)."""
        eng = link.state.eng
        if eng.direct is link:
            eng.direct = None
        sent = eng.direct_task
        if sent is not None and sent in eng.given and self.engines.get(eng.engine_id) is eng:
            delay = self.config.hb_period_s * self.config.hb_misses
            asyncio.get_running_loop().call_later(delay, self._direct_orphan, eng, sent, reason)

    def _direct_orphan(self, eng: EngineConn, sent: tuple[str, int], reason: str) -> None:
        if self.engines.get(eng.engine_id) is not eng or sent not in eng.given:
            return                          # reported meanwhile, or the engine was lost (the core has it)
        eng.given.discard(sent)
        if eng.direct_task == sent:
            eng.direct_task = None
        log.warning("engine %d: task %s attempt %d was on its worker's direct link, which closed (%s), and the "
                    "nanny never reported it: counted as the worker's death", eng.engine_id, sent[0][:64], sent[1],
                    reason)
        self.feed(WorkerDied(time.time(), sent[0], eng.engine_id, sent[1],
                             f"the worker's connection closed while it had the task ({reason})"))
