"""Build a run from a SimConfig (streams, workload, engines), run it, and hand back a SimResult."""

from __future__ import annotations

import gc
import sys
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .config import SimConfig
from .driver import Simulation
from .fastpath import PlainSimulation, is_plain
from .records import ColumnarRecords
from .workloads import (
    Workload, batch_workload, dag_edges, engine_modules, poisson_workload, requirement_extras, streams,
    trace_workload, with_extras,
)


def build_workload(config: SimConfig, gens: dict[str, np.random.Generator]) -> Workload:
    """The workload `config` describes, drawn from the arrival, length, DAG and requirement streams."""
    n_eng = config.engines
    if config.trace:
        wl = trace_workload(config.trace, n_eng)
    elif config.batch:
        wl = batch_workload(gens, config.tasks, config.length)
    else:
        assert config.load is not None
        wl = poisson_workload(gens, config.tasks, config.load, sum(config.engine_speeds), config.length)
    layers = []
    if config.dag is not None:
        layers.append(dag_edges(config.dag, len(wl), gens["dag"]))
    if config.mixes:
        layers.append(requirement_extras(config.mixes, len(wl), gens["requires"]))
    wl = with_extras(wl, *layers) if layers else wl
    if config.actors:
        from .actors import with_actors

        wl = with_actors(wl, config, gens["actors"])
    return wl


@dataclass(frozen=True, slots=True, eq=False)
class SimResult:
    """A finished run: its config, the columnar records, and how long it took (simulated and wall).

    `received_at[i]`: when the client received task i's final result (NaN if never); `sim_time` is
    the scheduler's last event (the last result's hop to the client is not waited for)."""

    config: SimConfig
    records: ColumnarRecords
    workload: Workload
    n_ok: int
    sim_time: float
    wall_s: float
    received_at: np.ndarray

    @property
    def n_tasks(self) -> int:
        return len(self.workload)

    @property
    def sim_tasks_per_s(self) -> float:
        return self.n_tasks / self.wall_s if self.wall_s > 0 else float("inf")

    def dataframe(self) -> Any:
        """Per-attempt records as a pandas DataFrame (TaskRecord's columns)."""
        return self.records.to_dataframe()

    def summary(self) -> Any:
        """records.Summary of this run (warm-up cut from the config): response end to end (client
        submit to client receipt), the scheduler-side figures as `sched_*`."""
        from ..records.summary import summarize

        return summarize(self.records, engines=self.config.engines, warmup=self.config.warmup,
                         client_times=(self.workload.submit_at, self.received_at))


def run(config: SimConfig, workload: Workload | None = None, *, fast: bool | None = None) -> SimResult:
    """Run one simulation; `workload` overrides the one the config describes. Raises SimulationStalled
    when some task can never finish, ValueError for a bad trace.

    `fast`: None takes the fast path (sim/fastpath.py) whenever the run allows it, False always the
    general driver, True requires the fast path (ValueError if the run needs the general one). Both
    give the same result.
    """
    gens = streams(config.seed)
    wl = workload if workload is not None else build_workload(config, gens)
    if fast is None:
        fast = is_plain(config, wl)
    modules = engine_modules(config.mixes, config.engines, gens["requires"]) if config.mixes else None
    bar = None
    on_progress = None
    if config.progress is not False:
        from tqdm import tqdm

        bar = tqdm(total=len(wl), file=sys.stderr, unit="task", disable=None if config.progress is None else False,
                   desc=f"{config.scheme} hwm={config.hwm}", leave=False)

        def on_progress(n: int) -> None:
            bar.update(n - bar.n)

    sim: Simulation | PlainSimulation = (PlainSimulation(config, wl, gens, on_progress) if fast else
                                         Simulation(config, wl, gens, modules, on_progress))
    # The run allocates millions of short-lived, acyclic objects (events, actions, records) that
    # reference counting frees; the cyclic collector only rescans them (~25% of the wall time at
    # 10^4 engines, benchmarks/bench_sim.py), so it is paused for the run.
    was_enabled = gc.isenabled()
    gc.disable()
    t0 = time.perf_counter()
    try:
        sim.run()
    finally:
        if was_enabled:
            gc.enable()
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    return SimResult(config, sim.records, wl, sim.n_ok, float(sim.sim_time), wall,
                     np.asarray(sim.received_at, dtype=np.float64))
