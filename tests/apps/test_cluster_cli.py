"""`sched-lab cluster start/stop/list`, `sched-lab controller` and `sched-lab engine` as a user runs them:
real processes, exit codes (0 ok, 1 failed, 2 usage), connection files with mode 0600, and nothing left
running afterwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from _wait import wait_for_file, wait_until

from real_cluster.profile import pid_alive

pytestmark = pytest.mark.timeout(90)


def _run(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "sched_lab", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, SCHED_LAB_DIR=str(tmp_path))
    yield e
    _run(e, "cluster", "stop", "--profile", "cli")    # whatever a failed test left behind


def test_daemonized_cluster_start_list_stop(env, tmp_path):
    r = _run(env, "cluster", "start", "-n", "2", "--profile", "cli", "--daemonize")
    assert r.returncode == 0, r.stderr
    assert "cluster started: profile=cli engines=2" in r.stdout
    sec = tmp_path / "profile_cli" / "security"
    for name in ("controller-client.json", "controller-engine.json"):
        assert oct((sec / name).stat().st_mode & 0o777) == "0o600"
    pids = json.loads((tmp_path / "profile_cli" / "pid" / "cluster.json").read_text())
    assert pid_alive(pids["controller"]) and len(pids["engines"]) == 2
    listed = json.loads(_run(env, "cluster", "list", "--json").stdout)
    assert listed == [{"profile": "cli", "running": True, "controller_pid": pids["controller"], "engines": 2}]
    assert _run(env, "cluster", "start", "-n", "1", "--profile", "cli", "--daemonize").returncode == 1

    code = ("from real_cluster import Client\n"
            "with Client(profile='cli') as rc:\n"
            "    print(rc.load_balanced_view().map_sync(lambda x: x + 1, range(4)), rc.ids)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[1, 2, 3, 4] [0, 1]", out.stderr

    r = _run(env, "cluster", "stop", "--profile", "cli")
    assert r.returncode == 0 and "cluster stopped" in r.stdout
    wait_until(lambda: not any(pid_alive(p) for p in [pids["controller"], *pids["engines"]]), 10,
               "the controller and engines to exit")
    assert _run(env, "cluster", "stop", "--profile", "cli").returncode == 1
    assert "stopped" in _run(env, "cluster", "list").stdout


@pytest.mark.parametrize("flag,pulls", [([], True), (["--no-pull"], False), (["--pull"], True)])
def test_cluster_start_pulls_unless_told_not_to(env, tmp_path, flag, pulls):
    r = _run(env, "cluster", "start", "-n", "2", "--profile", "cli", "--daemonize", *flag)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "profile_cli" / "security" / "pull.sock").exists() == pulls
    code = ("from real_cluster import Client\n"
            "with Client(profile='cli') as rc:\n"
            "    print(rc.load_balanced_view().map_sync(lambda x: x + 1, range(4)), 'pullers' in rc.pull_stats())\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == f"[1, 2, 3, 4] {pulls}", out.stderr
    assert _run(env, "cluster", "stop", "--profile", "cli").returncode == 0


def test_foreground_start_stops_on_sigterm(env, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "sched_lab", "cluster", "start", "-n", "1", "--profile", "cli",
                             "--scheme", "lru", "--hwm", "0"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert "cluster started" in proc.stdout.readline()
        pids = json.loads((tmp_path / "profile_cli" / "pid" / "cluster.json").read_text())
        info = json.loads((tmp_path / "profile_cli" / "security" / "controller-client.json").read_text())
        assert info["scheme"] == "lru" and info["hwm"] == 0
        proc.terminate()
        assert proc.wait(30) == 0
        _exited(pids)
    finally:
        _kill(proc)


def test_foreground_start_stops_on_a_sigterm_that_came_while_it_was_starting(env, tmp_path):
    """The stop asked for while engines were still starting is kept: the cluster stops once it has started
    (a second set of handlers, installed after the start, used to drop it and serve on)."""
    slow = tmp_path / "slow_engines"
    slow.mkdir()
    (slow / "sitecustomize.py").write_text(        # engines take 3 s to start: the window is certain
        "import sys, time\nif 'real_cluster.engine' in sys.orig_argv:\n    time.sleep(3)\n")
    proc = subprocess.Popen([sys.executable, "-m", "sched_lab", "cluster", "start", "-n", "1", "--profile", "cli"],
                            env=dict(env, PYTHONPATH=str(slow)), stdout=subprocess.PIPE, text=True)
    try:
        pid_file = tmp_path / "profile_cli" / "pid" / "cluster.json"
        pids = wait_until(lambda: pid_file.exists() and (d := json.loads(pid_file.read_text()))["engines"] and d,
                          30, "the controller up and its engine started")
        proc.terminate()                                                  # while the engine sleeps
        assert proc.wait(30) == 0
        assert "cluster started" in proc.stdout.read()
        _exited(pids)
    finally:
        _kill(proc)


def _exited(pids: dict) -> None:
    """Wait for the controller and engines of a pid file to exit (orphans the launcher stopped take a moment to be
    reaped)."""
    wait_until(lambda: not any(pid_alive(p) for p in [pids["controller"], *pids["engines"]]), 10,
               "the controller and engines to exit")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_controller_and_engine_by_hand(env, tmp_path):
    controller = subprocess.Popen([sys.executable, "-m", "sched_lab", "controller", "--profile", "hand",
                                   "--db", "memory"], env=env)
    engine = None
    try:
        engine_file = tmp_path / "profile_hand" / "security" / "controller-engine.json"
        wait_for_file(engine_file, 15)
        engine = subprocess.Popen([sys.executable, "-m", "sched_lab", "engine", "--file", str(engine_file)], env=env)
        code = ("from real_cluster import Client\n"
                "with Client(profile='hand') as rc:\n"
                "    rc.wait_for_engines(1, 15)\n"
                "    print(rc.load_balanced_view().apply_sync(sum, [1, 2, 3]))\n"
                "    rc.shutdown(hub=True)\n")
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30)
        assert out.stdout.strip() == "6", out.stderr
        assert controller.wait(10) == 0 and engine.wait(10) == 0
        assert not engine_file.exists()           # removed on a clean stop
    finally:
        for p in (controller, engine):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()


def test_usage_errors_exit_2(env):
    assert _run(env, "cluster", "start", "-n", "x").returncode == 2
    assert _run(env, "engine").returncode == 2
    assert _run(env, "controller", "--profile", "u", "--scheme", "nope").returncode == 2
    assert _run(env, "engine", "--file", "/nonexistent.json").returncode == 2
