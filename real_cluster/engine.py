"""An engine: a nanny process (connection, heartbeat, engine id) and the worker process it runs tasks in.

How this works (DESIGN §5, "An engine is a nanny and a worker"). The process started here is the
nanny (nanny.py): it registers with the controller, sends heartbeats, queues the tasks it is sent
and never runs user code. It starts a worker process (worker.py) and hands it one task at a time
over a local socket pair; the worker runs the task, capturing its output, and answers with a
TaskDone. (A worker also attaches a direct link to the controller, so that a task its engine gets
while nothing else is out skips the nanny both ways; the nanny still sees and controls it.)
When the worker dies or must be stopped (abort of the running task, `time_limit`,
`--memory-limit`, stopped for longer than the liveness timeout, `shutdown`), the nanny kills it,
reports the task and starts a fresh one; the engine keeps its id. If the controller connection
drops, the nanny tries to reconnect for `retry_for_s` seconds (registering again, under a new id),
then exits cleanly, and its worker with it.

Run: `python -m real_cluster.engine --file CONNECTION_FILE [--memory-limit BYTES]` or `sched-lab engine --file ...`.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from typing import Any

__all__ = ["Engine", "Nanny", "execute", "add_engine_arguments", "run_engine", "main", "memory_size"]


def __getattr__(name: str) -> Any:
    """`Engine`/`Nanny` (nanny.py) and `execute` (worker.py), imported on first use: the CLI imports this module."""
    if name in ("Engine", "Nanny"):
        from .nanny import Nanny
        return Nanny
    if name == "execute":
        from .worker import execute
        return execute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def memory_size(text: str) -> int:
    """Bytes from `123`, `512M`, `2G` (K/M/G/T powers of 1024); argparse type for --memory-limit."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().removesuffix("B")
    try:
        value = float(t[:-1]) * units[t[-1]] if t and t[-1] in units else float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size in bytes: {text!r} (e.g. 2000000000, 512M, 2G)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the memory limit must be positive, got {text!r}")
    return int(value)


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The engine's options."""
    parser.add_argument("--file", required=True, help="engine connection file (controller-engine.json)")
    parser.add_argument("--log", default=None, help="log file (default: the profile's log folder, else stderr)")
    parser.add_argument("--retry-for", type=float, default=20.0, help="seconds to keep retrying the controller")
    parser.add_argument("--memory-limit", type=memory_size, default=None, metavar="BYTES",
                        help="kill and restart the worker when its resident memory exceeds this (e.g. 2G); "
                             "its task fails with EngineError")
    parser.add_argument("--result-max", type=memory_size, default=None, metavar="BYTES",
                        help="largest pickled result a task may return (default and most: the frame cap); "
                             "a larger one fails the task with ResultTooLarge")
    parser.add_argument("--speed", type=float, default=1.0,
                        help="speed factor this engine advertises to the schemes (default 1; e.g. `fastest` uses it)")
    parser.add_argument("--label", action="append", default=[], metavar="LABEL",
                        help="a label this engine advertises to the schemes (repeatable)")


def main(argv: list[str] | None = None) -> int:
    """`python -m real_cluster.engine --file CONNECTION_FILE [--log PATH] [--retry-for S] [--memory-limit BYTES]
    [--speed F] [--label L]`."""
    parser = argparse.ArgumentParser(prog="real_cluster.engine")
    add_engine_arguments(parser)
    return run_engine(parser.parse_args(argv))


def run_engine(args: argparse.Namespace) -> int:
    """Start an engine from parsed arguments; returns the exit code."""
    from .logs import configure_logging
    from .nanny import Nanny
    from .profile import read_connection_file
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
    os.environ["SCHED_LAB_ENGINE_FILE"] = str(Path(args.file).resolve())     # for handles in tasks (actors.py)
    from .protocol import UNIX_SOCKET_NAME
    unix = Path(args.file).resolve().parent / UNIX_SOCKET_NAME      # a controller on this host listens there too
    return Nanny(info, retry_for_s=args.retry_for, memory_limit=getattr(args, "memory_limit", None),
                 result_max=getattr(args, "result_max", None), speed=getattr(args, "speed", 1.0),
                 labels=tuple(getattr(args, "label", ())), unix_path=str(unix) if unix.exists() else None).run()


if __name__ == "__main__":
    sys.exit(main())
