"""Cluster: start a controller and N engines as local subprocesses, and always stop them.

`with Cluster(n=4, profile="demo") as rc:` yields a connected Client once all engines have
registered; leaving the block shuts everything down (politely, then SIGTERM, then SIGKILL).
`start()` / `stop()` do the same by hand. The pids go to `<profile>/pid/cluster.json` so
`sched-lab cluster stop` can stop a cluster started elsewhere.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sched_lab.core.scheme_api import check_scheme_spec, load_scheme_modules, scheme_module_path

from .client import Client
from .error import ClusterError
from .profile import CLIENT_FILE, ENGINE_FILE, pid_alive, profile_dir, wait_for_connection_file

log = logging.getLogger("real_cluster.cluster")

START_TIMEOUT_S = 30.0


class Cluster:
    """A local cluster. `scheme` (`NAME[:k=v,..]`), `scheme_modules` and `hwm` go to the controller; `db` is
    "sqlite" (the profile's tasks.db) or "memory"; `engine_args` to every engine (e.g. ["--speed", "2"])."""

    def __init__(self, n: int = 4, profile: str = "default", scheme: str = "leastload", hwm: int = 1,
                 db: str = "sqlite", controller_args: list[str] | None = None, engine_args: list[str] | None = None,
                 detach: bool = False, memory_limit: int | None = None,
                 scheme_modules: list[str] | tuple[str, ...] = ()):
        if n < 0:
            raise ValueError("n must be >= 0")
        self.n = n
        self.profile = profile
        self.scheme_modules = [scheme_module_path(m) for m in scheme_modules]
        load_scheme_modules(self.scheme_modules)      # a bad scheme or module fails here, not in the controller
        self.scheme = check_scheme_spec(scheme)
        self.hwm = hwm
        self.db = db
        self.controller_args = list(controller_args or [])
        self.engine_args = list(engine_args or [])
        if memory_limit is not None:        # each engine's worker is restarted above it (its task: EngineError)
            self.engine_args += ["--memory-limit", str(int(memory_limit))]
        self.detach = detach
        self.dir = profile_dir(profile)
        self.controller: subprocess.Popen | None = None
        self.engines: list[subprocess.Popen] = []
        self.client: Client | None = None

    # ---------------------------------------------------------------------------- processes
    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        out = open(self.dir / "log" / log_name, "ab")
        try:
            return subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=self.detach,
                                    close_fds=True)
        finally:
            out.close()

    def start_controller(self) -> None:
        """Start the controller and wait for its connection file."""
        if self.controller is not None and self.controller.poll() is None:
            raise RuntimeError("the controller is already running")
        self.controller = self._spawn(["real_cluster.controller_app", "--profile", self.profile, "--scheme",
                                       self.scheme, "--hwm", str(self.hwm), "--db", self.db,
                                       *[a for m in self.scheme_modules for a in ("--scheme-module", m)],
                                       *self.controller_args],
                                      "controller.out")
        try:
            wait_for_connection_file(self.dir / "security" / CLIENT_FILE, START_TIMEOUT_S, pid=self.controller.pid)
        except TimeoutError:
            self.stop()
            raise
        self._write_pids()

    def start_engines(self, n: int) -> list[subprocess.Popen]:
        """Start `n` more engines (they register by themselves)."""
        new = [self._spawn(["real_cluster.engine", "--file", str(self.dir / "security" / ENGINE_FILE),
                            *self.engine_args], "engines.out") for _ in range(n)]
        self.engines.extend(new)
        self._write_pids()
        return new

    def start(self, timeout: float = START_TIMEOUT_S) -> Client:
        """Start the controller and the engines; returns a Client once all `n` engines registered."""
        try:
            self.start_controller()
            self.start_engines(self.n)
            self.client = Client(self.dir / "security" / CLIENT_FILE, timeout=timeout)
            self.client.wait_for_engines(self.n, timeout)
        except BaseException:
            self.stop()
            raise
        return self.client

    def _write_pids(self) -> None:
        data = {"controller": self.controller.pid if self.controller else None,
                "engines": [p.pid for p in self.engines if p.poll() is None]}
        (self.dir / "pid" / "cluster.json").write_text(json.dumps(data))

    # --------------------------------------------------------------------------------- stop
    def stop(self, timeout: float = 5.0) -> None:
        """Stop everything this Cluster started (idempotent; escalates to SIGKILL)."""
        asked = False
        if self.client is not None:
            try:
                self.client.shutdown(hub=True)
                asked = True
            except (ClusterError, TimeoutError, RuntimeError, OSError) as exc:   # controller gone or not answering
                log.warning("could not ask the controller to shut down (%r); signalling it instead", exc)
            self.client.close()
            self.client = None
        if not asked and self.controller is not None and self.controller.poll() is None:
            self.controller.send_signal(signal.SIGTERM)     # the controller stops its engines, then exits
        procs = [p for p in [self.controller, *self.engines] if p is not None]
        stop_processes(procs, timeout)
        self.engines = []
        self.controller = None
        pid_file = self.dir / "pid" / "cluster.json"
        if pid_file.exists():
            pid_file.unlink()

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<Cluster profile={self.profile!r} n={self.n} scheme={self.scheme} hwm={self.hwm}>"


def stop_processes(procs: list[subprocess.Popen], timeout: float = 5.0) -> None:
    """Wait for processes to exit; SIGTERM the stragglers, then SIGKILL; always reap."""
    deadline = time.monotonic() + timeout
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for p in alive:
            if sig is not None:
                try:
                    p.send_signal(sig)
                except ProcessLookupError:
                    pass
        for p in alive:
            try:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 2.0


def stop_pids(pids: list[int], timeout: float = 5.0) -> None:
    """Like `stop_processes`, for pids this process did not start (SIGTERM, then SIGKILL)."""
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        alive = [p for p in pids if pid_alive(p)]
        for pid in alive:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while any(pid_alive(p) for p in alive) and time.monotonic() < deadline:
            time.sleep(0.05)


def read_pids(profile: str) -> dict[str, Any] | None:
    """The pids recorded for a profile's cluster, or None."""
    path = Path(profile_dir(profile, create=False)) / "pid" / "cluster.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
