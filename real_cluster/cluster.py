"""Cluster: start a controller and N engines as local subprocesses, and always stop them.

`with Cluster(n=4, profile="demo") as rc:` yields a connected Client once all engines have
registered; leaving the block shuts everything down (politely, then SIGTERM, then SIGKILL).
`start()` / `stop()` do the same by hand. The pids go to `<profile>/pid/cluster.json`, each with
its start time and command line, so `sched-lab cluster stop` can stop a cluster started elsewhere
and never signals a process that merely reuses a recorded pid. `start()` watches the controller:
if it exits during start-up (profile locked, damaged database, port taken) its own error is raised
at once. Processes are started with umask 077 and write their logs 0600.
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
from .profile import (
    CLIENT_FILE, ENGINE_FILE, is_same_process, pid_alive, process_identity, profile_dir, read_connection_file,
)

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
        self._owner: int | None = None      # the process that started it; one forked from it stops nothing (`stop`)

    # ---------------------------------------------------------------------------- processes
    def _spawn(self, args: list[str], log_name: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        out = os.open(self.dir / "log" / log_name, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            return subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env, start_new_session=self.detach,
                                    close_fds=True, umask=0o077)
        finally:
            os.close(out)

    def start_controller(self) -> None:
        """Start the controller and wait for its connection file."""
        if self.controller is not None and self.controller.poll() is None:
            raise RuntimeError("the controller is already running")
        self._owner = os.getpid()
        self.controller = self._spawn(["real_cluster.controller_app", "--profile", self.profile, "--scheme",
                                       self.scheme, "--hwm", str(self.hwm), "--db", self.db,
                                       *[a for m in self.scheme_modules for a in ("--scheme-module", m)],
                                       *([] if self.detach else ["--owner-pid", str(self._owner)]),
                                       *self.controller_args],
                                      "controller.out")
        try:
            self._wait_for_controller(START_TIMEOUT_S)
        except BaseException:
            self.stop()
            raise
        self._write_pids()

    def _wait_for_controller(self, timeout_s: float) -> None:
        """Wait for the controller's connection file; raise its own error at once if it exits first."""
        assert self.controller is not None
        path = self.dir / "security" / CLIENT_FILE
        out_log = self.dir / "log" / "controller.out"
        start = out_log.stat().st_size if out_log.exists() else 0
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if read_connection_file(path).controller_pid == self.controller.pid:
                    return
            except (FileNotFoundError, ValueError):
                pass
            code = self.controller.poll()
            if code is not None:
                said = ""
                try:
                    with open(out_log, "rb") as fh:
                        fh.seek(start)
                        lines = [ln for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
                    said = lines[-1].strip() if lines else ""
                except OSError:
                    pass
                raise ClusterError(f"the controller exited during start-up (code {code}): "
                                   f"{said or 'no message'} (see {out_log})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no connection file at {path} after {timeout_s:.0f} s")
            time.sleep(0.02)

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
        procs = [p for p in [self.controller, *self.engines] if p is not None and p.poll() is None]
        data = {"controller": self.controller.pid if self.controller else None,
                "engines": [p.pid for p in self.engines if p.poll() is None],
                "identity": {str(p.pid): process_identity(p.pid, settle_s=5.0) for p in procs}}
        path = self.dir / "pid" / "cluster.json"
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, path)

    # --------------------------------------------------------------------------------- stop
    def stop(self, timeout: float = 5.0) -> None:
        """Stop everything this Cluster started (idempotent; escalates to SIGKILL). In a process forked from the one
        that started it (a `with` block left in the child, the garbage collector), nothing is stopped: the cluster
        is the parent's, and the child's copy of its client is closed already (client_link.py)."""
        if self._owner is not None and os.getpid() != self._owner:
            self.client = self.controller = None
            self.engines = []
            return
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
        mine = self.controller.pid if self.controller is not None else None
        self.engines = []
        self.controller = None
        pids = read_pids(self.profile)
        if pids is not None and mine is not None and pids.get("controller") == mine:     # never another cluster's
            (self.dir / "pid" / "cluster.json").unlink(missing_ok=True)

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


def stop_pids(pids: list[int], timeout: float = 5.0, identities: dict[str, Any] | None = None) -> None:
    """Like `stop_processes`, for pids this process did not start (SIGTERM, then SIGKILL).

    With `identities` (pid -> recorded start time and command line) only pids that still match are signalled.
    """
    if identities is not None:
        pids = [p for p in pids if is_same_process(p, identities.get(str(p)))]
    for sig, wait_s in ((signal.SIGTERM, timeout), (signal.SIGKILL, 2.0)):
        alive = [p for p in pids if pid_alive(p) and (identities is None or is_same_process(p, identities.get(str(p))))]
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
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def verified_pids(profile: str) -> dict[str, Any] | None:
    """A profile's recorded cluster with only the pids proven to be its processes (start time and command line
    as recorded); None when no recorded controller is still running."""
    data = read_pids(profile)
    if not data:
        return None
    ident = data.get("identity") or {}
    ctl = data.get("controller")
    if not isinstance(ctl, int) or not is_same_process(ctl, ident.get(str(ctl))):
        return None
    engines = [p for p in data.get("engines", []) if isinstance(p, int) and is_same_process(p, ident.get(str(p)))]
    return {"controller": ctl, "engines": engines, "identity": ident}
