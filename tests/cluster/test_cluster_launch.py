"""Launching from Python: `Cluster` as a context manager yields a connected client and always stops its
processes (also when the block raises), and they stop too when the process that started them is killed (not when
daemonized); profiles live under $SCHED_LAB_DIR with 0600 connection files, logs and a pid file; an engine that
loses its controller retries for a while, then exits cleanly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _wait import wait_until

from real_cluster import Client, Cluster
from real_cluster.cluster import stop_pids
from real_cluster.profile import list_profiles, pid_alive, profile_dir, sched_lab_dir

pytestmark = pytest.mark.timeout(60)


def test_cluster_context_manager_starts_and_always_stops(lab_dir):
    assert sched_lab_dir() == lab_dir
    with pytest.raises(ZeroDivisionError):
        with Cluster(n=2, profile="ctx", db="memory") as rc:
            assert isinstance(rc, Client) and rc.ids == [0, 1]
            pdir = profile_dir("ctx")
            assert pdir == lab_dir / "profile_ctx" and "ctx" in list_profiles()
            sec = pdir / "security"
            assert {p.name for p in sec.iterdir()} == {"controller-client.json", "controller-engine.json",
                                                       "controller.sock",     # (local workers' direct links)
                                                       "pull.sock"}           # (their staged tasks: pulling.py)
            assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in sec.iterdir())
            assert (pdir / "pid" / "cluster.json").exists() and (pdir / "log" / "controller.log").exists()
            pids = [p.pid for p in rc_cluster_processes(pdir)]
            assert len(pids) == 3 and all(pid_alive(p) for p in pids)
            rc.load_balanced_view().apply_sync(abs, 1) / 0
    assert not any(pid_alive(p) for p in pids)
    assert not (pdir / "pid" / "cluster.json").exists()


def rc_cluster_processes(pdir):
    import json

    class P:
        def __init__(self, pid):
            self.pid = pid
    data = json.loads((pdir / "pid" / "cluster.json").read_text())
    return [P(data["controller"])] + [P(p) for p in data["engines"]]


def test_engine_gives_up_cleanly_without_a_controller(lab_dir, tmp_path):
    cluster = Cluster(n=1, profile="orphan", db="memory", engine_args=["--retry-for", "1"])
    try:
        cluster.start()
        engine = cluster.engines[0]
        cluster.controller.kill()               # the controller dies without telling anyone
        cluster.controller.wait(5)
        t0 = time.monotonic()
        assert engine.wait(10) == 0             # retried about a second, then exited on its own
        assert time.monotonic() - t0 < 5
        log = "".join(p.read_text() for p in (profile_dir("orphan") / "log").glob("engine-*.log"))
        assert "could not reach the controller" in log
    finally:
        cluster.stop()


_OWNER = """
import json, sys, time
from real_cluster import Cluster
cluster = Cluster(n=2, profile=sys.argv[1], db="memory", detach=sys.argv[2] == "daemonized")
cluster.start()
print(json.dumps([cluster.controller.pid, *[p.pid for p in cluster.engines]]), flush=True)
time.sleep(120)
"""


def _owner_of_a_cluster(profile: str, how: str) -> tuple[subprocess.Popen, list[int]]:
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, profile, how], stdout=subprocess.PIPE, text=True)
    return owner, json.loads(owner.stdout.readline() or "[]")


@pytest.mark.parametrize("how", ["owned", "daemonized"])
def test_a_cluster_stops_when_the_process_that_started_it_is_killed_unless_daemonized(lab_dir, how):
    owner, pids = _owner_of_a_cluster(how, how)
    try:
        assert len(pids) == 3 and all(pid_alive(p) for p in pids)
        owner_flag = "--owner-pid" in Path(f"/proc/{pids[0]}/cmdline").read_bytes().decode().split("\0")
        assert owner_flag == (how == "owned")
        owner.kill()                                        # no chance to stop anything (a kernel restart, -9)
        owner.wait(10)
        if how == "owned":
            wait_until(lambda: not any(pid_alive(p) for p in pids), 20, "the controller and engines to stop")
            log = (profile_dir(how) / "log" / "controller.log").read_text()
            assert f"the process that started this cluster (pid {owner.pid}) has ended: stopping" in log
        else:                                               # it serves on, for whoever connects
            with Client(profile=how, timeout=10) as rc:
                assert rc.load_balanced_view().apply_sync(abs, -4) == 4 and rc.ids == [0, 1]
            assert all(pid_alive(p) for p in pids)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        stop_pids([p for p in pids if pid_alive(p)])


def test_client_without_a_cluster_times_out(lab_dir):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        Client(profile="nothing-here", timeout=0.3)
    assert time.monotonic() - t0 < 2


def test_engine_command_line_module(lab_dir):
    r = subprocess.run([sys.executable, "-m", "real_cluster.engine", "--file", os.devnull], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "cannot read connection file" in r.stderr


def test_public_names_are_pinned():
    import real_cluster
    assert sorted(real_cluster.__all__) == sorted([
        "Client", "Cluster", "LoadBalancedView", "ParallelFunction", "RemoteFunction", "AsyncResult", "Dependency",
        "require", "depend", "dependent", "RemoteError", "CompositeError", "error",
        "AsyncMapResult", "AsyncHubResult", "Metadata", "interactive", "TimeoutError",       # issue 12: porting
        "ALL_COMPLETED", "FIRST_COMPLETED", "FIRST_EXCEPTION"])
    from real_cluster import Client, Cluster, Dependency, depend, dependent, require  # noqa: F401 - DESIGN §5 import
    from sched_lab.core import Dependency as CoreDependency
    assert issubclass(Dependency, set)                    # ipyparallel's mutable set; the scheduler gets the core's
    assert Dependency(["a"], all=False).to_core() == CoreDependency(["a"], all=False)
