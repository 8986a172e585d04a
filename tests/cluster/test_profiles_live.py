"""Profiles an unlucky operator cannot break: one controller per profile (a second one exits with a clear error and
touches nothing of the first's), `cluster stop`/`list` never trust a stale pid file (an unrelated process whose pid
was recorded survives), start-up errors are reported at once (a damaged tasks.db), and everything in a profile is
private (directories 0700, database with -wal/-shm and logs 0600). Real processes throughout."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest

from real_cluster import Cluster
from real_cluster.error import ClusterError
from real_cluster.profile import CLIENT_FILE, ENGINE_FILE, is_same_process, pid_alive, process_identity, profile_dir

pytestmark = pytest.mark.timeout(120)


def _sleepy(seconds):
    import time
    time.sleep(seconds)
    return "slept"


def _identity(pid: int) -> dict:
    """What a pid file records of a process: its start time (clock ticks after boot) and command line."""
    with open(f"/proc/{pid}/stat") as fh:
        start = int(fh.read().rsplit(")", 1)[1].split()[19])
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return {"start": start, "cmdline": fh.read().decode().rstrip("\0").split("\0")}


def _cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "sched_lab", *args], capture_output=True, text=True, timeout=timeout)


def test_a_second_controller_on_a_running_profile_exits_and_touches_nothing(make_cluster):
    cluster = make_cluster(1, profile=f"lock{os.getpid()}")
    rc = cluster.client
    sec = cluster.dir / "security"
    files = {name: (sec / name).read_bytes() for name in (CLIENT_FILE, ENGINE_FILE)}
    running = rc.load_balanced_view().apply_async(_sleepy, 1.5)
    queued = rc.load_balanced_view().apply_async(_sleepy, 0)               # waits behind it (1 engine, hwm 1)
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "real_cluster.controller_app", "--profile", cluster.profile],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"already has a running controller (pid {cluster.controller.pid})" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert time.monotonic() - started < 15
    assert {name: (sec / name).read_bytes() for name in files} == files      # connection files untouched
    assert (running.get(30), queued.get(30)) == ("slept", "slept")           # nothing of the first was aborted
    r = _cli("cluster", "start", "-n", "1", "--profile", cluster.profile)
    assert r.returncode == 1 and "already running" in r.stderr
    assert cluster.controller.poll() is None and rc.load_balanced_view().apply_sync(abs, -2) == 2


def test_cluster_stop_and_list_never_trust_a_stale_pid(lab_dir):
    name = f"stale{os.getpid()}"
    pdir = profile_dir(name)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        ident = _identity(bystander.pid)
        stale = dict(ident, start=ident["start"] - 1)                  # the pid's earlier owner: another start time
        for record in ({"controller": bystander.pid, "engines": [bystander.pid]},                  # no identity
                       {"controller": bystander.pid, "engines": [bystander.pid],
                        "identity": {str(bystander.pid): stale}},
                       {"controller": bystander.pid, "engines": [],
                        "identity": {str(bystander.pid): dict(ident, cmdline=["python", "-m", "x"])}}):
            (pdir / "pid" / "cluster.json").write_text(json.dumps(record))
            listed = [r for r in json.loads(_cli("cluster", "list", "--json").stdout) if r["profile"] == name]
            assert listed == [{"profile": name, "running": False, "controller_pid": None, "engines": 0}]
            r = _cli("cluster", "stop", "--profile", name)
            assert r.returncode == 1 and "no cluster is running" in r.stderr
            assert bystander.poll() is None and pid_alive(bystander.pid)        # never signalled
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait(10)


def test_a_process_just_started_is_recorded_with_its_command_line():
    # (before: Popen returns while the child's exec is under way, and under load /proc showed its command line
    # empty in most reads (19 of 30 here): the pid file recorded an engine so, and `cluster list` and `cluster stop`
    # then no longer knew it for the cluster's. Busy processes beside it make that window wide.)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(3)]
    try:
        for _ in range(30):
            child = subprocess.Popen(["sleep", "30"])
            try:
                ident = process_identity(child.pid, settle_s=5.0)
                assert ident is not None and ident["cmdline"] == ["sleep", "30"], ident
                assert is_same_process(child.pid, ident)
            finally:
                child.kill()
                child.wait(10)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)


def test_cluster_start_reports_a_damaged_database_at_once(lab_dir):
    name = f"damaged{os.getpid()}"
    pdir = profile_dir(name)
    (pdir / "tasks.db").write_bytes(b"this is not an sqlite database, it was damaged\n" * 100)
    started = time.monotonic()
    with pytest.raises(ClusterError, match="task database .*tasks.db: file is not a database"):
        Cluster(n=1, profile=name).start(timeout=60)
    assert time.monotonic() - started < 15                                  # not the 30 s start timeout
    started = time.monotonic()
    r = _cli("cluster", "start", "-n", "1", "--profile", name, "--daemonize")
    assert r.returncode == 1 and "file is not a database" in r.stderr, r.stderr
    assert time.monotonic() - started < 20
    assert not (pdir / "pid" / "cluster.json").exists()
    assert not (pdir / "security" / CLIENT_FILE).exists()


def test_everything_in_a_profile_is_private(make_cluster):
    cluster = make_cluster(2, profile=f"private{os.getpid()}")
    v = cluster.client.load_balanced_view()
    assert v.map_sync(abs, range(-6, 0)) == [6, 5, 4, 3, 2, 1]
    pdir = cluster.dir
    db = pdir / "tasks.db"
    assert all(p.exists() for p in (db, db.with_name("tasks.db-wal"), db.with_name("tasks.db-shm")))
    modes = {}
    for dirpath, dirnames, filenames in os.walk(pdir):
        modes[dirpath] = stat.S_IMODE(os.stat(dirpath).st_mode)
        for f in filenames:
            modes[os.path.join(dirpath, f)] = stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode)
    wrong = {p: oct(m) for p, m in modes.items() if m != (0o700 if os.path.isdir(p) else 0o600)}
    assert not wrong
    logs = {p.name for p in (pdir / "log").iterdir()}
    assert {"controller.log", "controller.out", "engines.out"} <= logs
