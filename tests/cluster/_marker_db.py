"""Helpers of the live durability tests: count a task's runs from its marker files, read the task database, lock
it from another process, kill the controller and start it again."""

from __future__ import annotations

import contextlib
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_LOCKER = r"""
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
con.execute("ROLLBACK")
"""


def runs(marker_dir: Path, tag: str) -> int:
    """How many times the task tagged `tag` started (one marker file per run)."""
    return sum(1 for p in marker_dir.iterdir() if p.name.split(".")[0] == tag)


def rows(db_path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """`sql` on the profile's task database, read-only (the controller may hold it open)."""
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


@contextlib.contextmanager
def locked(db_path: Path) -> Iterator[subprocess.Popen]:
    """Another process holds the database's write lock (BEGIN EXCLUSIVE) for the block; released at its end."""
    locker = subprocess.Popen([sys.executable, "-c", _LOCKER, str(db_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        yield locker
    finally:
        locker.stdin.close()
        locker.wait(10)


def restart_controller(cluster: Any, engines: int) -> Any:
    """SIGKILL the cluster's controller and start it again (--reuse: its engines come back by themselves); returns
    a new Client once `engines` of them have."""
    from real_cluster import Client
    from real_cluster.profile import CLIENT_FILE
    cluster.controller.send_signal(signal.SIGKILL)
    cluster.controller.wait(10)
    if cluster.client is not None:
        cluster.client.close()
        cluster.client = None
    cluster.start_controller()
    rc = cluster.client = Client(cluster.dir / "security" / CLIENT_FILE, timeout=10)
    rc.wait_for_engines(engines, 60)
    return rc
