"""One options type, validated once: the same rule and message wherever scheme/hwm/retries/timeout_s enter."""

from __future__ import annotations

import math

import pytest

from sched_lab.core import TaskScheduler, TaskSpec
from sched_lab.core.options import (
    InvalidOption, SchedulingOptions, check_hwm, check_retries, check_scheme, check_timeout_s,
)


def test_valid_options_are_normalised() -> None:
    o = SchedulingOptions("lru", 0, 2, 5)
    assert (o.scheme, o.hwm, o.retries, o.timeout_s) == ("lru", 0, 2, 5.0) and type(o.timeout_s) is float
    assert check_timeout_s(None) is None and check_timeout_s(math.inf) == math.inf and check_timeout_s(0) == 0.0


@pytest.mark.parametrize("kwargs, message", [
    ({"scheme": "fastestest"}, "unknown scheme 'fastestest'; allowed: leastload"),
    ({"hwm": -1}, "hwm must be an integer >= 0"), ({"hwm": True}, "hwm must"), ({"hwm": 1.0}, "hwm must"),
    ({"retries": -1}, "retries must"), ({"retries": 1.5}, "retries must"), ({"retries": False}, "retries must"),
    ({"timeout_s": -0.1}, "timeout_s must be >= 0"), ({"timeout_s": math.nan}, "timeout_s must be >= 0"),
    ({"timeout_s": "5"}, "timeout_s must be a number"), ({"timeout_s": True}, "timeout_s must be a number"),
])
def test_bad_options_are_one_error_that_is_both_type_and_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidOption, match=message):
        SchedulingOptions(**kwargs)
    assert issubclass(InvalidOption, TypeError) and issubclass(InvalidOption, ValueError)


def test_the_core_uses_the_same_checks() -> None:
    with pytest.raises(InvalidOption, match="hwm must be an integer >= 0"):
        TaskScheduler(hwm=-1)
    with pytest.raises(InvalidOption, match="unknown scheme 'nope'"):
        TaskScheduler(scheme="nope")
    with pytest.raises(InvalidOption, match="retries must"):
        TaskSpec("t", retries=-1)
    with pytest.raises(InvalidOption, match="timeout_s must be >= 0"):
        TaskSpec("t", timeout_s=-1)
    assert TaskSpec("t", timeout_s=0).timeout_s is None          # 0 = no limit, as before
    assert check_scheme("twobin") == "twobin" and check_hwm(3) == 3 and check_retries(0) == 0
