"""SimConfig validates scheme/hwm/retries/timeout_s with the core's options checks (one rule, one message)."""

from __future__ import annotations

import pytest

from sched_lab.core.options import InvalidOption
from sched_lab.sim.config import SimConfig


@pytest.mark.parametrize("kwargs, message", [
    ({"scheme": "nope"}, "unknown scheme 'nope'"), ({"hwm": -1}, "hwm must be an integer >= 0"),
    ({"retries": -1}, "retries must"), ({"timeout_s": -1.0}, "timeout_s must be >= 0"),
])
def test_sim_config_uses_the_core_checks(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        SimConfig(**kwargs)


def test_sim_config_timeout_is_a_float() -> None:
    assert SimConfig(timeout_s=3).timeout_s == 3.0 and SimConfig().timeout_s is None
