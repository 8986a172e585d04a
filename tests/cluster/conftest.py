"""Fixtures for live-cluster tests: a private $SCHED_LAB_DIR, one shared 4-engine cluster, a 2-engine cluster per
module that asks for one, and a factory for extra clusters. Every process started here is stopped at teardown, even when a test fails."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from _wait import Gate

from real_cluster import Client, Cluster


@pytest.fixture(autouse=True)
def _pickle_test_module_by_value(request: pytest.FixtureRequest) -> None:
    """Engines cannot import test modules: ship their functions by value, as for `__main__` code."""
    import cloudpickle

    import _wait
    for module in (request.module, _wait):
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            pass


@pytest.fixture(scope="session")
def lab_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("sched-lab")
    old = os.environ.get("SCHED_LAB_DIR")
    os.environ["SCHED_LAB_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("SCHED_LAB_DIR", None)
    else:
        os.environ["SCHED_LAB_DIR"] = old


def _running(n: int, profile: str) -> Iterator[Cluster]:
    cluster = Cluster(n=n, profile=profile)
    try:
        cluster.start(timeout=30)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def session_cluster(lab_dir: Path) -> Iterator[Cluster]:
    yield from _running(4, "session")


@pytest.fixture(scope="module")
def module_cluster(lab_dir: Path) -> Iterator[Cluster]:
    """A 2-engine cluster of one test module's own, for tests whose outcome depends on what else the controller has
    in flight (the shared cluster may be running other tests' leftovers). Its tests leave nothing running."""
    yield from _running(2, f"m{os.getpid()}-{os.urandom(3).hex()}")


@pytest.fixture
def rc(session_cluster: Cluster) -> Client:
    """The shared cluster's client (its engines must stay alive: tests that kill engines use `make_cluster`)."""
    assert session_cluster.client is not None
    session_cluster.client.wait_for_engines(4, timeout=10)
    return session_cluster.client


@pytest.fixture
def view(rc: Client):
    return rc.load_balanced_view()


@pytest.fixture
def make_cluster(lab_dir: Path) -> Iterator:
    """`make_cluster(n, profile=..., **kw)` starts a private cluster, stopped when the test ends."""
    started: list[Cluster] = []

    def make(n: int = 2, profile: str | None = None, **kwargs) -> Cluster:
        cluster = Cluster(n=n, profile=profile or f"t{os.getpid()}-{len(started)}-{os.urandom(3).hex()}", **kwargs)
        started.append(cluster)
        cluster.start(timeout=30)
        return cluster

    yield make
    for cluster in started:
        cluster.stop()


@pytest.fixture
def gate(tmp_path: Path) -> Iterator[Gate]:
    """Tasks held until the test opens the gate; opened at teardown even when the test failed."""
    g = Gate(tmp_path)
    yield g
    g.open()
