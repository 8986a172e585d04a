"""Configuration of one simulation run (a frozen, validated dataclass that crosses module boundaries)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.options import SchedulingOptions, check_time_limit_s
from .distributions import Dist
from .overheads import OVERHEAD_MODELS, OverheadTrace
from .workloads import DagSpec, RequireMix


def scheme_names() -> tuple[str, ...]:
    """Names in the core's scheme registry (imported lazily: the core is the single source of truth)."""
    from ..core.schemes import SCHEMES

    return tuple(SCHEMES)


def validate_scheme(spec: str, modules: tuple[str, ...] = ()) -> str:
    """Load `modules`, then validate `spec` (`NAME[:k=v,..]`); its canonical form, or ValueError with the choices."""
    from ..core.options import check_scheme
    from ..core.scheme_api import load_scheme_modules

    load_scheme_modules(modules)
    return check_scheme(spec)


@dataclass(frozen=True, slots=True)
class SimConfig:
    """Everything that defines one run; the same config and seed give the same records.

    Engines: `engines` identical engines at speed 1, or `speeds` (one speed factor per engine; the
    engine count is then len(speeds)). Workload: `tasks` tasks with lengths from `length`, submitted
    as Poisson arrivals at per-engine `load` (capacity = sum of speeds), or all at t=0 (`batch`), or
    replayed from the CSV `trace`; optionally wired as a `dag` and with requirement `mixes`.
    Failures: each engine fails after Exp(`mtbf`) up-time and is repaired after Exp(`mttr`)
    (`mtbf` None = never); `task_error_rate` = probability an attempt raises. Every task gets
    `retries`, `timeout_s` and `time_limit_s` (an engine stops a task that runs longer, the core
    retries it as an error); stopping a running task (time limit, abort) restarts the engine's worker,
    which takes `worker_restart_s`. `scheme` is `NAME[:key=value,..]`;
    `scheme_modules` are imported first (modules or .py files that call `sched_lab.register_scheme`;
    again in sweep workers). `latency` is the one-way network delay per hop and `overhead` the
    scheduler's time per event (None = zero). `latency_trace` (instead of `latency`) makes each
    hop's latency depend on when it is sent: a draw from the measured latencies within
    ±`latency_window_s` of that time (`latency_model="modulated"`) or the one measured nearest to
    it (`"replay"`), or from all of them whatever the time (`"iid"`), see sim.overheads: host
    contention comes in bursts. `pickup_trace`: an engine with tasks queued at it starts the next one
    this long after the previous one ends (live: the result goes back through the engine's nanny,
    which then hands the next task to its worker), drawn from its trace by the time the previous one
    ends, with the same `latency_model` and window (None = at once). `client_latency=False`: the
    client sits next to the scheduler, so only controller<->engine hops cost latency. `warmup` = fraction of
    tasks (by submission) that summaries ignore.
    Actors (sim/actors.py): `actors` actors created at t=0, each called as a Poisson process at
    `actor_call_rate` calls per time unit with lengths from `actor_call_length`, with the ActorSpec
    options `actor_max_restarts`, `actor_max_task_retries`, `actor_max_concurrency`; `worker_mtbf`:
    each engine's worker crashes after Exp(worker_mtbf) up-time (None = never), killing its running
    task and the actor instances on that engine, and restarts in `worker_restart_s`.
    `size_hints` ("exact" | "noisy:SIGMA", None = none) gives
    every task a size hint that schemes see as `choice.task.size_hint` (workloads.size_hints).
    """

    scheme: str = "leastload"
    hwm: int = 1
    engines: int = 10
    speeds: tuple[float, ...] | None = None
    tasks: int = 10_000
    load: float | None = 0.9
    batch: bool = False
    trace: str | None = None
    length: Dist = Dist("exp")
    dag: DagSpec | None = None
    mixes: tuple[RequireMix, ...] = ()
    platform: str = "linux"
    seed: int = 0
    mtbf: float | None = None
    mttr: float = 1.0
    task_error_rate: float = 0.0
    retries: int = 0
    timeout_s: float | None = None
    time_limit_s: float | None = None
    worker_restart_s: float = 0.0
    latency: Dist | None = None
    overhead: Dist | None = None
    latency_trace: OverheadTrace | None = None
    latency_model: str = "modulated"
    latency_window_s: float = 0.2
    pickup_trace: OverheadTrace | None = None
    client_latency: bool = True
    warmup: float = 0.1
    progress: bool | None = False
    scheme_modules: tuple[str, ...] = ()
    actors: int = 0
    actor_call_rate: float = 0.0
    actor_call_length: Dist = Dist("exp")
    actor_max_restarts: int = 0
    actor_max_task_retries: int = 0
    actor_max_concurrency: int = 1
    worker_mtbf: float | None = None
    size_hints: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.scheme_modules, str):
            raise ValueError("scheme_modules must be a sequence of module names or .py paths, not one string")
        from ..core.scheme_api import load_scheme_modules, scheme_module_path

        object.__setattr__(self, "scheme_modules", tuple(scheme_module_path(m) for m in self.scheme_modules))
        load_scheme_modules(self.scheme_modules)       # before the scheme is checked: they may define it
        options = SchedulingOptions(self.scheme, self.hwm, self.retries, self.timeout_s)   # raises InvalidOption
        object.__setattr__(self, "scheme", options.scheme)                                  # canonical NAME:k=v
        object.__setattr__(self, "timeout_s", options.timeout_s)
        object.__setattr__(self, "time_limit_s", check_time_limit_s(self.time_limit_s))
        if isinstance(self.worker_restart_s, bool) or not self.worker_restart_s >= 0:
            raise ValueError(f"worker_restart_s must be >= 0, got {self.worker_restart_s!r}")
        if self.speeds is not None:
            if not self.speeds or any(not (s > 0 and math.isfinite(s)) for s in self.speeds):
                raise ValueError("speeds must be a non-empty list of positive numbers")
            object.__setattr__(self, "speeds", tuple(float(s) for s in self.speeds))
            object.__setattr__(self, "engines", len(self.speeds))
        if isinstance(self.engines, bool) or not isinstance(self.engines, int) or self.engines < 1:
            raise ValueError(f"engines must be an integer >= 1, got {self.engines!r}")
        if self.trace is None and (not isinstance(self.tasks, int) or self.tasks < 1):
            raise ValueError(f"tasks must be an integer >= 1, got {self.tasks!r}")
        if self.trace is None and not self.batch:
            if self.load is None or not (self.load > 0 and math.isfinite(self.load)):
                raise ValueError(f"load must be a number > 0 (per-engine utilisation), got {self.load!r}")
        if self.mtbf is not None and not self.mtbf > 0:
            raise ValueError(f"mtbf must be > 0 (or None for no failures), got {self.mtbf!r}")
        if not self.mttr >= 0:
            raise ValueError(f"mttr must be >= 0, got {self.mttr!r}")
        if not 0 <= self.task_error_rate <= 1:
            raise ValueError(f"task_error_rate must be in [0, 1], got {self.task_error_rate!r}")
        if self.latency_trace is not None:
            if not isinstance(self.latency_trace, OverheadTrace):
                raise ValueError("latency_trace must be a sim.overheads.OverheadTrace, "
                                 f"got {type(self.latency_trace).__name__}")
            if self.latency is not None:
                raise ValueError("give latency or latency_trace, not both")
        if self.pickup_trace is not None and not isinstance(self.pickup_trace, OverheadTrace):
            raise ValueError(f"pickup_trace must be a sim.overheads.OverheadTrace, got {type(self.pickup_trace).__name__}")
        if self.latency_model not in OVERHEAD_MODELS:
            raise ValueError(f"latency_model must be one of {', '.join(OVERHEAD_MODELS)}, got {self.latency_model!r}")
        if not (self.latency_window_s > 0 and math.isfinite(self.latency_window_s)):
            raise ValueError(f"latency_window_s must be a number > 0, got {self.latency_window_s!r}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup must be a fraction in [0, 1), got {self.warmup!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        from .actors import check_actor_options

        check_actor_options(self)
        if self.size_hints is not None:
            from .workloads import parse_size_hints

            parse_size_hints(self.size_hints)

    @property
    def engine_speeds(self) -> tuple[float, ...]:
        return self.speeds if self.speeds is not None else (1.0,) * self.engines

    @property
    def source(self) -> str:
        return "trace" if self.trace else "batch" if self.batch else "poisson"
