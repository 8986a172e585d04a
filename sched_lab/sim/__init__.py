"""sched_lab.sim: a SimPy driver of sched_lab.core — engines, workloads, failures, network, records.

`run(SimConfig(...))` builds the workload from the config's seed and returns a `SimResult` (columnar
records, `dataframe()`, `summary()`). Scheduling decisions come only from `sched_lab.core`.
"""

from .config import SimConfig
from .distributions import Dist, parse_dist
from .driver import Simulation, SimulationStalled
from .records import ColumnarRecords
from .runner import SimResult, build_workload, run
from .workloads import DagSpec, RequireMix, TaskExtras, Workload, parse_speeds, streams

__all__ = ["SimConfig", "Dist", "parse_dist", "Simulation", "SimulationStalled", "ColumnarRecords", "SimResult",
           "build_workload", "run", "DagSpec", "RequireMix", "TaskExtras", "Workload", "parse_speeds", "streams"]
