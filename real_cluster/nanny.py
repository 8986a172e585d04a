"""An engine's nanny: owns the controller connection, the heartbeat and the engine id; never runs user code.

How this works. One thread, one `selectors` loop over two sockets: the controller link and the
local socket pair to the worker process (worker.py). The nanny starts its first worker, then registers once that
worker has said ready (or ended), at most READY_BEFORE_REGISTER_S later: an engine the controller counts can run a
task at once. The worker also has a direct link of its own
to the controller (not over TLS): a task sent while everything its engine has out went that way too
goes straight there (with hwm > 1 queued there behind them) and its answer straight back, without
waking the nanny; the nanny sees the running one in the page it shares with the worker
(worker_slot.py), and the worker carries out cancels of those still queued (direct_links.py). Any
other RunTask queues here and goes to the worker one at a time (after a direct one ends: the worker
wakes the nanny), so a cancel of a task queued here never reaches the worker and a kill only ever
costs the running task (the controller sends the direct ones queued behind it here again). Heartbeats leave on schedule
whatever the task does (the worker may hold the GIL for minutes). While a task runs, a watchdog
checks every `WATCH_PERIOD_S` (with a memory limit every `MEMORY_WATCH_PERIOD_S`; each check is one
pread of /proc/<pid>/statm and stat, kept open):
- its `time_limit_s` -> kill the worker, TaskDone `error` / TimeLimitExceeded;
- the worker's resident memory against `memory_limit` -> kill, TaskDone `died` naming the limit;
- the worker stopped (SIGSTOP, state T) for longer than the liveness timeout -> kill, `died`.
A CancelTask for the running task kills the worker (TaskDone `aborted`); StopEngine stops at once, busy or not;
SignalEngine forwards a signal to the worker. When the worker's pipe closes (os._exit, segfault, kill), or its
process ends while a child it forked holds the pipe (its pidfd says so), the running task is reported `died` (the
controller makes it an EngineError, retries apply), a fresh worker starts, and the engine keeps its id; every
replacement is reported (WorkerReplaced: the actors in that worker are gone). If WORKER_START_ATTEMPTS workers in a
row end before they are ready (a broken environment, a failing import), the engine gives up: its tasks are reported
`died`, naming the cause, and it exits with status 1 (it would otherwise start workers forever while its tasks
waited). Actor calls are the exception to "one at a time": the core bounds them per actor (max_concurrency), so
they go to the worker at once (`side`) and run in its actors' threads (worker_actors.py); killing the worker for
one of them (abort, time limit) reports the others `died`.
"""

from __future__ import annotations

import json
import logging
import os
import select
import selectors
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterable
from typing import Any

from sched_lab.core.errors import TIME_LIMIT_EXCEEDED

from . import protocol as proto
from .error import ConnectionFailed, ControllerBusy, ProtocolError
from .messages import (
    CancelTask, DeleteActor, Heartbeat, Register, Registered, RunTask, SignalEngine, StopEngine, TaskDone,
    WorkerReplaced, from_wire, to_wire,
)
from .profile import ConnectionInfo
from .sync_link import SyncLink
from .worker_slot import Running, TaskSlot

log = logging.getLogger("real_cluster.engine")
WATCH_PERIOD_S = 0.1            # how often a running task's limits and worker state are checked
MEMORY_WATCH_PERIOD_S = 0.02    # ... with a memory limit: a worker over it is killed within this (+ a loop turn)
WORKER_START_TIMEOUT_S = 60.0   # a worker that has not said ready by then is killed and replaced
WORKER_START_ATTEMPTS = 3       # this many workers in a row gone before they were ready: the engine gives up
READY_BEFORE_REGISTER_S = 10.0  # the engine registers once its first worker said ready (or ended), or after this
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class WorkerProc:
    """One worker process and the nanny's end of its socket pair."""

    def __init__(self, result_max: int | None = None, attach: dict[str, Any] | None = None,
                 generation: int = 0) -> None:
        from .worker import ATTACH_ENV
        mine, theirs = socket.socketpair()
        self.slot = TaskSlot()              # what the worker runs (worker_slot.py); a fresh one per worker
        extra = ["--result-max", str(result_max)] if result_max is not None else []
        extra += ["--generation", str(generation)] if generation else []
        env = dict(os.environ, **{ATTACH_ENV: json.dumps(attach)}) if attach else None
        try:
            self.proc = subprocess.Popen([sys.executable, "-m", "real_cluster.worker", "--fd", str(theirs.fileno()),
                                          "--slot-fd", str(self.slot.fd), *extra], env=env,
                                         stdin=subprocess.DEVNULL, pass_fds=(theirs.fileno(), self.slot.fd),
                                         close_fds=True)
        finally:
            theirs.close()
        self.exited = _Exited(self.proc.pid)
        self.sock = mine
        self.sock.setblocking(False)
        self.decoder = proto.FrameDecoder(proto.DEFAULT_LIMITS)
        self.scratch = bytearray(proto.RECV_CHUNK)
        self.ready = False
        self.started = time.monotonic()
        self.stopped_since: float | None = None
        self._proc_fds: dict[str, int] = {}    # /proc/<pid>/statm and stat, kept open: one pread per check

    @property
    def pid(self) -> int:
        return self.proc.pid

    def send(self, msg: Any) -> None:
        data = proto.encode_frame(*to_wire(msg))
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):            # larger than the pair's buffer: the worker (idle) reads as we write
            self.sock.setblocking(True)
            try:
                self.sock.sendall(memoryview(data)[sent:])
            finally:
                self.sock.setblocking(False)

    def read(self) -> list[Any] | None:
        """Messages received from the worker (one read: the selector reports the rest); None when it closed."""
        try:
            data = proto.recv_into(self.sock, self.scratch)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            return None
        if not data:
            return None
        return [from_wire(h, b) for h, b in self.decoder.feed(data)]

    def _proc(self, name: str) -> bytes:
        """The worker's /proc/<pid>/<name>, read with one pread on a descriptor opened once (OSError if gone)."""
        fd = self._proc_fds.get(name)
        if fd is None:
            fd = self._proc_fds[name] = os.open(f"/proc/{self.pid}/{name}", os.O_RDONLY)
        return os.pread(fd, 512, 0)

    def rss_bytes(self) -> int | None:
        try:
            return int(self._proc("statm").split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return None

    def is_stopped(self) -> bool:
        try:
            state = self._proc("stat").rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state in (b"T", b"t")

    def _close_proc_fds(self) -> None:
        for fd in self._proc_fds.values():
            os.close(fd)
        self._proc_fds.clear()

    def kill(self) -> str:
        """Kill the worker (SIGKILL, works on a stopped one too) and reap it; returns how it ended."""
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        self._close()
        return _exit_text(code)

    def reap(self) -> str:
        """How a worker whose pipe closed ended (waits briefly for its exit status)."""
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return self.kill()
        self._close()
        return _exit_text(code)

    def _close(self) -> None:
        self.sock.close()
        self.exited.close()
        self.slot.close_fd()
        self._close_proc_fds()


class _Exited:
    """The worker's pidfd, for the selector: readable once the worker has exited. Its pipe alone can outlive it: a
    process a task forked holds it (worker.py lets go of its connections in a fork Python makes, not in one a C
    library makes). -1 where the system has no pidfd (the pipe's end is all there is to see then)."""

    def __init__(self, pid: int):
        try:
            self.fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            self.fd = -1

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _exit_text(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class Nanny:
    """One engine. `run()` returns an exit code (0 after a clean stop or giving up reconnecting)."""

    def __init__(self, info: ConnectionInfo, retry_for_s: float = 20.0, memory_limit: int | None = None,
                 result_max: int | None = None, speed: float = 1.0, labels: tuple[str, ...] = (),
                 unix_path: str | None = None):
        if memory_limit is not None and memory_limit <= 0:
            raise ValueError(f"memory_limit must be a positive number of bytes, got {memory_limit!r}")
        self.info = info
        self.retry_for_s = retry_for_s
        self.memory_limit = memory_limit
        self.watch_period_s = WATCH_PERIOD_S if memory_limit is None else MEMORY_WATCH_PERIOD_S
        self.result_max = result_max
        self.speed = speed                    # advertised to the schemes in Register (DESIGN §3.1)
        self.labels = tuple(labels)
        self.uuid = uuid.uuid4().hex
        self.engine_id: int | None = None
        self.worker: WorkerProc | None = None
        self.todo: deque[RunTask] = deque()
        self.current: RunTask | None = None
        self.side: dict[tuple[str, int], tuple[RunTask, float, float]] = {}   # threaded actor calls out: msg,
        # monotonic and wall-clock start (worker_actors.py); they run beside `current`, killed with the worker
        self.current_since = 0.0              # monotonic, for time limits
        self.current_started_at = 0.0         # wall clock, for the report
        self.restarts = 0
        self.start_failures = 0               # workers in a row that ended before they said ready
        self.gave_up = False                  # no worker would start: tasks reported died, the engine exits 1
        self._hb_period = 1.0
        self._liveness_s = 5.0
        self._stopping = False
        # the worker's direct link (worker.py): not over TLS (a TLS session cannot be shared with it)
        self._attach = None if info.tls_fingerprint is not None else {
            "host": info.host, "port": info.port, "key": info.key, "uuid": self.uuid,
            **({"unix": unix_path} if unix_path else {})}

    # --------------------------------------------------------------------------- lifecycle
    def run(self) -> int:
        self.worker = WorkerProc(self.result_max, self._attach)
        try:
            self._await_worker(READY_BEFORE_REGISTER_S)
            while not self._stopping:
                link = self._connect()
                if link is None:
                    log.warning("could not reach the controller for %.0f s; exiting", self.retry_for_s)
                    return 0
                self._serve(link)
        finally:
            if self.worker is not None:
                self.worker.kill()
        log.info("engine %s stopped", self.engine_id)
        return 1 if self.gave_up else 0

    def _await_worker(self, limit_s: float) -> None:
        """Wait until the worker has written (its ready Heartbeat) or ended, at most `limit_s`, reading nothing: the
        serve loop reads it. Registered before its worker is ready, an engine got tasks it could not run while its
        worker imported (~0.2 s: the first task after `Cluster.start()` waited that long)."""
        w = self.worker
        assert w is not None
        watch = [w.sock, w.exited] if w.exited.fileno() >= 0 else [w.sock]
        deadline = time.monotonic() + limit_s
        while (left := deadline - time.monotonic()) > 0 and w.proc.poll() is None:
            if select.select(watch, [], [], min(left, 0.1))[0]:
                return

    def _connect(self) -> SyncLink | None:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                link = SyncLink.connect(self.info.host, self.info.port, self.info.key, "engine",
                                        tls_fingerprint=self.info.tls_fingerprint)
                link.send(Register(uuid=self.uuid, pid=os.getpid(), hostname=socket.gethostname(),
                                   speed=self.speed, labels=self.labels))
                reply = link.recv()
                if not isinstance(reply, Registered):
                    raise ProtocolError(f"expected registered, got {type(reply).__name__}")
                self.engine_id = reply.engine_id
                self._hb_period = reply.hb_period_s
                self._liveness_s = reply.liveness_s
                log.info("registered as engine %d with %s:%d", reply.engine_id, self.info.host, self.info.port)
                return link
            except (ConnectionFailed, ProtocolError) as exc:
                if isinstance(exc, ControllerBusy):     # the controller is there, only busy: keep trying
                    deadline = max(deadline, time.monotonic() + self.retry_for_s)
                if time.monotonic() + delay > deadline:
                    return None
                log.info("controller not reachable (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------------------ serving
    def _serve(self, link: SyncLink) -> None:
        self.todo.clear()
        self.current = None
        self.side.clear()
        sel = selectors.DefaultSelector()
        sel.register(link.sock, selectors.EVENT_READ, "controller")
        watched = self._watch(sel, None)
        next_hb = time.monotonic() + self._hb_period
        next_watch = 0.0
        try:
            self._ask_attach()                      # registered: the worker may take tasks straight now
            if not self._from_controller(link, link.recv_many(block=False)):   # what came with Registered
                return
            while not self._stopping:
                now = time.monotonic()
                timeout = next_hb - now
                if self._attach is not None or self.current is not None or self.side or not self.worker.ready:
                    timeout = min(timeout, self.watch_period_s)     # (a direct task is seen in the slot only)
                for key, _ in sel.select(max(0.0, timeout)):
                    if key.data == "controller":
                        if not self._from_controller(link, link.recv_many(block=False)):
                            return
                    elif key.data == "exited":
                        if self.worker is not None and key.fileobj is self.worker.exited:
                            self._worker_exited(link)
                    elif not self._from_worker(link):
                        self._worker_died(link, None)
                if self.worker is not watched:
                    watched = self._watch(sel, watched)
                now = time.monotonic()
                if now >= next_watch:               # /proc reads cost: at most every watch_period_s
                    next_watch = now + self.watch_period_s
                    self._check_worker(link, now)
                    if self.worker is not watched:
                        watched = self._watch(sel, watched)
                if now >= next_hb:
                    link.send(Heartbeat())
                    next_hb = now + self._hb_period
                self._start_next(link)
        except (ConnectionFailed, ProtocolError) as exc:
            log.warning("lost the controller connection: %s", exc)
        except Exception:        # a bug here must not end the engine: start over with a fresh connection
            log.exception("engine %s: internal error; reconnecting", self.engine_id)
        finally:
            sel.close()
            link.close()
            if (self.current is not None or self.side) and not self._stopping:   # the controller retries; start clean
                self._replace_worker()

    def _watch(self, sel: selectors.BaseSelector, old: WorkerProc | None) -> WorkerProc | None:
        if old is not None:
            for fileobj in (old.sock, old.exited):
                try:
                    sel.unregister(fileobj)
                except (KeyError, ValueError):
                    pass
        if self.worker is not None:
            sel.register(self.worker.sock, selectors.EVENT_READ, "worker")
            if self.worker.exited.fd >= 0:
                sel.register(self.worker.exited, selectors.EVENT_READ, "exited")
        return self.worker

    def _from_controller(self, link: SyncLink, msgs: list[Any]) -> bool:
        """File the controller's messages; False after a stop."""
        for msg in msgs:
            if isinstance(msg, RunTask):
                self.todo.append(msg)
            elif isinstance(msg, CancelTask):
                self._cancel(link, msg)
            elif isinstance(msg, SignalEngine):
                if self.worker is not None and (self._running() is not None or self.side):
                    try:
                        os.kill(self.worker.pid, msg.signum)
                    except OSError as exc:
                        log.warning("could not signal the worker: %s", exc)
            elif isinstance(msg, StopEngine):
                self._stopping = True
                return False
            elif isinstance(msg, DeleteActor):
                if self.worker is not None and self.worker.ready:
                    try:
                        self.worker.send(msg)
                    except OSError:
                        pass                # its pipe closed: the selector reports the death
            else:
                log.warning("ignoring unexpected %s from the controller", type(msg).__name__)
        return True

    def _running(self) -> Running | None:
        """The task the worker runs: the one this nanny handed it, else one it took from its direct link."""
        cur = self.current
        if cur is not None:
            return Running(cur.task_id, cur.attempt, cur.time_limit_s, self.current_started_at, self.current_since)
        return self.worker.slot.running() if self.worker is not None else None

    def _ask_attach(self) -> None:
        """Have the worker (re)connect its direct link (a Heartbeat on the pipe; worker.py)."""
        if self._attach is not None and self.worker is not None:
            try:
                self.worker.send(Heartbeat())
            except OSError:
                pass                # a dead worker: the pipe's end is seen by the loop

    def _cancel(self, link: SyncLink, msg: CancelTask) -> None:
        cur = self._running()
        if cur is not None and (cur.task_id, cur.attempt) == (msg.task_id, msg.attempt) \
                or (msg.task_id, msg.attempt) in self.side:
            self._end_current(link, "aborted", "TaskAborted", "aborted while running (its worker was stopped)",
                              (msg.task_id, msg.attempt))
            return
        for queued in list(self.todo):
            if (queued.task_id, queued.attempt) == (msg.task_id, msg.attempt):
                self.todo.remove(queued)
                link.send(TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="aborted", started_at=None,
                                   completed_at=time.time(), ename="TaskAborted", evalue="aborted before it started"))

    def _from_worker(self, link: SyncLink) -> bool:
        """Forward the worker's replies; False when its pipe closed."""
        assert self.worker is not None
        try:
            msgs = self.worker.read()
        except ProtocolError as exc:
            log.error("worker %d sent a malformed frame (%s); replacing it", self.worker.pid, exc)
            msgs = None
        if msgs is None:
            return False
        for msg in msgs:
            if isinstance(msg, Heartbeat):
                self.worker.ready = True
                self.start_failures = 0
            elif isinstance(msg, TaskDone) and self.current is not None and msg.task_id == self.current.task_id:
                self.current = None
                link.send(msg)
            elif isinstance(msg, TaskDone) and self.side.pop((msg.task_id, msg.attempt), None) is not None:
                link.send(msg)
        return True

    def _worker_exited(self, link: SyncLink) -> None:
        """The worker process ended while its pipe is still open (a process it forked holds it): what it wrote before
        is read, then it is handled as if its pipe had closed."""
        assert self.worker is not None
        for _ in range(64):             # (a socket buffer's worth: more is a child writing, not the worker)
            if not select.select([self.worker.sock], [], [], 0)[0] or not self._from_worker(link):
                break
        self._worker_died(link, None)

    def _start_next(self, link: SyncLink) -> None:
        while self.todo and self.worker is not None and self.worker.ready and _threaded(self.todo[0]):
            msg = self.todo.popleft()       # a threaded actor call goes at once (the core bounds how many)
            self.side[(msg.task_id, msg.attempt)] = (msg, time.monotonic(), time.time())
            try:
                self.worker.send(msg)
            except OSError:
                self._worker_died(link, None)
                return
        if self.current is not None or not self.todo or self.worker is None or not self.worker.ready:
            return
        if self.worker.slot.running() is not None:     # a direct task runs: the worker wakes us when it ends
            self.worker.slot.ask_wakeup()
            if self.worker.slot.running() is not None:
                return
        msg = self.todo.popleft()
        self.current, self.current_since, self.current_started_at = msg, time.monotonic(), time.time()
        try:
            self.worker.send(msg)
        except OSError:
            self._worker_died(link, None)

    # ---------------------------------------------------------------------------- the worker
    def _check_worker(self, link: SyncLink, now: float) -> None:
        w = self.worker
        if w is None:
            return
        if not w.ready:
            died = w.proc.poll() is not None
            if (died and now - w.started > 1.0) or now - w.started > WORKER_START_TIMEOUT_S:   # no busy respawn loop
                why = "it exited" if died else f"not ready after {WORKER_START_TIMEOUT_S:g} s"
                log.error("worker %d did not start (%s); replacing it", w.pid, why)
                if not self._start_failed(link, f"worker {w.pid}: {why}"):
                    self._replace_worker()
            return
        if w.is_stopped():
            w.stopped_since = w.stopped_since or now
            if now - w.stopped_since > self._liveness_s:
                self._worker_died(link, f"the worker was stopped for more than {self._liveness_s:g} s")
                return
        else:
            w.stopped_since = None
        for (tid, attempt), (side, since, _) in list(self.side.items()):
            if side.time_limit_s is not None and now - since > side.time_limit_s:
                self._end_current(link, "time_limit", TIME_LIMIT_EXCEEDED,
                                  f"the task ran longer than its time limit of {side.time_limit_s:g} s", (tid, attempt))
                return
        cur = self._running()
        if cur is None:
            return
        if cur.time_limit_s is not None and now - cur.started_mono > cur.time_limit_s:
            self._end_current(link, "time_limit", TIME_LIMIT_EXCEEDED,
                              f"the task ran longer than its time limit of {cur.time_limit_s:g} s")
            return
        if self.memory_limit is not None:
            rss = w.rss_bytes()
            if rss is not None and rss > self.memory_limit:
                self._worker_died(link, f"the worker used {rss} bytes, over the memory limit of "
                                        f"{self.memory_limit} bytes")

    def _end_current(self, link: SyncLink, status: str, ename: str, evalue: str,
                     which: tuple[str, int] | None = None) -> None:
        """Stop the running task (`which`: that one of several) by killing the worker; report it with `status`, the
        others running in that worker `died`, and the worker's replacement; start a fresh worker."""
        run = self._running()
        ended: tuple[str, int, float | None] | None = None
        if run is not None and (which is None or (run.task_id, run.attempt) == which):
            ended, run = (run.task_id, run.attempt, run.started_at), None
        elif which is not None and which in self.side:
            side, _, started = self.side.pop(which)
            ended = (side.task_id, side.attempt, started)
        self.current = None
        if self.worker is not None:
            self.worker.kill()                  # stopped before it is reported; the fresh worker starts after
            self.worker = None
        try:                                    # one write: the controller reads the end and the replacement
            msgs: list[Any] = []                # together, with no client's call in between for the dead instance
            if ended is not None:               # first: it ended as asked (aborted, time limit), not by an actor's death
                msgs.append(TaskDone(task_id=ended[0], attempt=ended[1], status=status, started_at=ended[2],
                                     completed_at=time.time(), ename=ename, evalue=evalue))
            msgs.append(WorkerReplaced(reason=f"{ename}: {evalue}"[:4096]))
            msgs += self._died(run, f"its worker was stopped because another task in it ended ({ename})")
            link.send_many(msgs)
        finally:
            self._replace_worker()

    def _worker_died(self, link: SyncLink, why: str | None) -> None:
        """The worker died (`why` None: its pipe closed) or must die: report the running task, start afresh."""
        assert self.worker is not None
        was_ready = self.worker.ready
        how = self.worker.kill() if why is not None else self.worker.reap()
        text = why or f"the worker process {how}"
        log.warning("engine %s: %s", self.engine_id, text)
        cur = self._running()                   # (the dead worker's slot is still readable)
        self.worker = None
        self.current = None
        try:                                    # reported before a fresh worker starts (that takes a while)
            link.send_many([WorkerReplaced(reason=text[:4096]), *self._died(cur, text)])
        finally:
            if was_ready or not self._start_failed(link, text):
                self._replace_worker()

    def _start_failed(self, link: SyncLink, why: str) -> bool:
        """A worker ended before it said ready (`why`: how). After WORKER_START_ATTEMPTS in a row the engine gives
        up (True): every task it holds is reported died, naming the cause, and it stops, exit status 1 — rather than
        start workers that cannot run (a broken environment, a failing import) while its tasks wait forever."""
        self.start_failures += 1
        if self.start_failures < WORKER_START_ATTEMPTS:
            return False
        text = (f"engine {self.engine_id} stopped: {self.start_failures} worker processes in a row ended before they "
                f"were ready (the last: {why}); the worker's error is in the engine's output")
        log.error("%s", text)
        if self.worker is not None:
            self.worker.kill()
            self.worker = None
        self._stopping = self.gave_up = True
        report = self._died(None, text, self.todo)     # (no worker was ready: none ran `current` or `side`)
        self.todo.clear()
        link.send_many(report)
        return True

    def _died(self, run: Running | None, text: str, queued: Iterable[RunTask] = ()) -> list[TaskDone]:
        """A `died` report of every task still out in the worker just stopped, and of `queued` (never started) too
        (the controller retries or fails them)."""
        done = [(run.task_id, run.attempt, run.started_at)] if run is not None else []
        done += [(msg.task_id, msg.attempt, started) for msg, _, started in self.side.values()]
        done += [(msg.task_id, msg.attempt, None) for msg in queued]
        self.side.clear()
        return [TaskDone(task_id=tid, attempt=attempt, status="died", started_at=started, completed_at=time.time(),
                         ename="EngineError", evalue=text) for tid, attempt, started in done]

    def _replace_worker(self) -> None:
        if self.worker is not None:
            self.worker.kill()
        self.restarts += 1
        self.worker = WorkerProc(self.result_max, self._attach, self.restarts)
        self._ask_attach()


def _threaded(msg: RunTask) -> bool:
    """An actor call: it runs in its actor's threads, beside other tasks (worker_actors.py)."""
    return msg.actor_role == "call"
