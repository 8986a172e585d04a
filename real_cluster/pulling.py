"""Pulling: local workers take the queue's head themselves, without waiting for the controller (`--no-pull`: off).

How this works (the design and its measurements: docs/pull-at-hwm1.md; the core's rules: sched_lab/core/staging.py).
While no engine is below hwm, the core stages the oldest plain queued tasks (Stage actions). The controller writes
each as one datagram (its stage number, then a RunTask frame carrying the function's bytes) to a socket pair whose
read end every pulling worker holds: the kernel hands each datagram to one reader. A worker that ends a direct task,
with nothing else queued for it, takes one before it answers (worker.py), and sends `Took` ahead of that answer; the
controller feeds the core TaskTaken (the dispatch every scheme would have made) and the task is out on that
worker's direct link like one sent there. The core asks for staged tasks back (Unstage) when an engine has room and
nothing else to take (a report without a take, an engine joining, an actor gone), or one was aborted: the controller
reads back what no worker took (StageReturned).

Who pulls: workers attached over the Unix socket (PullOffer on their direct link; they fetch the two file
descriptors from `pull.sock` beside it, with the offer's token). Nothing is staged while none does.

A worker can die holding a staged task it has not reported. Each worker writes, around every take, what it is doing
in the pull table (pull_table.py): a take under way, then the stage number it got. When a pulling worker is gone
(its nanny's WorkerReplaced, its engine lost, its link closed), its entry says which staged task it held: that one
is taken by its engine and then counts as lost with the worker (as a task sent to it would). If it died in the
middle of a take, the controller waits until no live worker is in the middle of one, reads back what is still
staged, and the staged tasks nobody holds are the dead worker's: they never started, and queue again.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import socket
import struct
import sys
import threading
import time
from typing import Any

from sched_lab.core import StageDepth, StageReturned, TaskTaken, WorkerDied

from . import protocol as proto
from .messages import PullOffer, Took, run_frame
from .pull_table import ENTRIES, STAGE_FRAME_MAX, PullTable

log = logging.getLogger("real_cluster.controller")
PULL_SOCKET_NAME = "pull.sock"     # beside the controller's Unix socket: workers fetch the descriptors here
DEPTH_PER_WORKER = 16              # staged tasks per pulling worker (docs/pull-at-hwm1.md: 1-2 took only 48-66 %)
PULL_HANDLERS = 8                  # pull.sock peers served at once (each for at most 2 s)
SETTLE_POLL_S = 0.005              # how often a death in the middle of a take is looked at again
_SEQ = struct.Struct("!Q")


class Puller:
    """One pulling worker: its pull-table entry, its direct link's state (WorkerLink) and whether it is gone."""

    __slots__ = ("index", "carrier", "gone", "last_took")

    def __init__(self, index: int, carrier: Any):
        self.index = index
        self.carrier = carrier
        self.gone = False          # its worker is dead, or its link closed: it takes nothing more
        self.last_took = 0         # the stage number of its last Took read (they come in order)


class Pulling:
    """Controller mixin: needs `config`, `engines`, `pending`, `functions`, `scheduler`, `db`, `feed`, `_pump`,
    `_unix`."""

    config: Any
    engines: dict[int, Any]
    pending: Any
    functions: Any
    scheduler: Any
    db: Any
    _unix: socket.socket | None

    def feed(self, event: Any) -> None: ...

    _pull_on = False
    _depth_cap: int | None = None
    _staged: dict[tuple[str, int], int] = {}          # (task, attempt) -> stage number, oldest first
    _pull_counts: dict[str, int] = {}

    def pull_stats(self) -> dict[str, int]:
        """Counts since the start: tasks staged, taken by workers, read back, taken by a worker that died before it
        said so, queued again after dying unstarted with a worker mid-take; the pulling workers and staged tasks now."""
        return {**self._pull_counts, "pullers": len(self._live_pullers()), "staged_now": len(self._staged)} \
            if self._pull_on else {}

    def _live_pullers(self) -> list[Puller]:
        return [p for p in self._pullers.values() if not p.gone]

    def _pull_start(self) -> None:
        """Open the staging socket, the pull table and `pull.sock` (with `--pull` and a Unix socket)."""
        if not self.config.pull or self._unix is None or not self.config.hwm:
            return
        if not sys.platform.startswith("linux"):        # (SO_PEERCRED, memfd: the pull table is Linux-only)
            log.info("not pulling: only on Linux")
            return
        self._stage_w, self._stage_r = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._stage_w.setblocking(False)
        self._stage_r.setblocking(False)
        self._stage_buf = bytearray(STAGE_FRAME_MAX + _SEQ.size + 1)
        self._pull_table = PullTable()
        self._pull_token = secrets.token_hex(16)
        self._pull_path = os.path.join(os.path.dirname(self.config.unix_path), PULL_SOCKET_NAME)
        self._pullers: dict[int, Puller] = {}
        self._free_indices = list(range(ENTRIES - 1, 0, -1))
        self._staged = {}
        self._by_seq: dict[int, tuple[str, int]] = {}
        self._next_seq = 0
        self._unsettled: set[int] = set()             # indices of workers gone in the middle of a take
        self._settle_handle: asyncio.TimerHandle | None = None
        self._pull_counts = dict.fromkeys(("staged", "taken", "returned", "taken_by_dead", "requeued_unstarted"), 0)
        try:
            os.unlink(self._pull_path)
        except FileNotFoundError:
            pass
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proto.unix_address(self._pull_path, srv.bind)
            os.chmod(self._pull_path, 0o600)
            srv.listen(64)
        except OSError as exc:
            srv.close()
            log.warning("not pulling: cannot listen on %s: %s", self._pull_path, exc)
            return
        self._pull_srv = srv
        threading.Thread(target=self._pull_serve, args=(srv,), name="pull-descriptors", daemon=True).start()
        self._pull_on = True
        log.info("pulling: local workers take staged tasks themselves (%s)", self._pull_path)

    def _pull_serve(self, srv: socket.socket) -> None:
        """(Its own thread.) Hand the staging socket and the pull table to a same-user peer that has the token: each
        peer in a thread of its own (at most PULL_HANDLERS at once), so one that stalls holds up no other."""
        want = self._pull_token.encode()
        slots = threading.BoundedSemaphore(PULL_HANDLERS)
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return                                  # closed: the controller stops
            slots.acquire()
            threading.Thread(target=self._pull_hand, args=(conn, want, slots), name="pull-descriptors-peer",
                             daemon=True).start()

    def _pull_hand(self, conn: socket.socket, want: bytes, slots: threading.BoundedSemaphore) -> None:
        try:
            with conn:
                conn.settimeout(2.0)
                uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[1]
                token = conn.recv(256).strip()
                if uid != os.getuid() or not hmac.compare_digest(token, want):
                    log.warning("pull.sock: refused a peer (uid %d) without the token", uid)
                    return
                socket.send_fds(conn, [b"ok"], [self._stage_r.fileno(), self._pull_table.fd])
        except OSError as exc:
            log.info("pull.sock: a peer went away: %s", exc)
        finally:
            slots.release()

    def _pull_stop(self) -> None:
        if not self._pull_on:
            return
        self._pull_on = False
        for closing in (self._pull_srv, self._stage_w, self._stage_r):
            closing.close()
        try:
            os.unlink(self._pull_path)
        except OSError:
            pass

    # ----------------------------------------------------------------------------- pullers
    def _pull_offer(self, link: Any) -> None:
        """A worker attached its direct link over the Unix socket: offer it the staged tasks."""
        carrier = link.state
        if not self._pull_on or not carrier.local or not self._free_indices:
            return
        index = self._free_indices.pop()
        self._pull_table.reset(index)
        puller = carrier.pull = Puller(index, carrier)
        self._pullers[index] = puller
        link.send(PullOffer(path=self._pull_path, token=self._pull_token, index=index))
        self._pullers_changed()

    def _pullers_changed(self) -> None:
        self._depth_cap = None                          # (the socket's buffer may take more now)
        self._pull_depth()

    def _pull_depth(self) -> None:
        """Tell the core how many tasks may be staged: DEPTH_PER_WORKER a pulling worker, at most `_depth_cap` (what
        the socket's buffer took when it was full, until the pulling workers change)."""
        depth = DEPTH_PER_WORKER * len(self._live_pullers())
        self.feed(StageDepth(time.time(), depth if self._depth_cap is None else min(depth, self._depth_cap)))

    def _pull_engine_gone(self, eng: Any) -> None:
        """Engine `eng`'s worker is gone (its nanny's WorkerReplaced; the engine lost): so are its pullers."""
        for puller in [p for p in self._live_pullers() if p.carrier.eng is eng] if self._pull_on else ():
            self._pull_gone(puller)

    def _pull_link_closed(self, carrier: Any) -> None:
        """A worker's direct link closed: it takes nothing more (worker.py lets go of the staging socket; a take it
        could not report there is dropped, unrun)."""
        if carrier.pull is not None and not carrier.pull.gone:
            self._pull_gone(carrier.pull)

    def _pull_gone(self, puller: Puller) -> None:
        puller.gone = True
        self._pullers_changed()
        self._unsettled.add(puller.index)
        self._settle()

    def _settle(self) -> None:
        """Pullers gone: a staged task one of them took (its entry names it) is its engine's, lost with the worker.
        One gone in the middle of a take may hold a datagram nobody can name: once no live worker is in the middle of
        a take or has a Took on its way, every staged task a live one took has been reported, so the staged tasks
        still not readable back are the gone ones', never started: they queue again. Then their entries are free."""
        self._settle_handle = None
        if not self._unsettled or not self._pull_on:
            return
        self._read_back()
        held = dict(self._staged)                       # not readable back: taken (later stagings are not these)
        busy = False
        for puller in list(self._pullers.values()):
            state = self._pull_table.state(puller.index)
            if not puller.gone:
                busy = busy or state is None or state[0] or state[1] > puller.last_took
            elif state is not None and state[1] in self._by_seq:
                self._taken(puller.carrier, self._by_seq[state[1]], lost=True)     # (its Took may come later)
        if busy:
            self._settle_handle = asyncio.get_running_loop().call_later(SETTLE_POLL_S, self._settle)
            return
        for index in self._unsettled:
            if self._pullers.pop(index, None) is not None:
                self._free_indices.append(index)
        self._unsettled.clear()
        lost = tuple(key for key in held if key in self._staged)
        if lost:
            log.warning("pulling: %d staged task(s) died unstarted with a worker in the middle of a take; queued "
                        "again", len(lost))
            self._pull_counts["requeued_unstarted"] += len(lost)
            self._unstaged(lost)

    # ------------------------------------------------------------------------------ staging
    def _do_stage(self, action: Any) -> None:
        key = (action.task_id, action.attempt)
        task = self.pending.get(action.task_id)
        engines = [p.carrier.eng.engine_id for p in self._live_pullers()]
        frame = run_frame(action.task_id, action.attempt, self.functions.payload_for_any(engines, task.payload)) \
            if task is not None else b""
        if not self._pull_on or len(frame) > STAGE_FRAME_MAX or task is None:
            return self._pump.post(StageReturned(time.time(), (key,)))      # type: ignore[attr-defined]
        self._next_seq += 1
        seq = self._next_seq
        try:
            self._stage_w.send(_SEQ.pack(seq) + frame)
        except OSError as exc:                          # the socket's buffer is full: stage no more than it holds
            if self._depth_cap is None:
                log.info("pulling: the staging socket is full at %d staged tasks (%s); staging at most that many",
                         len(self._staged), exc)
                self._depth_cap = max(1, len(self._staged))
                self._pull_depth()                      # (handled after this action list: the pump queues it)
            return self._pump.post(StageReturned(time.time(), (key,)))      # type: ignore[attr-defined]
        if not self._staged:
            self._pull_table.set_staging(True)
        self._staged[key] = seq
        self._by_seq[seq] = key
        self._pull_counts["staged"] += 1

    def _do_unstage(self, action: Any) -> None:
        """An engine has room (the action names the oldest staged task), or a staged task was aborted: take back
        the staged tasks up to and including that one, oldest first, that no worker took (StageReturned; a taken
        one is reported by its Took). The socket is FIFO: for the oldest, one read, and the rest stay staged."""
        self._read_back(post=True, until=(action.task_id, action.attempt))

    def _read_back(self, post: bool = False, until: tuple[str, int] | None = None) -> None:
        """Take back the staged tasks no worker has taken yet, every one or up to and including `until`, and tell
        the core (StageReturned)."""
        if not self._pull_on:
            return
        back = []
        buf = self._stage_buf
        while True:
            try:
                n = self._stage_r.recv_into(buf)
            except (BlockingIOError, InterruptedError):
                break
            key = self._by_seq.get(_SEQ.unpack_from(buf)[0]) if n >= _SEQ.size else None
            if key is not None:
                back.append(key)
                if key == until:
                    break
        if back:
            self._pull_counts["returned"] += len(back)
            self._unstaged(tuple(back), post)

    def _unstaged(self, keys: tuple[tuple[str, int], ...], post: bool = False) -> None:
        for key in keys:
            del self._by_seq[self._staged.pop(key)]
        if not self._staged:
            self._pull_table.set_staging(False)
        event = StageReturned(time.time(), keys)
        self._pump.post(event) if post else self.feed(event)        # type: ignore[attr-defined]

    # ------------------------------------------------------------------------------- takes
    def _pull_took(self, carrier: Any, msg: Took) -> None:
        key = (msg.task_id, msg.attempt)
        puller = carrier.pull
        if puller is not None:
            puller.last_took = max(puller.last_took, msg.seq)
        if puller is None or self._staged.get(key) != msg.seq:
            log.warning("engine %d: its worker said it took task %r attempt %d, which is not staged; ignored",
                        carrier.eng.engine_id, msg.task_id[:64], msg.attempt)
            return
        self._taken(carrier, key)

    def _taken(self, carrier: Any, key: tuple[str, int], lost: bool = False) -> None:
        """`carrier`'s worker took this staged attempt: it is out on that link (`lost`: with a worker now dead)."""
        del self._by_seq[self._staged.pop(key)]
        if not self._staged:
            self._pull_table.set_staging(False)
        self._pull_counts["taken_by_dead" if lost else "taken"] += 1
        eng = carrier.eng
        now = time.time()
        live = self.engines.get(eng.engine_id) is eng
        if live and not lost:
            carrier.sent[key] = None
            eng.direct_out[key] = carrier
            eng.given.add(key)
            task = self.pending.get(key[0])
            if task is not None:
                self.functions.taken(eng.engine_id, task.payload)
        self.db.set_attempts(key[0], key[1] + 1)       # (a restart retries it or fails it, as a dispatched one)
        self.feed(TaskTaken(now, key[0], eng.engine_id, key[1]))
        if live and lost:
            self.feed(WorkerDied(now, key[0], eng.engine_id, key[1], "its worker died as it took the task"))
