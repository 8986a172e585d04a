"""The controller's side of workers' direct links (worker.py): attach, and what a closed one leaves behind.

How this works. A worker connects with the engine key and sends `AttachWorker(uuid)`; its connection is
bound to the registered engine with that uuid (`EngineConn.direct`). The controller sends a task over it
whenever every task its engine has out went that way too (so with hwm > 1 a worker has its next tasks queued
beside it and never waits a controller hop between two: `python benchmarks/bench_cpu_split.py --by-value --hwm 2`,
295-333 -> 175-199 µs of CPU a no-op task and 4,900-5,600 -> 7,500-8,800 tasks/s; hwm 0: 205-237 -> 119-137 µs,
ProcessPoolExecutor's 120-146 in the same runs; benchmarks/results/cpu_split_direct_queue_20261204.md), and the
answer comes back the same way; everything else goes through the nanny. Over TCP (a worker on
another host) one at a time, as below. The attempts out on a link are kept in send order (`WorkerLink.sent`):
the worker runs them in that order, one at a time, and answers each over the link before it starts the next.

A cancel of one of them goes over the link first, then to the nanny (`_direct_cancel`): the worker drops a task
still queued and answers it `aborted` when it gets to it (as ipyparallel's engine does: not while another task
runs); it reads the link again after it marks a queued task started in the slot and before it runs it, so a
cancel it has not read by then reaches the nanny after the slot shows the task running (on one host the
writes arrive in order), and the nanny stops it.

When a direct link ends, the attempt it was running is the nanny's to report (it saw its worker die, or killed it:
abort, time limit, memory limit); if no report came within the liveness time, it counts as the worker's death
(WorkerDied: retries apply). The attempts behind it never started: they go to the nanny again, the same attempts,
for the engine's next worker — as soon as the nanny reports the one its worker ran lost, or once everything the
worker sent has been read (it ended the link itself, and on a local socket or by a clean close nothing it sent can
be lost). Anything else — the link closed by the controller, a TCP reset (answers the worker wrote may be lost with
it) — leaves every attempt on it to the nanny's report or the liveness time: over TCP a worker has one direct task
at a time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from typing import Any

from sched_lab.core import WorkerDied

from . import protocol as proto
from .aio_link import Link
from .messages import AttachWorker, CancelTask, RunTask
from .task_table import EngineConn

log = logging.getLogger("real_cluster.controller")


class WorkerLink:
    """`Link.state` of a worker's direct connection (worker.py): tasks for `eng` go straight to its worker."""

    __slots__ = ("eng", "link", "sent", "local", "worker_gone", "pull")

    def __init__(self, eng: EngineConn, link: Link, local: bool):
        self.eng = eng
        self.link = link
        self.sent: dict[tuple[str, int], None] = {}     # attempts out on this link, in the order they were sent
        self.local = local                  # a Unix socket: what the worker wrote before it died is all readable
        self.worker_gone = False            # its nanny reported the attempt it ran lost with its worker
        self.pull: Any = None               # a Puller when its worker takes staged tasks (pulling.py)


class DirectLinks:
    """Controller mixin: needs `engines`, `config` (hb_period_s, hb_misses), `feed`, `pending`, `actor_dir`,
    `functions` and `_engines_paused`."""

    engines: dict[int, EngineConn]
    config: Any
    pending: Any
    actor_dir: Any
    functions: Any
    _engines_paused: bool

    def feed(self, event: Any) -> None: ...

    def _attach(self, link: Link, msg: AttachWorker) -> None:
        """A worker's own connection: tasks for its engine go straight to it from now on (worker.py)."""
        eng = next((e for e in self.engines.values() if e.uuid == msg.uuid), None)
        if eng is None:
            raise proto.ProtocolError(f"no engine with uuid {msg.uuid[:64]!r} to attach a worker to")
        sock = link.transport.get_extra_info("socket") if link.transport is not None else None
        old, eng.direct = eng.direct, link
        link.state = WorkerLink(eng, link, getattr(sock, "family", None) == socket.AF_UNIX)
        if old is not None and not old.state.sent:      # (one with attempts out ends by itself: its answers first)
            old.close("replaced by a newer direct link")
        if self._engines_paused and link.transport is not None:     # database backpressure applies to it too
            link.transport.pause_reading()
        log.info("engine %d: its worker attached a direct link from %s", eng.engine_id, link.peer)

    def _nanny_reported(self, eng: EngineConn, msg: Any) -> None:
        """A nanny's TaskDone: if it killed or lost its worker, that worker's direct link is dead even if its end
        has not been read yet, so nothing more (a retry of this very task) may go over it."""
        if msg.status in ("died", "time_limit") or (msg.status == "aborted" and msg.started_at is not None):
            self._worker_gone(eng, (msg.task_id, msg.attempt))

    def _worker_gone(self, eng: EngineConn, ran: tuple[str, int] | None = None) -> None:
        """The nanny reported its worker gone (WorkerReplaced, or `ran`, the attempt it killed or lost with it).

        No new task goes over the engine's direct link. One with nothing out is closed (if a newer worker attached
        before this report was read, it attaches again); one with attempts out ends by itself (answers the worker
        wrote before it went may still be unread), or is closed once they are answered (`_task_done`). If `ran`
        went over a link, its worker is the one gone: those behind it on that link never started, and go to the
        nanny again now."""
        link, eng.direct = eng.direct, None
        carrier = eng.direct_out.get(ran) if ran is not None else None
        if carrier is not None:
            carrier.worker_gone = True
            out = list(carrier.sent)
            for key in out[out.index(ran) + 1:]:    # behind the one it ran: never started, whatever the link does
                del carrier.sent[key]               # (a child the task forked may hold it open: worker.py)
                eng.direct_out.pop(key, None)
                self._resend_to_nanny(eng, key)
        if link is not None and not link.state.sent:
            link.close("its worker is gone")

    def _direct_cancel(self, eng: EngineConn, task_id: str, attempt: int) -> None:
        """A cancel of an attempt out on a direct link goes over that link first, written at once (module doc)."""
        carrier = eng.direct_out.get((task_id, attempt))
        if carrier is not None and not carrier.link.closed:
            carrier.link.send(CancelTask(task_id=task_id, attempt=attempt))
            carrier.link.flush()

    def _direct_closed(self, link: Link, reason: str) -> None:
        """A worker's direct link closed: the attempt it was running is the nanny's to report (or counts as the
        worker's death after the liveness time); those behind it never started and go to the nanny (module doc)."""
        carrier: WorkerLink = link.state
        eng = carrier.eng
        if eng.direct is link:
            eng.direct = None
        out = [key for key in carrier.sent if key in eng.given]
        for key in carrier.sent:
            eng.direct_out.pop(key, None)
        carrier.sent.clear()
        if not out or self.engines.get(eng.engine_id) is not eng:
            return                              # (an engine lost: the core has its tasks)
        everything_read = link.peer_ended == "closed" or (link.peer_ended == "lost" and carrier.local)
        if not everything_read:
            later = out
        elif carrier.worker_gone:
            later = []
        else:
            later = out[:1]
        delay = self.config.hb_period_s * self.config.hb_misses
        for key in later:
            asyncio.get_running_loop().call_later(delay, self._direct_orphan, eng, key, reason)
        for key in out[len(later):]:
            self._resend_to_nanny(eng, key)

    def _resend_to_nanny(self, eng: EngineConn, key: tuple[str, int]) -> None:
        """An attempt that never started on a worker that is gone: the same attempt again, through the nanny (for
        the engine's next worker), with its function (that worker holds none)."""
        task = self.pending.get(key[0])
        payload, flags = (task.payload, task.flags) if task is not None else \
            self.actor_dir.creations.get(key[0], (None, None))
        if flags is None:
            return
        log.info("engine %d: task %s attempt %d never started on the worker that went away; sent again through "
                 "the nanny", eng.engine_id, key[0][:64], key[1])
        eng.link.send(RunTask(task_id=key[0], attempt=key[1], time_limit_s=flags.time_limit_s,
                              payload=self.functions.payload_for(eng.engine_id, payload, resend=True),
                              **(self.actor_dir.run_fields(key[0]) if flags.actor is not None else {})))

    def _direct_orphan(self, eng: EngineConn, sent: tuple[str, int], reason: str) -> None:
        if self.engines.get(eng.engine_id) is not eng or sent not in eng.given:
            return                          # reported meanwhile, or the engine was lost (the core has it)
        eng.given.discard(sent)
        log.warning("engine %d: task %s attempt %d was on its worker's direct link, which closed (%s), and the "
                    "nanny never reported it: counted as the worker's death", eng.engine_id, sent[0][:64], sent[1],
                    reason)
        self.feed(WorkerDied(time.time(), sent[0], eng.engine_id, sent[1],
                             f"the worker's connection closed while it had the task ({reason})"))
