"""Running a controller as a process: options, profile files, logging, signals.

`python -m real_cluster.controller_app --profile NAME [--scheme S[:k=v,..]] [--scheme-module M] [--hwm H]
[--db sqlite|memory]`
(also `sched-lab controller ...`). It binds 127.0.0.1 unless `--ip` says otherwise, writes the
client and engine connection files (mode 0600, fresh random key; `--reuse` keeps the previous key
and port so engines reconnect after a restart), logs to the profile's log folder, and stops
cleanly on SIGTERM/SIGINT or a client's shutdown request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import sys
from pathlib import Path

from sched_lab.core.options import check_hwm, check_scheme
from sched_lab.core.scheme_api import load_scheme_modules

from . import protocol as proto
from .controller import Controller, ControllerConfig
from .logs import configure_logging
from .profile import CLIENT_FILE, ENGINE_FILE, ConnectionInfo, profile_dir, read_connection_file, write_connection_file

log = logging.getLogger("real_cluster.controller")

def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """The controller's options."""
    parser.add_argument("--profile", default="default", help="profile name (under $SCHED_LAB_DIR)")
    parser.add_argument("--ip", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to bind (default: any free port)")
    parser.add_argument("--scheme", default="leastload", metavar="NAME[:k=v,..]",
                        help="leastload (default), lru, plainrandom, twobin, weighted, powerofd[:d=N], jiq, fastest, "
                             "or one registered by --scheme-module")
    parser.add_argument("--scheme-module", action="append", default=[], metavar="MODULE|FILE.py",
                        help="import this module or file first (it calls sched_lab.register_scheme); repeatable")
    parser.add_argument("--hwm", type=int, default=1, help="max outstanding tasks per engine (0 = unlimited)")
    parser.add_argument("--db", default="sqlite", choices=("sqlite", "memory"), help="task database backend")
    parser.add_argument("--hb-period", type=float, default=1.0, help="engine heartbeat period, seconds")
    parser.add_argument("--hb-misses", type=int, default=5, help="missed heartbeats before an engine is lost")
    parser.add_argument("--seed", type=int, default=None, help="seed of the scheduler's random generator")
    parser.add_argument("--journal", default=None, help="record every core event and its actions (pickle) here")
    parser.add_argument("--reuse", action="store_true", help="reuse the key and port of the existing connection files")
    parser.add_argument("--log", default=None, help="log file (default: <profile>/log/controller.log)")


def run_controller(args: argparse.Namespace) -> int:
    """Run a controller until it is stopped; returns the exit code."""
    try:
        check_hwm(args.hwm)
        load_scheme_modules(args.scheme_module)
        scheme = check_scheme(args.scheme)
    except ValueError as exc:                    # InvalidOption is a ValueError too
        print(f"controller: {exc}", file=sys.stderr)
        return 2
    pdir = profile_dir(args.profile)
    configure_logging(Path(args.log) if args.log else pdir / "log" / "controller.log", "controller")
    key, port = proto.new_key(), args.port
    client_path = pdir / "security" / CLIENT_FILE
    if args.reuse and client_path.exists():
        old = read_connection_file(client_path)
        key, port = old.key, args.port or old.port
    config = ControllerConfig(key=key, host=args.ip, port=port, scheme=scheme, hwm=args.hwm,
                              scheme_modules=tuple(args.scheme_module),
                              db_path=str(pdir / "tasks.db") if args.db == "sqlite" else ":memory:",
                              hb_period_s=args.hb_period, hb_misses=args.hb_misses, seed=args.seed,
                              journal_path=args.journal)
    try:
        asyncio.run(_serve(config, pdir, args))
    except (OSError, sqlite3.Error) as exc:      # port taken, profile or task database unusable
        log.error("controller failed: %s", exc)
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    return 0


async def _serve(config: ControllerConfig, pdir: Path, args: argparse.Namespace) -> None:
    controller = Controller(config)
    port = await controller.start()
    connect_host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    info = ConnectionInfo(host=connect_host, port=port, key=config.key, scheme=config.scheme, hwm=config.hwm,
                          controller_pid=os.getpid(), profile=args.profile)
    files = [write_connection_file(pdir / "security" / name, info) for name in (CLIENT_FILE, ENGINE_FILE)]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.stop)
    try:
        await controller.wait_stopped()
        await asyncio.sleep(0.05)       # let the last writes (StopEngine) leave
    finally:
        controller.stop()
        if not args.reuse:
            for path in files:
                try:
                    if read_connection_file(path).controller_pid == os.getpid():
                        path.unlink()
                except (OSError, ValueError):
                    pass
        log.info("controller stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="real_cluster.controller_app")
    add_controller_arguments(parser)
    return run_controller(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
