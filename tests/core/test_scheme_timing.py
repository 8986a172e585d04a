"""`sched_lab.testing.check_scheme` reports a law's (and pool's) time per call; the core's own check_scheme
reads no clock unless one is passed. A law that does more work per call reports more time."""

from __future__ import annotations

import re

from sched_lab import SCHEMES, register_scheme
from sched_lab.core.scheme_checks import check_scheme as core_check_scheme
from sched_lab.testing import check_scheme


def _per_call(report: str, who: str) -> float:
    m = re.search(rf"{who} ([0-9.]+) µs per call", report)
    assert m, report
    return float(m.group(1))


def test_the_report_gives_time_per_call_for_law_and_pool():
    report = check_scheme("leastload")
    assert _per_call(report, "law") > 0 and _per_call(report, "pool") > 0
    assert "µs per call" not in core_check_scheme("leastload")           # no clock, no timing


def _slow_law(choice, work=20000):
    sum(range(work))
    return choice.candidates[0]


def test_a_slow_law_reports_more_time_per_call():
    register_scheme("slowfirst", _slow_law, params={"work": 20000}, summary="first candidate, slowly")
    try:
        slow = _per_call(check_scheme("slowfirst", states=20), "law")
        fast = _per_call(check_scheme("slowfirst:work=1", states=20), "law")
    finally:
        SCHEMES.pop("slowfirst", None)
    assert slow > 5 * fast, (slow, fast)
