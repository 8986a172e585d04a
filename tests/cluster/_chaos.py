"""What the soak tests share: killing an engine and starting its replacement, and stopping everything at the end."""

from __future__ import annotations

import random
import signal
import subprocess

from real_cluster import Client, Cluster


def replace_an_engine(cluster: Cluster, rng: random.Random) -> list[subprocess.Popen]:
    """SIGKILL one live engine of `cluster` (chosen by `rng`) and start another; returns the new engine's process."""
    victim = rng.choice([p for p in cluster.engines if p.poll() is None])
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    return cluster.start_engines(1)


def stop_everything(cluster: Cluster, clients: list[Client], started: list[subprocess.Popen]) -> None:
    """Close `clients`, stop `cluster`, and check that its controller and every engine in `started` have ended."""
    for rc in clients:
        rc.close()
    procs = [cluster.controller, *started]
    cluster.stop()
    assert all(p.poll() is not None for p in procs)
