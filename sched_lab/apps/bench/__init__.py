"""Benchmarks (never part of the pass/fail tests): each prints our figure beside a peer's from the same run.

- `live`: the live cluster vs ProcessPoolExecutor and ipyparallel (`sched-lab bench`, benchmarks/bench_live.py)
- `core`: the scheduler core's cycles/s vs the O(n) reference schemes (benchmarks/bench_core.py)
- `sim`: the simulator's tasks per wall second vs an idiomatic SimPy model (benchmarks/bench_sim.py)
- `tasks`: the task functions every live peer imports
"""
