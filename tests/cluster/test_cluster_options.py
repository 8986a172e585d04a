"""The live cluster's entry points validate scheduling options with the core's checks (no cluster started)."""

from __future__ import annotations

import pytest

from real_cluster.controller import ControllerConfig
from real_cluster.messages import TaskFlags
from sched_lab.core.options import InvalidOption


@pytest.mark.parametrize("make, message", [
    (lambda: ControllerConfig(key="k", hwm=-1), "hwm must be an integer >= 0"),
    (lambda: ControllerConfig(key="k", scheme="nope"), "unknown scheme 'nope'"),
    (lambda: TaskFlags(retries=-1), "retries must"),
    (lambda: TaskFlags(timeout_s=-1), "timeout_s must be >= 0"),
    (lambda: TaskFlags(timeout_s="soon"), "timeout_s must be a number"),
])
def test_controller_and_wire_flags_use_the_core_checks(make, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        make()
