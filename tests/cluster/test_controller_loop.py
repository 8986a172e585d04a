"""The controller's event loop (`--loop auto|asyncio|uvloop`, default $SCHED_LAB_CONTROLLER_LOOP else auto): the
choice itself, and a real cluster on each loop running tasks, a failure, a retry after a killed worker, a request
answered from the database, and the loop named in the controller's log. uvloop is in the `test` extra, so the rest
of the live tests run on it (what users of the `fast` extra get); this file keeps the asyncio path live too."""

from __future__ import annotations

import os
import signal
import sys

import pytest

from _wait import wait_until
from real_cluster.controller_app import LOOP_ENV, loop_factory

pytestmark = pytest.mark.timeout(120)


def test_the_loop_choice_is_asyncio_uvloop_or_uvloop_when_installed(monkeypatch) -> None:
    uvloop = pytest.importorskip("uvloop")
    assert loop_factory("asyncio") is None
    assert loop_factory("uvloop") is uvloop.new_event_loop
    assert loop_factory("auto") is uvloop.new_event_loop
    with pytest.raises(ValueError, match="--loop must be one of"):
        loop_factory("trio")
    monkeypatch.setitem(sys.modules, "uvloop", None)         # as if it were not installed
    assert loop_factory("auto") is None
    with pytest.raises(ValueError, match="uvloop is not installed"):
        loop_factory("uvloop")


def test_a_bad_loop_option_is_a_usage_error(lab_dir) -> None:
    from real_cluster.controller_app import main
    with pytest.raises(SystemExit) as exc:
        main(["--profile", "bad-loop", "--loop", "trio"])
    assert exc.value.code == 2


def _boom() -> None:
    raise ValueError("boom")


def _suicide_once(marker: str) -> int:
    import os
    import signal
    if not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)
    return 7


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_cluster_runs_on_each_loop(make_cluster, loop: str, tmp_path, monkeypatch) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    monkeypatch.delenv(LOOP_ENV, raising=False)
    cluster = make_cluster(2, controller_args=["--loop", loop])
    view = cluster.client.load_balanced_view()
    assert view.map_sync(lambda x: x * 2, range(50)) == [x * 2 for x in range(50)]
    assert [view.apply_sync(pow, 2, i) for i in range(20)] == [2 ** i for i in range(20)]
    with pytest.raises(Exception, match="boom"):
        view.apply_sync(_boom)
    marker = str(tmp_path / "died-once")
    assert view.set_flags(retries=1).apply_sync(_suicide_once, marker) == 7    # a worker killed: retried
    rows = cluster.client.db_query({"status": "ok"}, keys=["status"])
    assert len(rows) >= 71
    log = cluster.dir / "log" / "controller.log"
    expected = "uvloop" if loop == "uvloop" else "asyncio"
    wait_until(lambda: f"event loop: {expected}" in log.read_text(), timeout_s=10, what="the loop's log line")
