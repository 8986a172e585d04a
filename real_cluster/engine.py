"""An engine process: registers with the controller, runs one task at a time, sends heartbeats.

How this works. Two threads share one authenticated `SyncLink`:
- the main thread reads every message that has arrived in one go (RunTask joins a local FIFO,
  CancelTask is recorded, StopEngine queues a stop behind the tasks already received), then runs
  the queued tasks in order: unpickle, check functional dependencies, call, and report a TaskDone
  (`ok` with the pickled result, `error` with the traceback, `unmet` when a dependency was unmet,
  `aborted` when cancelled before it started). Before each task it picks up, without waiting,
  whatever arrived meanwhile (so a cancel is seen). Reading in the thread that runs the tasks saves
  a thread hop per task (bench_live.py: 1 ms tasks, no-op burst);
- the heartbeat thread sends a Heartbeat every `hb_period_s` (also while a task runs).
If the connection drops, the engine tries to reconnect for `retry_for_s` seconds (registering
again, under a new id), then exits cleanly.

Run: `python -m real_cluster.engine --file CONNECTION_FILE` or `sched-lab engine --file ...`.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading
import time
import uuid
from collections import deque
from pathlib import Path

from .error import ConnectionFailed, ProtocolError, UnmetDependency
from .functional import check_dependencies
from .logs import configure_logging
from .messages import CancelTask, Heartbeat, Register, Registered, RunTask, StopEngine, TaskDone
from .profile import ConnectionInfo, read_connection_file
from .serialize import format_exception, pack_result, unpack_call
from .sync_link import SyncLink

log = logging.getLogger("real_cluster.engine")
_LOST = object()
_STOP = object()


class Engine:
    """One engine. `run()` returns an exit code (0 after a clean stop or giving up reconnecting)."""

    def __init__(self, info: ConnectionInfo, retry_for_s: float = 20.0, speed: float = 1.0,
                 labels: tuple[str, ...] = ()):
        self.info = info
        self.retry_for_s = retry_for_s
        self.speed = speed
        self.labels = tuple(labels)
        self.uuid = uuid.uuid4().hex
        self.engine_id: int | None = None
        self._link: SyncLink | None = None
        self._cancelled: set[tuple[str, int]] = set()
        self._stopping = False

    # --------------------------------------------------------------------------- lifecycle
    def run(self) -> int:
        while not self._stopping:
            link = self._connect()
            if link is None:
                log.warning("could not reach the controller for %.0f s; exiting", self.retry_for_s)
                return 0
            self._serve(link)
        log.info("engine %s stopped", self.engine_id)
        return 0

    def _connect(self) -> SyncLink | None:
        deadline = time.monotonic() + self.retry_for_s
        delay = 0.05
        while True:
            try:
                link = SyncLink.connect(self.info.host, self.info.port, self.info.key, "engine")
                link.send(Register(uuid=self.uuid, pid=os.getpid(), hostname=socket.gethostname(),
                                   speed=self.speed, labels=self.labels))
                reply = link.recv()
                if not isinstance(reply, Registered):
                    raise ProtocolError(f"expected registered, got {type(reply).__name__}")
                self.engine_id = reply.engine_id
                log.info("registered as engine %d with %s:%d", reply.engine_id, self.info.host, self.info.port)
                self._hb_period = reply.hb_period_s
                return link
            except (ConnectionFailed, ProtocolError) as exc:
                if time.monotonic() + delay > deadline:
                    return None
                log.info("controller not reachable (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _serve(self, link: SyncLink) -> None:
        self._link = link
        self._cancelled.clear()
        done = threading.Event()
        beater = threading.Thread(target=self._heartbeat, args=(link, done), name="engine-heartbeat", daemon=True)
        beater.start()
        todo: deque = deque()
        connected = True
        try:
            while True:
                if connected:
                    try:
                        connected = self._take(link.recv_many(block=not todo), todo)
                    except (ConnectionFailed, ProtocolError) as exc:
                        log.info("reader stopped: %s", exc)
                        todo.append(_LOST)
                        connected = False
                if not todo:
                    continue
                item = todo.popleft()
                if item is _LOST:
                    log.warning("lost the controller connection")
                    break
                if item is _STOP:
                    self._stopping = True
                    break
                self._run_task(link, item)
        finally:
            done.set()
            link.close()
            beater.join(timeout=2)

    def _take(self, msgs: list, todo: deque) -> bool:
        """File received messages: tasks and a stop join `todo`, cancels are recorded. False after a stop."""
        for msg in msgs:
            if isinstance(msg, RunTask):
                todo.append(msg)
            elif isinstance(msg, CancelTask):
                self._cancelled.add((msg.task_id, msg.attempt))
            elif isinstance(msg, StopEngine):
                todo.append(_STOP)
                return False
            else:
                log.warning("ignoring unexpected %s from the controller", type(msg).__name__)
        return True

    def _heartbeat(self, link: SyncLink, done: threading.Event) -> None:
        while not done.wait(self._hb_period):
            try:
                link.send(Heartbeat())
            except ConnectionFailed:
                return

    # ---------------------------------------------------------------------------- running
    def _run_task(self, link: SyncLink, msg: RunTask) -> None:
        key = (msg.task_id, msg.attempt)
        if key in self._cancelled:
            self._cancelled.discard(key)
            reply = TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="aborted", started_at=None,
                             completed_at=time.time(), ename="TaskAborted", evalue="aborted before it started")
        else:
            reply = execute(msg)
        try:
            link.send(reply)
        except ConnectionFailed:
            log.warning("could not report task %s: connection lost", msg.task_id)


def execute(msg: RunTask) -> TaskDone:
    """Run one task and describe how it ended (never raises for anything the task does)."""
    started = time.time()
    try:
        f, args, kwargs = unpack_call(msg.payload)
        check_dependencies(f)
        value = f(*args, **kwargs)
        result = pack_result(value)
    except UnmetDependency as exc:
        if type(exc) is UnmetDependency:
            return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="unmet", started_at=started,
                            completed_at=time.time(), ename="UnmetDependency", evalue=str(exc.evalue))
        ename, evalue, tb = format_exception(exc)
        return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="error", started_at=started,
                        completed_at=time.time(), ename=ename, evalue=str(exc.evalue), traceback=tb)
    except BaseException as exc:  # the task's own failure, including SystemExit/KeyboardInterrupt raised by it
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc.__traceback__ = exc.__traceback__.tb_next          # drop this function's own frame
        ename, evalue, tb = format_exception(exc)
        return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="error", started_at=started,
                        completed_at=time.time(), ename=ename, evalue=evalue, traceback=tb)
    return TaskDone(task_id=msg.task_id, attempt=msg.attempt, status="ok", started_at=started,
                    completed_at=time.time(), result=result)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine's options."""
    parser.add_argument("--file", required=True, help="engine connection file (controller-engine.json)")
    parser.add_argument("--log", default=None, help="log file (default: the profile's log folder, else stderr)")
    parser.add_argument("--retry-for", type=float, default=20.0, help="seconds to keep retrying the controller")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="speed factor this engine advertises to the schemes (default 1; e.g. `fastest` uses it)")
    parser.add_argument("--label", action="append", default=[], metavar="LABEL",
                        help="a label this engine advertises to the schemes (repeatable)")


def main(argv: list[str] | None = None) -> int:
    """`python -m real_cluster.engine --file CONNECTION_FILE [--log PATH] [--retry-for S] [--speed F] [--label L]`."""
    parser = argparse.ArgumentParser(prog="real_cluster.engine")
    add_engine_arguments(parser)
    return run_engine(parser.parse_args(argv))


def run_engine(args: argparse.Namespace) -> int:
    """Start an engine from parsed arguments; returns the exit code."""
    if not 0 < args.speed < float("inf"):
        print(f"engine: --speed must be a number > 0, got {args.speed}", file=sys.stderr)
        return 2
    if any(not label for label in args.label):
        print("engine: --label must not be empty", file=sys.stderr)
        return 2
    try:
        info = read_connection_file(args.file)
    except (OSError, ValueError) as exc:
        print(f"engine: cannot read connection file {args.file}: {exc}", file=sys.stderr)
        return 2
    log_path = Path(args.log) if args.log else None
    if log_path is None:
        log_dir = Path(args.file).resolve().parent.parent / "log"
        if log_dir.is_dir():
            log_path = log_dir / f"engine-{os.getpid()}.log"
    configure_logging(log_path, "engine")
    return Engine(info, retry_for_s=args.retry_for, speed=args.speed, labels=tuple(args.label)).run()


if __name__ == "__main__":
    sys.exit(main())
