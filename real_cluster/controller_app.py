"""Running a controller as a process: options, profile files, logging, signals.

`python -m real_cluster.controller_app --profile NAME [--scheme S[:k=v,..]] [--scheme-module M] [--hwm H]
[--db sqlite|memory]`
(also `sched-lab controller ...`). It first takes the profile's lock (one controller per profile:
a second one exits with an error and touches nothing), binds 127.0.0.1 unless `--ip` says otherwise,
writes the client and engine connection files (mode 0600, one fresh random key each: the client key
cannot register an engine, the engine key cannot submit or query; `--reuse` keeps the previous keys
and port so engines reconnect after a restart), logs to the profile's log folder, and stops cleanly
on SIGTERM/SIGINT or a client's shutdown request. Every file it creates is private (umask 077: the
database, its -wal/-shm files and the logs are 0600).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

from sched_lab.core.options import check_hwm, check_scheme
from sched_lab.core.scheme_api import load_scheme_modules

from . import protocol as proto
from . import tls
from .controller import Controller, ControllerConfig
from .heap import pin_mmap_threshold
from .logs import configure_logging
from .profile import (
    CLIENT_FILE, ENGINE_FILE, ConnectionInfo, ProfileLocked, lock_profile, make_private, pid_alive, profile_dir,
    read_connection_file, write_connection_file,
)
from .taskdb import install_fast_adapters

log = logging.getLogger("real_cluster.controller")
LOOPS = ("auto", "asyncio", "uvloop")
PULL_ENV = "SCHED_LAB_PULL"
LOOP_ENV = "SCHED_LAB_CONTROLLER_LOOP"     # the default of --loop (tests run the controller under both loops)


def loop_factory(kind: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The event loop the controller runs on: None for asyncio's own; uvloop's when `kind` is "uvloop", or "auto"
    and uvloop is installed (`pip install 'sched-lab[fast]'`). Raises ValueError for "uvloop" without uvloop."""
    if kind not in LOOPS:
        raise ValueError(f"--loop must be one of {', '.join(LOOPS)}, got {kind!r}")
    if kind == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        if kind == "uvloop":
            raise ValueError("--loop uvloop: uvloop is not installed (pip install 'sched-lab[fast]')") from None
        return None
    return uvloop.new_event_loop


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
    parser.add_argument("--no-redo-log", dest="redo_log", action="store_false",
                        help="answers wait for the SQLite commit, not for the task database's redo log")
    parser.add_argument("--reuse", action="store_true", help="reuse the key and port of the existing connection files")
    parser.add_argument("--log", default=None, help="log file (default: <profile>/log/controller.log)")
    parser.add_argument("--tls", action="store_true",
                        help="serve TLS with a self-signed certificate pinned in the connection files (engines on "
                             "other hosts)")
    parser.add_argument("--partial-frame-timeout", type=float, default=30.0,
                        help="close a connection whose unfinished frame stops growing this long (seconds)")
    parser.add_argument("--incomplete-frames-cap-mb", type=float, default=320.0,
                        help="MiB all connections together may hold in unfinished frames")
    parser.add_argument("--loop", default=os.environ.get(LOOP_ENV, "auto"), choices=LOOPS,
                        help="event loop: uvloop (the `fast` extra), asyncio, or auto = uvloop when installed "
                             f"(default: ${LOOP_ENV}, else auto)")
    parser.add_argument("--client-out-cap-mb", type=float, default=16.0,
                        help="MiB queued to one client beyond which its results wait in the task database")
    parser.add_argument("--pull", action=argparse.BooleanOptionalAction, default=os.environ.get(PULL_ENV, "1") != "0",
                        help="local workers take the queue's head themselves while every engine is busy, instead of "
                             "waiting for the controller to send it (docs/pull-at-hwm1.md; Linux; default: on, "
                             f"off with --no-pull or ${PULL_ENV}=0)")
    parser.add_argument("--owner-pid", type=int, default=None, metavar="PID",
                        help="stop (engines too) when this process ends, however it ends: the parent that started "
                             "this cluster (a Cluster not daemonized)")


def run_controller(args: argparse.Namespace) -> int:
    """Run a controller until it is stopped; returns the exit code."""
    try:
        check_hwm(args.hwm)
        load_scheme_modules(args.scheme_module)
        scheme = check_scheme(args.scheme)
        factory = loop_factory(args.loop)
    except ValueError as exc:                    # InvalidOption is a ValueError too
        print(f"controller: {exc}", file=sys.stderr)
        return 2
    if args.partial_frame_timeout <= 0 or args.incomplete_frames_cap_mb <= 0 or args.client_out_cap_mb <= 0:
        print("controller: --partial-frame-timeout and the caps must be > 0", file=sys.stderr)
        return 2
    os.umask(0o077)
    pin_mmap_threshold()                          # relayed large results go back to the kernel (heap.py)
    pdir = profile_dir(args.profile)
    try:
        lock_fd = lock_profile(args.profile)       # held until this process exits
    except ProfileLocked as exc:
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    make_private(pdir)                            # also what an older version left readable
    configure_logging(Path(args.log) if args.log else pdir / "log" / "controller.log", "controller")
    key, engine_key, port = proto.new_key(), proto.new_key(), args.port
    client_path, engine_path = pdir / "security" / CLIENT_FILE, pdir / "security" / ENGINE_FILE
    if args.reuse and client_path.exists():
        old = read_connection_file(client_path)
        key, port = old.key, args.port or old.port
        if engine_path.exists() and read_connection_file(engine_path).key != key:
            engine_key = read_connection_file(engine_path).key
        else:
            log.warning("the previous engine file had no key of its own: engines need the new %s", engine_path)
    tls_cert = tls_key = None
    if args.tls:
        cert, tkey = pdir / "security" / tls.CERT_FILE, pdir / "security" / tls.KEY_FILE
        try:
            if not (args.reuse and cert.exists() and tkey.exists()):
                cert, tkey = tls.make_self_signed(pdir / "security")
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            print(f"controller: {exc}", file=sys.stderr)
            return 1
        tls_cert, tls_key = str(cert), str(tkey)
    install_fast_adapters()                       # this process owns the database (taskdb.py: bench_cpu_split.py)
    config = ControllerConfig(key=key, engine_key=engine_key, tls_cert=tls_cert, tls_key=tls_key, host=args.ip,
                              port=port, scheme=scheme, hwm=args.hwm, scheme_modules=tuple(args.scheme_module),
                              db_path=str(pdir / "tasks.db") if args.db == "sqlite" else ":memory:",
                              hb_period_s=args.hb_period, hb_misses=args.hb_misses, seed=args.seed,
                              journal_path=args.journal, redo_log=args.redo_log,
                              partial_frame_timeout_s=args.partial_frame_timeout,
                              incomplete_frames_cap_bytes=int(args.incomplete_frames_cap_mb * 2**20),
                              client_out_cap_bytes=int(args.client_out_cap_mb * 2**20),
                              unix_path=str(pdir / "security" / proto.UNIX_SOCKET_NAME), pull=args.pull)
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(_serve(config, pdir, args))
    except sqlite3.Error as exc:                 # a damaged or unusable task database
        log.error("controller failed: task database %s: %s", config.db_path, exc)
        print(f"controller: task database {config.db_path}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:                       # port taken, profile unusable
        log.error("controller failed: %s", exc)
        print(f"controller: {exc}", file=sys.stderr)
        return 1
    finally:
        os.close(lock_fd)
    return 0


async def _serve(config: ControllerConfig, pdir: Path, args: argparse.Namespace) -> None:
    controller = Controller(config)
    port = await controller.start()
    log.info("event loop: %s", type(asyncio.get_running_loop()).__module__)
    connect_host = "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host
    info = ConnectionInfo(host=connect_host, port=port, key=config.key, scheme=config.scheme, hwm=config.hwm,
                          controller_pid=os.getpid(), profile=args.profile,
                          tls_fingerprint=tls.fingerprint(Path(config.tls_cert)) if config.tls_cert else None)
    files = [write_connection_file(pdir / "security" / CLIENT_FILE, info),
             write_connection_file(pdir / "security" / ENGINE_FILE, replace(info, key=config.engine_key))]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, controller.stop)
    if args.owner_pid is not None:
        _stop_with_owner(loop, args.owner_pid, controller.stop)
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


def _stop_with_owner(loop: asyncio.AbstractEventLoop, pid: int, stop: Callable[[], None]) -> None:
    """Call `stop` once process `pid` (our parent: the process that made this Cluster) has ended, however it ended
    (a notebook kernel restarted, kill -9, out of memory): a cluster not daemonized must not run on, orphaned,
    holding its profile. Watched with a pidfd (Linux 5.3+; without one, not watched: logged)."""
    def ended() -> None:
        log.warning("the process that started this cluster (pid %d) has ended: stopping", pid)
        stop()

    if os.getppid() != pid:                 # gone already (we were handed to init), or not our parent: no watch
        return ended() if not pid_alive(pid) else log.warning("--owner-pid %d is not this controller's parent", pid)
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:
        return log.warning("cannot watch the process that started this cluster (%s): it runs on if that ends", exc)

    def readable() -> None:
        loop.remove_reader(fd)
        os.close(fd)
        ended()
    loop.add_reader(fd, readable)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="real_cluster.controller_app")
    add_controller_arguments(parser)
    return run_controller(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
