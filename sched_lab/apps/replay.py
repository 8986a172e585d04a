"""Replay a workload (submission times and lengths) in real time on a live cluster view."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def replay_live(view: Any, workload: Any, task: Callable[[float], Any], timeout_s: float = 120.0) -> list[Any]:
    """Submit `task(work)` for each task of `workload` at its `submit_at` offset (seconds from now) on a
    `LoadBalancedView`, wait for all of them (at most `timeout_s` each) and return the AsyncResults in
    submission order. Used by `sched-lab demo` and experiments/live_vs_sim.py."""
    ars = []
    t0 = time.perf_counter()
    for at, work in zip(workload.submit_at.tolist(), workload.work.tolist()):
        delay = t0 + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ars.append(view.apply_async(task, work))
    for ar in ars:
        ar.get(timeout=timeout_s)
    return ars
