"""An engine's worker process: runs one task at a time for its nanny, and survives anything a task returns.

How this works. The nanny (nanny.py) starts `python -m real_cluster.worker --fd N`, where N is its
end of a local socket pair. The worker announces itself with a Heartbeat, then reads RunTask frames
and answers each with one TaskDone (same framing and messages as the cluster wire, no handshake: the
pair is private to the two processes). Given the nanny's address of the controller (ATTACH_ENV), it also
attaches a direct link of its own (engine key, `AttachWorker`): tasks sent there are answered there, each
recorded in the page shared with the nanny while it runs (worker_slot.py), so the nanny still enforces
limits, aborts and reports deaths. Everything a task can do to its output is contained here:
an exception whose `__str__` raises, a huge message, an unpicklable result, a result over the frame
cap (`ResultTooLarge`): each becomes an ordinary `error` TaskDone with texts capped at `TEXT_MAX`
(truncation marked); the whole text, up to `ERROR_TEXT_MAX`, travels beside them for the task database only.
The task's `sys.stdout`/`sys.stderr` and fds 1/2 are captured up to `OUTPUT_MAX` each (worker_output.py).
Whatever the worker cannot survive (os._exit, a segfault, a kill) the nanny sees as a closed pipe.
The worker dies with its nanny (PR_SET_PDEATHSIG on Linux), so a hung task never outlives its engine.
Actors live here too (worker_actors.py): an actor's constructor runs here like a task; its calls run in
that actor's threads (at most `max_concurrency` at once) while this loop reads on.
With TRACE_ENV set to a directory, each task's steps (woken, decoded, called, returned, answered) are
timestamped to a file there (benchmarks/bench_gap.py reads them); unset, each step costs one `is None` test.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import selectors
import signal
import socket
import sys
import threading
import time
import traceback as tb_module
from typing import Any

from . import protocol as proto
from .error import ConnectionFailed, ProtocolError, UnmetDependency
from .functional import check_dependencies
from .fncache import FN_UNKNOWN, FunctionNotCached
from .messages import (
    AttachWorker, CancelTask, DeleteActor, Heartbeat, PullOffer, RunTask, TaskDone, done_ok_frame, from_wire,
    to_wire, took_frame,
)
from .namespace import lend, set_generation
from .pull_table import STAGE_FRAME_MAX, PullTable
from .serialize import pack_result, unpack_call
from .sync_link import SyncLink
from .worker_actors import ACTORS, capture_output, restore_output
from .worker_output import OUTPUT_MAX, CappedText, FdCapture, cap      # noqa: F401 - OUTPUT_MAX is re-exported
from .worker_slot import TaskSlot

TEXT_MAX = 64 * 1024            # characters of an error message or traceback sent to the client
ERROR_TEXT_MAX = 1024 * 1024    # characters of the whole error text kept in the task database (column error_full)
RESULT_MAX = proto.DEFAULT_LIMITS.max_frame - 1024 * 1024   # room for the header and the captured output
RESULT_TOO_LARGE = "ResultTooLarge"
ATTACH_ENV = "SCHED_LAB_WORKER_ATTACH"     # JSON {host, port, key, uuid[, unix]} from the nanny: the direct link
ATTACH_TIMEOUT_S = 2.0
log = logging.getLogger("real_cluster.engine")
TRACE_ENV = "SCHED_LAB_TRACE_DIR"       # set (a directory): each task's step timestamps go to a file there (bench_gap.py)
STOP_IN_TAKE_ENV = "SCHED_LAB_TEST_STOP_IN_TAKE"    # tests only: a path; the worker that creates it stops mid-take
_STOP_IN_TAKE: str | None = None


class _Trace:
    """Timestamps (time.time_ns) of each task's steps, appended to `<dir>/worker-<pid>.trace` (bench_gap.py)."""

    def __init__(self, directory: str):
        self.fh = open(os.path.join(directory, f"worker-{os.getpid()}.trace"), "a")
        self.wake = 0
        self.tid = ""
        self.lines: list[str] = []

    def mark(self, event: str) -> None:
        self.lines.append(f"{self.tid} {event} {time.time_ns()}\n")
        if len(self.lines) >= 64:
            self.flush()

    def flush(self) -> None:
        self.fh.write("".join(self.lines))
        self.fh.flush()
        self.lines = []


_TR: _Trace | None = None


def _safe(fn: Any, *args: Any) -> str | None:
    try:
        out = fn(*args)
        return out if isinstance(out, str) else None
    except BaseException:       # noqa: BLE001 - a hostile __str__ may raise anything
        return None


def describe_exception(exc: BaseException) -> tuple[str, str, str]:
    """(ename, evalue, traceback) of any exception, never raising, each capped at TEXT_MAX characters."""
    return describe_exception_full(exc)[:3]


def describe_exception_full(exc: BaseException) -> tuple[str, str, str, str | None]:
    """`describe_exception`, plus the whole traceback text (message included) capped at ERROR_TEXT_MAX when the
    evalue or traceback sent to the client was cut (None when nothing was: the capped texts are whole)."""
    ename = _safe(lambda: type(exc).__name__) or "Exception"
    evalue = _safe(str, exc)
    if evalue is None:
        evalue = _safe(repr, exc) or f"<unprintable {ename} object>"
    text = _safe(lambda: "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__)))
    if text is None:        # the formatter itself called the hostile __str__: frames only, then our line
        frames = _safe(lambda: "".join(tb_module.format_tb(exc.__traceback__))) or ""
        text = f"Traceback (most recent call last):\n{frames}{ename}: {evalue}\n"
    full = cap(text, ERROR_TEXT_MAX) if len(evalue) > TEXT_MAX or len(text) > TEXT_MAX else None
    return cap(ename, 256), cap(evalue, TEXT_MAX), cap(text, TEXT_MAX), full


def _joined(python_text: str, fd_text: str) -> str:
    """The output a task printed through sys.stdout/err, then what it wrote straight to the fd."""
    return python_text + fd_text if fd_text else python_text


def _done(msg: RunTask, status: str, started: float | None, **kw: Any) -> TaskDone:
    return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status=status, started_at=started,
                    completed_at=time.time(), **kw)


def execute(msg: RunTask, result_max: int = RESULT_MAX, fds: FdCapture | None = None) -> TaskDone:
    """Run one task and describe how it ended (never raises for anything the task does).

    A pickled result over `result_max` bytes becomes a `ResultTooLarge` error naming both sizes. With
    `fds` (started), what the task writes straight to fds 1/2 is captured too (after its sys.stdout/err text)."""
    ended = run_task(msg, result_max, fds)
    if type(ended) is tuple:
        return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="ok", started_at=ended[0],
                        completed_at=ended[1], result=ended[2])
    return ended  # type: ignore[return-value]


def run_task(msg: RunTask, result_max: int = RESULT_MAX, fds: FdCapture | None = None) -> Any:
    """`execute`, answering a TaskDone, or (started_at, completed_at, result) for a task that succeeded and wrote
    no output: `frame_of` frames that without building the message (bench_worker.py: ~24k instructions saved)."""
    started = time.time()
    out, err = CappedText(), CappedText()
    token = capture_output(out, err)
    try:
        ended = _run(msg, started, result_max)
    finally:
        fd_out, fd_err = fds.take() if fds is not None else ("", "")
        restore_output(token)
    if out.kept or out.dropped or err.kept or err.dropped or fd_out or fd_err:
        reply = _done(msg, "ok", started, result=ended[2]) if type(ended) is tuple else ended
        return TaskDone(task_id=reply.task_id, attempt=reply.attempt, status=reply.status,
                        started_at=reply.started_at, completed_at=reply.completed_at, ename=reply.ename,
                        evalue=reply.evalue, traceback=reply.traceback, result=reply.result,
                        stdout=_joined(out.text(), fd_out), stderr=_joined(err.text(), fd_err),
                        error_full=reply.error_full)
    return ended


def frame_of(msg: RunTask, ended: Any) -> bytes:
    """The frame answering `msg` with `ended` (a `run_task` answer)."""
    if type(ended) is tuple:
        return done_ok_frame(msg.task_id, msg.attempt, ended[0], ended[1], ended[2])
    return proto.encode_frame(*to_wire(ended))


def _run(msg: RunTask, started: float, result_max: int) -> Any:
    try:
        try:
            call = unpack_call(msg.payload)
        except FunctionNotCached:           # restarted or evicted: the controller resends it with the function
            return _done(msg, FN_UNKNOWN, started)
        with lend(*call) as (f, args, kwargs):      # `__main__` code sees the namespace
            check_dependencies(f)
            if _TR is not None:
                _TR.mark("w_call")
            value = f(*args, **kwargs) if msg.actor_id is None else ACTORS.run(msg, f, args, kwargs)
            if _TR is not None:
                _TR.mark("w_return")
    except UnmetDependency as exc:
        ename, evalue, tb = describe_exception(exc)
        if type(exc) is UnmetDependency:
            return _done(msg, "unmet", started, ename="UnmetDependency", evalue=cap(str(exc.evalue), TEXT_MAX))
        return _done(msg, "error", started, ename=ename, evalue=cap(str(exc.evalue), TEXT_MAX), traceback=tb)
    except BaseException as exc:  # noqa: BLE001 - the task's own failure, SystemExit/KeyboardInterrupt included
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc.__traceback__ = exc.__traceback__.tb_next          # drop this function's own frame
        ename, evalue, tb, full = describe_exception_full(exc)
        return _done(msg, "error", started, ename=ename, evalue=evalue, traceback=tb, error_full=full)
    try:
        result = pack_result(value)
    except BaseException as exc:  # noqa: BLE001 - unpicklable, or a __reduce__ that raises
        ename, evalue, tb = describe_exception(exc)
        kind = _safe(lambda: type(value).__name__) or "object"
        return _done(msg, "error", started, ename=ename, traceback=tb,
                     evalue=cap(f"the result (a {kind}) could not be pickled: {evalue}", TEXT_MAX))
    if len(result) > result_max:
        return _done(msg, "error", started, ename=RESULT_TOO_LARGE,
                     evalue=f"the pickled result is {len(result)} bytes, over the cap of {result_max} bytes")
    return started, time.time(), result


class _Pipe:
    """The worker's end of the socket pair: blocking reads of whole messages, framed writes."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.decoder = proto.FrameDecoder(proto.DEFAULT_LIMITS)
        self.pending: list[Any] = []
        self.scratch = bytearray(proto.RECV_CHUNK)
        self.lock = threading.Lock()        # threaded actor calls answer from their own threads

    def recv(self) -> Any | None:
        while not self.pending:
            if not self.fill():
                return None
        return self.pending.pop(0)

    def fill(self) -> bool:
        """One read into `pending` (it may end inside a frame); False when the nanny closed the pipe."""
        try:
            data = proto.recv_into(self.sock, self.scratch)
        except InterruptedError:
            return True
        if not data:
            return False
        self.pending.extend(from_wire(h, b) for h, b in self.decoder.feed(data))
        return True

    def send(self, msg: Any) -> None:
        self.send_frame(proto.encode_frame(*to_wire(msg)))

    def send_frame(self, frame: bytes) -> None:
        with self.lock:
            self.sock.sendall(frame)


class _Direct:
    """The worker's own connection to the controller: tasks come straight from it and answers go straight back.

    The nanny keeps registration, heartbeats and control (abort, limits, restarts); it learns what runs from
    the shared TaskSlot. Attaching is tried whenever the nanny says so (a Heartbeat on the pipe: it has just
    registered, or started this worker); a failure only means tasks keep coming through the nanny.
    """

    def __init__(self, info: dict[str, Any]):
        self.info = info
        self.link: Any = None
        self.queue: list[Any] = []          # messages read from the link, not yet handled
        self.lost = False                   # (re)attach once, when idle: the link broke or the nanny asked
        self.shared: socket.socket | None = None    # staged tasks (the controller's PullOffer; pulling.py)
        self.table: PullTable | None = None
        self.index = 0                      # this worker's entry in the pull table
        self.stage_buf = bytearray(0)

    def attach(self) -> bool:
        """Connect and attach (the caller has dropped any previous link); False if the controller refused."""
        self.queue = []
        link = None
        try:
            try:                # the controller's Unix-domain socket when it is on this host, else TCP
                link = SyncLink.connect(self.info["host"], int(self.info["port"]), self.info["key"], "engine",
                                        timeout_s=ATTACH_TIMEOUT_S, unix_path=self.info.get("unix"))
            except ConnectionFailed:
                if not self.info.get("unix"):
                    raise
                link = SyncLink.connect(self.info["host"], int(self.info["port"]), self.info["key"], "engine",
                                        timeout_s=ATTACH_TIMEOUT_S)
            link.send(AttachWorker(uuid=self.info["uuid"]))
        except (ConnectionFailed, ProtocolError, OSError) as exc:
            if link is not None:
                link.close()
            log.info("worker %d: no direct link to the controller (tasks come through the nanny): %s", os.getpid(), exc)
            return False
        self.link = link
        return True

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None

    def stop_pulling(self) -> None:
        """Let go of the staging socket and the pull table (a take needs the link it is reported on)."""
        shared, table, self.shared, self.table = self.shared, self.table, None, None
        if shared is not None:
            shared.close()
        if table is not None:
            table.close()

    def start_pulling(self, offer: PullOffer) -> None:
        """Fetch the staging socket and the pull table from the controller (`offer`: where, and its token)."""
        self.stop_pulling()
        fds: list[int] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(ATTACH_TIMEOUT_S)
                proto.unix_address(offer.path, conn.connect)
                conn.sendall(offer.token.encode() + b"\n")
                _, fds, _, _ = socket.recv_fds(conn, 16, 2)
            if len(fds) != 2:
                raise OSError(f"got {len(fds)} descriptors, not 2")
            for fd in fds:
                os.set_inheritable(fd, False)
            self.shared = socket.socket(fileno=fds[0])
            self.shared.setblocking(False)
            self.table = PullTable(fds[1])
        except OSError as exc:
            owned = (self.shared is not None) + (self.table is not None)   # (those close their descriptors)
            for fd in fds[owned:]:
                os.close(fd)
            self.stop_pulling()
            log.info("worker %d: not pulling (%s): tasks come as they are sent", os.getpid(), exc)
            return
        self.index = offer.index
        self.stage_buf = bytearray(STAGE_FRAME_MAX + 16)


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when the nanny dies (Linux; elsewhere the pipe's EOF does it)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)          # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:       # the nanny died before the call above took effect
        os._exit(0)


class _Poller:
    """The worker's readiness wait: file descriptors with tags; `wait(timeout)` gives the tags of the readable ones.

    epoll directly where there is one (a wake-up costs a third of a `selectors` one: 2.2k vs 7.1k instructions,
    callgrind; one wake-up per task at hwm=1), else the `selectors` module."""

    def __init__(self) -> None:
        self._tags: dict[int, Any] = {}
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._sel = None if self._epoll is not None else selectors.DefaultSelector()

    def register(self, fd: Any, tag: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        if self._epoll is not None:
            self._epoll.register(fd, select.EPOLLIN)
        else:
            self._sel.register(fd, selectors.EVENT_READ, tag)  # type: ignore[union-attr]
        self._tags[fd] = tag

    def unregister(self, fd: Any) -> None:
        fd = fd if isinstance(fd, int) else fd.fileno()
        self._tags.pop(fd, None)
        try:
            if self._epoll is not None:
                self._epoll.unregister(fd)
            else:
                self._sel.unregister(fd)  # type: ignore[union-attr]
        except (KeyError, ValueError, OSError):
            pass

    def wait(self, timeout: float | None = None) -> list[Any]:
        if self._epoll is not None:
            tags = self._tags
            return [tags[fd] for fd, _ in self._epoll.poll(-1 if timeout is None else timeout)]
        return [key.data for key, _ in self._sel.select(timeout)]  # type: ignore[union-attr]

    def close(self) -> None:
        if self._epoll is not None:
            self._epoll.close()
        else:
            self._sel.close()  # type: ignore[union-attr]


def serve(sock: socket.socket, result_max: int = RESULT_MAX, slot: TaskSlot | None = None,
          attach: dict[str, Any] | None = None) -> int:
    """Run tasks from the nanny (and from the direct link, given `attach`) until the nanny closes the pipe.

    Every task is recorded in `slot` while it runs (the nanny's view of it); an answer goes back the way
    its task came. Returns the exit code.
    """
    pipe = _Pipe(sock)
    direct = _Direct(attach) if attach else None
    os.register_at_fork(after_in_child=lambda: _let_go(pipe, direct))
    fds = FdCapture()
    fds.start()                 # fds 1/2 -> the capture pipes, for this process's life
    sel = _Poller()
    sel.register(sock, None)
    for r in fds.read_ends:     # written while idle (no task runs): passed on to the original fds
        sel.register(r, _IDLE_OUTPUT)
    pipe.send(Heartbeat())      # ready
    try:
        while True:
            try:
                if direct is not None and direct.lost and not pipe.pending and not direct.queue \
                        and not sel.wait(0):        # only when idle: a task already sent runs first
                    _attach(direct, sel)            # once; again at the nanny's next Heartbeat (it re-registered)
                fresh = False           # the direct link was read in this turn (see below)
                if not pipe.pending and (direct is None or not direct.queue):
                    tags = sel.wait()
                    if _TR is not None:
                        _TR.wake = time.time_ns()
                    for tag in tags:
                        if tag is None:
                            if not pipe.fill():
                                return 0
                        elif tag is _IDLE_OUTPUT:
                            fds.forward()
                        else:
                            _read_direct(direct, sel)
                            fresh = True
                if pipe.pending:
                    msg = pipe.pending.pop(0)
                    if isinstance(msg, RunTask):
                        if ACTORS.is_threaded(msg):     # an actor call: in its actor's threads (fds 1/2 not captured)
                            ACTORS.submit(msg, lambda m: execute(m, result_max), pipe.send)
                        else:
                            _run_one(msg, result_max, slot, pipe, pipe.send_frame, fds)
                    elif isinstance(msg, DeleteActor):
                        ACTORS.delete(msg.actor_id, msg.incarnation)
                    elif isinstance(msg, Heartbeat) and direct is not None and direct.link is None:
                        direct.lost = True              # the nanny has registered: attach (when idle, above)
                elif direct is not None and direct.queue:
                    msg = direct.queue.pop(0)
                    if isinstance(msg, RunTask):    # one that waited in the queue: the link is read again once the
                        _run_one(msg, result_max, slot, pipe,   # slot shows it started, for a cancel (direct_links.py)
                                 lambda frame: _answer_direct(direct, sel, _take(direct, slot, msg) + frame), fds,
                                 None if fresh else lambda m: _read_direct(direct, sel, m))
            except KeyboardInterrupt:       # a signal meant for a task that had just ended: keep serving
                continue
            except (OSError, proto.ProtocolError):
                return 0
    finally:
        if _TR is not None:
            _TR.flush()
        sel.close()
        if direct is not None:
            direct.close()
        fds.stop()


_IDLE_OUTPUT = "idle output"        # a selector key's data: a capture pipe


def _let_go(pipe: _Pipe, direct: Any) -> None:
    """In a process a task forks: let go of this worker's connections (detached, not shut down: the worker keeps
    them), so that they end when the worker does, however long the child lives (the nanny sees the worker die, the
    controller the tasks queued behind it: direct_links.py). A child that goes on in this code finds them closed
    and ends, instead of reading and writing the worker's messages as a second process."""
    proto.let_go(pipe.sock)
    if direct is not None and direct.link is not None:
        proto.let_go(direct.link.sock)


def _run_one(msg: RunTask, result_max: int, slot: TaskSlot | None, pipe: _Pipe, answer: Any,
             fds: FdCapture | None = None, cancelled: Any = None) -> None:
    """Run `msg` here and `answer(frame)` its TaskDone; wake the nanny after if it asked. `cancelled(msg)`, once
    the slot shows `msg` started: True if it must not run (it is answered `aborted`, never started)."""
    if _TR is not None:
        _TR.tid = msg.task_id
        _TR.lines.append(f"{msg.task_id} w_wake {_TR.wake}\n")
        _TR.mark("w_decoded")
    if slot is not None:
        slot.started(msg.task_id, msg.attempt, msg.time_limit_s, time.time(), time.monotonic())
    if cancelled is not None and cancelled(msg):
        answer(frame_of(msg, _aborted(msg)))
    else:
        answer(frame_of(msg, run_task(msg, result_max, fds)))
    if _TR is not None:
        _TR.mark("w_sent")
    if slot is not None and slot.ended():
        pipe.send(Heartbeat())              # the nanny holds a task for us: it may send it now


def _attach(direct: Any, sel: _Poller) -> None:
    """(Re)connect the direct link and watch it (any previous one is dropped first)."""
    _drop_direct(direct, sel)
    direct.lost = False
    if direct.attach():
        sel.register(direct.link.sock, direct)


def _aborted(msg: RunTask) -> TaskDone:
    return _done(msg, "aborted", None, ename="TaskAborted", evalue="aborted before it started")


def _read_direct(direct: Any, sel: _Poller, current: RunTask | None = None) -> bool:
    """Queue the tasks the direct link has (everything it holds, without waiting) and carry out its cancels: a task
    still queued is dropped and answered `aborted`. True if `current` (taken from the queue, not run yet) was
    cancelled, or the link closed or broke: it is dropped then, with everything queued (the controller accounts
    for them, direct_links.py), so `current` must not run either."""
    hit = False
    ready = current is None         # (woken by epoll for it: readable, no poll first)
    try:
        while True:                 # (once when idle: epoll says when more comes; before a queued task, all of it)
            msgs = direct.link.recv_many(block=False, ready=ready)
            ready = False
            if not msgs:
                return hit
            for msg in msgs:
                if type(msg) is RunTask:
                    direct.queue.append(msg)
                elif type(msg) is PullOffer:
                    direct.start_pulling(msg)
                elif type(msg) is not CancelTask:       # (nothing else comes this way)
                    log.warning("worker %d: ignored a %s on the direct link", os.getpid(), type(msg).__name__)
                elif current is not None and (msg.task_id, msg.attempt) == (current.task_id, current.attempt):
                    hit = True
                else:
                    _drop_queued(direct, sel, msg)
                if direct.link is None:         # an answer could not be sent: dropped
                    return True
            if current is None:
                return hit
    except (ConnectionFailed, ProtocolError) as exc:
        log.info("worker %d: the direct link closed (%s); tasks come through the nanny", os.getpid(), exc)
        _drop_direct(direct, sel)
        return True


def _drop_queued(direct: Any, sel: _Poller, cancel: CancelTask) -> None:
    """A cancel of a task still in the direct queue: dropped and answered `aborted` (else: running, ended or unknown,
    the nanny's to judge)."""
    for queued in direct.queue:
        if (queued.task_id, queued.attempt) == (cancel.task_id, cancel.attempt):
            direct.queue.remove(queued)
            return _answer_direct(direct, sel, frame_of(queued, _aborted(queued)))


_STAGE_DECODER = proto.FrameDecoder(proto.DEFAULT_LIMITS)


def _take(direct: Any, slot: TaskSlot | None, ended: RunTask) -> bytes:
    """Before answering `ended`: take a staged task if the controller has some and nothing else waits for this
    worker; it runs next, and the answer is preceded by its Took (pulling.py). The pull table records the take."""
    table = direct.table
    if table is None or direct.queue or not table.staging() or ended.actor_role is not None \
            or (slot is not None and slot.nanny_waits()):
        return b""                                  # (b"" + frame is frame itself: no copy)
    index = direct.index
    table.begin(index)
    try:
        n = direct.shared.recv_into(direct.stage_buf)
    except (BlockingIOError, InterruptedError):
        table.claimed(index, 0)
        return b""
    except OSError:
        table.claimed(index, 0)
        direct.stop_pulling()
        return b""
    if _STOP_IN_TAKE is not None:
        _stop_in_take(_STOP_IN_TAKE)
    seq = int.from_bytes(direct.stage_buf[:8], "big")
    table.claimed(index, seq)
    try:
        (header, buffers), = _STAGE_DECODER.feed(bytes(memoryview(direct.stage_buf)[8:n]))
        msg = from_wire(header, buffers)
    except (ValueError, ProtocolError) as exc:      # cannot happen (the controller wrote it): this worker ends, and
        log.error("worker %d: a staged task did not decode (%s)", os.getpid(), exc)   # the controller counts the take
        raise ProtocolError(f"a staged task did not decode: {exc}") from exc        # lost with it (pulling.py)
    direct.queue.append(msg)
    return took_frame(msg.task_id, msg.attempt, seq)


def _stop_in_take(path: str) -> None:
    """Tests (STOP_IN_TAKE_ENV): the first worker to get here stops itself between its `recv` and its claim, the
    window pulling.py must settle; it writes its pid to `path` first."""
    global _STOP_IN_TAKE
    _STOP_IN_TAKE = None
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError:
        return                                      # another worker did
    os.write(fd, f"{os.getpid()}\n".encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGSTOP)


def _answer_direct(direct: Any, sel: _Poller, frame: bytes) -> None:
    if direct.link is None:
        return
    try:
        direct.link.send_frame(frame)
    except ConnectionFailed as exc:     # the controller reports the task's loss: the nanny's TaskDone or the link's
        log.info("worker %d: could not answer over the direct link: %s", os.getpid(), exc)
        _drop_direct(direct, sel)


def _drop_direct(direct: Any, sel: _Poller) -> None:
    if direct.link is not None:
        sel.unregister(direct.link.sock)
        direct.close()
        direct.lost = True
    direct.stop_pulling()
    direct.queue = []               # tasks it brought (or took) are the controller's to account for (the link closed)


def _interruptible() -> None:
    """SIGINT raises KeyboardInterrupt in the running task (`Client.send_signal`), however the cluster was started:
    a process started in the background by a shell, or by `nohup`, inherits SIGINT ignored (or blocked), and Python
    then leaves it so."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def main(argv: list[str] | None = None) -> int:
    """`python -m real_cluster.worker --fd N` (started by the nanny, not by hand)."""
    parser = argparse.ArgumentParser(prog="real_cluster.worker")
    parser.add_argument("--fd", type=int, required=True, help="the nanny's socket pair end")
    parser.add_argument("--result-max", type=int, default=RESULT_MAX, help="largest pickled result, bytes")
    parser.add_argument("--slot-fd", type=int, default=None, help="the shared TaskSlot (worker_slot.py)")
    parser.add_argument("--generation", type=int, default=0, help="workers this engine had before (namespace.py)")
    args = parser.parse_args(argv)
    set_generation(args.generation)
    _die_with_parent()
    _interruptible()
    sock = socket.socket(fileno=args.fd)
    os.set_inheritable(args.fd, False)              # not passed on to programs a task starts (os.system, ...)
    sock.setblocking(True)
    attach = os.environ.pop(ATTACH_ENV, None)       # (not left for the tasks to read)
    global _TR
    trace_dir = os.environ.pop(TRACE_ENV, None)
    _TR = _Trace(trace_dir) if trace_dir else None
    global _STOP_IN_TAKE
    _STOP_IN_TAKE = os.environ.pop(STOP_IN_TAKE_ENV, None)
    if args.slot_fd is not None:
        os.set_inheritable(args.slot_fd, False)
    slot = TaskSlot(fd=args.slot_fd) if args.slot_fd is not None else None
    return serve(sock, min(args.result_max, RESULT_MAX), slot, json.loads(attach) if attach and slot else None)


if __name__ == "__main__":
    sys.exit(main())
