"""One failing action never stops the others (issue 11, item 1): a controller whose delivery of one task's
result raises (a fault injected into a real controller, serving on a real socket, with a real engine
process and a real Client) still dispatches the next task from the same batch of the core's actions, logs
the failure, and keeps serving. Without the guard the core's Dispatch in that batch was dropped and the
engine sat idle with the queue full."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import threading

import pytest

from real_cluster import Client
from real_cluster import protocol as proto
from real_cluster.controller import Controller, ControllerConfig
from real_cluster.profile import ConnectionInfo, write_connection_file

pytestmark = pytest.mark.timeout(120)


class _DeliveryFails(Controller):
    """A real controller with one injected fault: delivering a task labelled "boom" raises (in `_finish`, which the
    Deliver handler calls: the two handlers run once per task guard their own bodies, not through a wrapper)."""

    def _finish(self, task_id, result):
        task = self.pending.get(task_id)
        if task is not None and task.flags.label == "boom":
            raise RuntimeError("injected: delivering this result failed")
        return super()._finish(task_id, result)


def test_a_failing_action_does_not_drop_the_rest_of_its_batch(tmp_path, caplog):
    config = ControllerConfig(key=proto.new_key(), engine_key=proto.new_key(), hwm=1)
    ctl = _DeliveryFails(config)
    loop = asyncio.new_event_loop()
    port_ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(ctl.start())
        port_ready.set()
        loop.run_until_complete(ctl.wait_stopped())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert port_ready.wait(10)
    info = ConnectionInfo(host="127.0.0.1", port=ctl.port, key=config.key)
    write_connection_file(tmp_path / "client.json", info)
    write_connection_file(tmp_path / "engine.json", ConnectionInfo(host="127.0.0.1", port=ctl.port,
                                                                   key=config.engine_key))
    engine = subprocess.Popen([sys.executable, "-m", "real_cluster.engine", "--file", str(tmp_path / "engine.json"),
                               "--log", str(tmp_path / "engine.log")])
    try:
        with caplog.at_level(logging.ERROR, logger="real_cluster.controller"), \
                Client(tmp_path / "client.json", timeout=10) as rc:
            rc.wait_for_engines(1, timeout=30)
            v = rc.load_balanced_view()
            with v.temp_flags(label="boom"):
                boom = v.apply_async(abs, -1)         # its delivery raises, in the batch that ...
            after = v.apply_async(abs, -2)            # ... dispatches this one to the only engine (hwm=1)
            assert after.get(20) == 2
            assert v.map_sync(abs, range(-10, 0)) == list(range(10, 0, -1))     # and the controller serves on
            assert not boom.ready()
        assert any("injected: delivering this result failed" in r.getMessage() or
                   (r.exc_info and "injected" in str(r.exc_info[1])) for r in caplog.records)
    finally:
        engine.terminate()
        engine.wait(15)
        loop.call_soon_threadsafe(ctl.stop)
        thread.join(10)
