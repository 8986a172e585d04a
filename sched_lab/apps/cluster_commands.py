"""`sched-lab cluster start|stop|list`, `sched-lab controller`, `sched-lab engine` (light to import).

Results go to stdout (a table, or `--json`), logs to the profile's log folder. Exit codes:
0 ok, 1 failed (e.g. no cluster running, already running), 2 usage error. `stop` and `list` trust a
recorded pid only while its start time and command line match what was recorded (a stale pid file
never gets an unrelated process signalled).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from real_cluster.controller_app import add_controller_arguments
from real_cluster.engine import add_engine_arguments, memory_size


def register(subparsers: Any) -> None:
    """Add `cluster`, `controller` and `engine` to the sched-lab command line."""
    cluster = subparsers.add_parser("cluster", help="start, stop or list local clusters")
    csub = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", parser_class=type(cluster))
    start = csub.add_parser("start", help="start a controller and N engines")
    start.add_argument("-n", "--n", type=int, default=4, help="number of engines (default 4)")
    start.add_argument("--profile", default="default")
    start.add_argument("--scheme", default="leastload", metavar="NAME[:k=v,..]",
                       help="scheme and its parameters, e.g. powerofd:d=3 (default leastload)")
    start.add_argument("--scheme-module", action="append", default=[], metavar="MODULE|FILE.py",
                       help="import this module or file (it calls sched_lab.register_scheme), here and in the "
                            "controller; repeatable")
    start.add_argument("--hwm", type=int, default=1)
    start.add_argument("--db", default="sqlite", choices=("sqlite", "memory"))
    start.add_argument("--pull", action=argparse.BooleanOptionalAction, default=None,
                       help="local workers take the queue's head themselves while every engine is busy "
                            "(docs/pull-at-hwm1.md; default: the controller's, on)")
    start.add_argument("--daemonize", action="store_true", help="return once started; stop with `cluster stop`")
    start.add_argument("--memory-limit", type=memory_size, default=None, metavar="BYTES",
                       help="restart an engine's worker above this resident memory (e.g. 2G); its task fails")
    start.set_defaults(func=_cluster_start)
    stop = csub.add_parser("stop", help="stop a profile's cluster")
    stop.add_argument("--profile", default="default")
    stop.set_defaults(func=_cluster_stop)
    lst = csub.add_parser("list", help="list profiles and whether their cluster runs")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(func=_cluster_list)
    cluster.set_defaults(func=lambda args: (cluster.print_help(), 2)[1])

    controller = subparsers.add_parser("controller", help="run a controller in the foreground")
    add_controller_arguments(controller)
    controller.set_defaults(func=_controller)
    engine = subparsers.add_parser("engine", help="run an engine that joins a controller")
    add_engine_arguments(engine)
    engine.set_defaults(func=_engine)


def _controller(args: argparse.Namespace) -> int:
    from real_cluster.controller_app import run_controller
    return run_controller(args)


def _engine(args: argparse.Namespace) -> int:
    from real_cluster.engine import run_engine
    return run_engine(args)


def _running(profile: str) -> dict[str, Any] | None:
    from real_cluster.cluster import verified_pids
    return verified_pids(profile)


def _cluster_start(args: argparse.Namespace) -> int:
    import signal
    import threading

    from real_cluster.cluster import Cluster
    if args.n < 0 or args.hwm < 0:
        print("cluster start: -n and --hwm must be >= 0", file=sys.stderr)
        return 2
    from sched_lab.core.scheme_api import check_scheme_spec, load_scheme_modules
    try:
        load_scheme_modules(args.scheme_module)
        args.scheme = check_scheme_spec(args.scheme)
    except ValueError as exc:
        print(f"cluster start: {exc}", file=sys.stderr)
        return 2
    if _running(args.profile):
        print(f"a cluster is already running in profile {args.profile!r}", file=sys.stderr)
        return 1
    stop = threading.Event()
    if not args.daemonize:      # before "cluster started" is printed: a stop from then on is never missed
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    cluster = Cluster(n=args.n, profile=args.profile, scheme=args.scheme, hwm=args.hwm, db=args.db,
                      detach=args.daemonize, memory_limit=args.memory_limit, scheme_modules=args.scheme_module,
                      controller_args=None if args.pull is None else ["--pull" if args.pull else "--no-pull"])
    try:
        client = cluster.start()
    except Exception as exc:
        print(f"cluster start failed: {exc} (see {cluster.dir / 'log'})", file=sys.stderr)
        return 1
    client.close()
    cluster.client = None
    print(f"cluster started: profile={args.profile} engines={args.n} scheme={args.scheme} hwm={args.hwm}")
    print(f"connection file: {cluster.dir / 'security' / 'controller-client.json'}")
    sys.stdout.flush()
    if args.daemonize:
        return 0
    try:
        while not stop.wait(0.5):
            if cluster.controller is None or cluster.controller.poll() is not None:
                break
    finally:
        cluster.stop()
        print("cluster stopped")
    return 0


def _cluster_stop(args: argparse.Namespace) -> int:
    from real_cluster.cluster import stop_pids
    from real_cluster.profile import profile_dir
    pids = _running(args.profile)
    if not pids:
        print(f"no cluster is running in profile {args.profile!r}", file=sys.stderr)
        (profile_dir(args.profile) / "pid" / "cluster.json").unlink(missing_ok=True)     # stale: forget it
        return 1
    try:
        from real_cluster.client import Client
        with Client(profile=args.profile, timeout=2) as client:
            client.shutdown(hub=True)
    except Exception as exc:     # not reachable: fall back to signals
        print(f"controller not reachable ({exc}); signalling", file=sys.stderr)
    stop_pids([pids["controller"], *pids["engines"]], identities=pids["identity"])
    (profile_dir(args.profile) / "pid" / "cluster.json").unlink(missing_ok=True)
    print(f"cluster stopped: profile={args.profile}")
    return 0


def _cluster_list(args: argparse.Namespace) -> int:
    from real_cluster.cluster import verified_pids
    from real_cluster.profile import list_profiles
    rows = []
    for name in list_profiles():
        pids = verified_pids(name)
        running = pids is not None
        rows.append({"profile": name, "running": running, "controller_pid": pids["controller"] if pids else None,
                     "engines": len(pids["engines"]) if pids else 0})
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"{'PROFILE':<24} {'STATE':<8} {'CONTROLLER':>10} {'ENGINES':>7}")
        for r in rows:
            print(f"{r['profile']:<24} {'running' if r['running'] else 'stopped':<8} "
                  f"{r['controller_pid'] or '-':>10} {r['engines']:>7}")
    return 0
