"""Core behaviour found wrong while testing the live cluster (issue 5), as minimal failing tests.

Each test names what the live cluster saw; the fix belongs in sched_lab/core (the controller only translates).
"""

from __future__ import annotations

import gc
import random
import tracemalloc


from sched_lab.core import AbortRequested, PurgeRequested, TaskScheduler, TaskSpec, TaskSubmitted


def test_purge_frees_the_memory_of_tasks_aborted_while_queued():
    # Live: 100,000 tasks queued on a controller with no engine, aborted, then purge_results("all"):
    # the controller's RSS stayed up (about 45 MB per 100,000 tasks) and grew again by as much next round.
    sched = TaskScheduler("leastload", 1, rng=random.Random(0))
    n = 20_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(n):
            sched.handle(TaskSubmitted(1.0, TaskSpec(f"t{i}")))
        for i in range(n):
            sched.handle(AbortRequested(2.0, f"t{i}"))
        sched.records.drain()
        sched.handle(PurgeRequested(3.0, None))
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert sched.known_task_count == 0 and sched.waiting_count == 0
    assert retained < 50 * n, f"{retained / n:.0f} bytes per purged task still held by the scheduler"
