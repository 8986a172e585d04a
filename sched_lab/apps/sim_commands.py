"""`sched-lab simulate` and `sched-lab compare`: run the simulator from the command line.

Results go to stdout (a table, or one JSON object with --json); progress bars and errors to stderr.
Exit codes: 0 ok, 1 the run failed (e.g. it stalled), 2 bad input (the message says what is allowed).
Heavy imports (numpy, pandas, simpy, matplotlib) happen inside the commands.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

_EXPORTS = (".csv", ".parquet")


def _shared(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("engines and workload")
    g.add_argument("--engines", type=int, default=10, metavar="N", help="identical engines at speed 1 (default 10)")
    g.add_argument("--speeds", metavar="SxC,...", help="heterogeneous engines, e.g. 1x50,4x10 = 50 at speed 1, 10 at speed 4")
    g.add_argument("--tasks", type=int, default=10_000, metavar="M", help="number of tasks (default 10000)")
    g.add_argument("--dag", metavar="KIND[:k=v,..]",
                   help="wire tasks as chains:length=5 | forkjoin:width=8 | random:parents=2,window=20,p=0.5 "
                        "(each also takes follow=FRACTION)")
    g.add_argument("--require-mix", action="append", default=[], metavar="MOD:TASKS:ENGINES",
                   help="a fraction of tasks need module MOD, which a fraction of engines have (repeatable)")
    g.add_argument("--warmup", type=float, default=0.1, metavar="F", help="fraction of tasks ignored by summaries (0.1)")
    g.add_argument("--scheme-module", action="append", default=[], metavar="MODULE|FILE.py",
                   help="import this module or file first: it registers schemes with sched_lab.register_scheme "
                        "(repeatable; sweep workers import it too)")
    a = p.add_argument_group("actors (sim/actors.py)")
    a.add_argument("--actors", type=int, default=0, metavar="N", help="actors created at t=0 (default 0)")
    a.add_argument("--actor-calls", type=float, default=0.0, metavar="RATE",
                   help="Poisson calls per time unit per actor (default 0)")
    a.add_argument("--actor-call-length", default="exp", metavar="DIST", help="call lengths (default exp, mean 1)")
    a.add_argument("--actor-max-restarts", type=int, default=0, metavar="N", help="restarts per actor (default 0)")
    a.add_argument("--actor-max-task-retries", type=int, default=0, metavar="N",
                   help="re-runs per call whose actor died while it ran (default 0)")
    a.add_argument("--actor-max-concurrency", type=int, default=1, metavar="N", help="calls out per actor (default 1)")
    a.add_argument("--worker-mtbf", type=float, metavar="T",
                   help="mean up-time between worker crashes per engine (kills its actors; default: none)")
    f = p.add_argument_group("failures, network, overhead")
    f.add_argument("--mtbf", type=float, metavar="T", help="mean time between engine failures (default: none)")
    f.add_argument("--mttr", type=float, default=1.0, metavar="T", help="mean time to repair an engine (1)")
    f.add_argument("--task-error-rate", type=float, default=0.0, metavar="P", help="probability an attempt raises")
    f.add_argument("--retries", type=int, default=0, metavar="N", help="retries per task (default 0)")
    f.add_argument("--timeout", type=float, metavar="T", help="longest wait in the scheduler per task")
    f.add_argument("--time-limit", type=float, metavar="T",
                   help="longest run per attempt: an engine stops a longer task (TimeLimitExceeded; retries apply)")
    f.add_argument("--worker-restart", type=float, default=0.0, metavar="T",
                   help="time an engine needs to restart its worker after stopping a task (default 0)")
    f.add_argument("--latency", metavar="DIST", help="one-way network latency per hop, e.g. exp:mean=0.01")
    f.add_argument("--overhead", metavar="DIST", help="scheduler time per event, e.g. const:mean=0.001")
    f.add_argument("--size-hints", metavar="exact|noisy:SIGMA",
                   help="give tasks size hints that schemes see as choice.task.size_hint: their true length "
                        "(exact) or it times a mean-1 log-normal factor of log-sd SIGMA (default: none)")


def register(subparsers: Any) -> None:
    """Add the `simulate` and `compare` subcommands to the sched-lab parser."""
    p = subparsers.add_parser("simulate", help="simulate one scheme on a workload",
                              description="Simulate one scheme (decisions by sched_lab.core) on a synthetic or traced workload.")
    p.add_argument("--scheme", default="leastload", metavar="NAME[:k=v,..]",
                   help="leastload, lru, plainrandom, twobin, weighted, powerofd[:d=N], jiq, fastest, "
                        "or one registered by --scheme-module (default leastload)")
    p.add_argument("--hwm", type=int, default=1, help="max outstanding tasks per engine, 0 = unlimited (default 1)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--load", type=float, default=0.9, help="per-engine load of Poisson arrivals (default 0.9)")
    src.add_argument("--batch", action="store_true", help="submit all tasks at t=0 (a map)")
    src.add_argument("--trace", metavar="FILE.csv", help="replay submit_time,duration[,after,follow,targets,requires]")
    p.add_argument("--workload", default="exp", metavar="NAME[:k=v]",
                   help="task lengths: exp, const, erlang4, h2:c2=10, lognormal:sigma=1.5, weibull:k=0.5, "
                        "bimodal:p=0.1,ratio=100, bpareto:a=1.1,p=1e10 (mean 1 unless mean=...)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE.csv|FILE.parquet", help="write the per-attempt records")
    p.add_argument("--plot", metavar="FILE.png", help="write the response-time CDF")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    _shared(p)
    p.set_defaults(func=simulate_main)

    c = subparsers.add_parser("compare", help="sweep schemes x loads over seeds, in parallel",
                              description="Sweep schemes x loads (x hwm x workloads) over seeds; tidy CSV, figure, table.")
    c.add_argument("--schemes", default=None, metavar="S,..",
                   help="plain scheme names, comma-separated (default: the six original schemes when no --scheme)")
    c.add_argument("--scheme", action="append", default=[], metavar="NAME[:k=v,..]",
                   help="one scheme with parameters, e.g. powerofd:d=3 (repeatable; adds to --schemes)")
    c.add_argument("--loads", default="0.5,0.7,0.8,0.9", metavar="L,..")
    c.add_argument("--hwm", default="1", metavar="H,..", help="high-water marks (default 1)")
    c.add_argument("--workloads", default="exp", metavar="W;..", help="';'-separated length distributions")
    c.add_argument("--seeds", type=int, default=3, metavar="K", help="seeds per point (default 3)")
    c.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    c.add_argument("--jobs", type=int, default=0, metavar="J", help="worker processes (default: all cores)")
    c.add_argument("--cluster", metavar="PROFILE|FILE.json",
                   help="run each point as a task on this running sched-lab cluster instead of local processes "
                        "(engines need sched-lab installed; identical results for identical seeds)")
    c.add_argument("--executor", default="local", metavar="local|dask:ADDRESS|ray[:ADDRESS]",
                   help="where the points run: local processes (default), an existing Dask scheduler "
                        "(pip install 'sched-lab[dask]') or Ray (pip install 'sched-lab[ray]'); identical rows")
    c.add_argument("--out", default="compare.csv", metavar="FILE.csv", help="tidy results (default compare.csv)")
    c.add_argument("--plot", default="compare.png", metavar="FILE.png", help="figure (default compare.png; '' = none)")
    c.add_argument("--json", action="store_true", help="print the aggregated table as JSON")
    _shared(c)
    c.set_defaults(func=compare_main)


def _error(command: str, message: str) -> int:
    print(f"sched-lab {command}: error: {message}", file=sys.stderr)
    return 2


def _base_config(args: argparse.Namespace, **kw: Any) -> Any:
    from ..sim.config import SimConfig
    from ..sim.distributions import parse_dist
    from ..sim.workloads import DagSpec, RequireMix, parse_speeds

    if args.engines < 1:
        raise ValueError(f"--engines must be >= 1, got {args.engines}")
    return SimConfig(
        engines=args.engines, speeds=parse_speeds(args.speeds) if args.speeds else None, tasks=args.tasks,
        dag=DagSpec.parse(args.dag) if args.dag else None,
        mixes=tuple(RequireMix.parse(m) for m in args.require_mix), warmup=args.warmup, mtbf=args.mtbf,
        mttr=args.mttr, task_error_rate=args.task_error_rate, retries=args.retries, timeout_s=args.timeout,
        time_limit_s=args.time_limit, worker_restart_s=args.worker_restart,
        latency=parse_dist(args.latency) if args.latency else None,
        overhead=parse_dist(args.overhead) if args.overhead else None, scheme_modules=tuple(args.scheme_module),
        actors=args.actors, actor_call_rate=args.actor_calls, actor_call_length=parse_dist(args.actor_call_length),
        actor_max_restarts=args.actor_max_restarts, actor_max_task_retries=args.actor_max_task_retries,
        actor_max_concurrency=args.actor_max_concurrency, worker_mtbf=args.worker_mtbf,
        size_hints=args.size_hints, **kw)


def _check_export(path: str | None) -> None:
    if not path:
        return
    if not path.endswith(_EXPORTS):
        raise ValueError(f"--out must end in .csv or .parquet, got {path!r}")
    if path.endswith(".parquet"):
        import importlib.util

        if importlib.util.find_spec("pyarrow") is None and importlib.util.find_spec("fastparquet") is None:
            raise ValueError("writing Parquet needs pyarrow (pip install pyarrow); use --out FILE.csv instead")


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def simulate_main(args: argparse.Namespace) -> int:
    """`sched-lab simulate`: one run; prints a table or JSON; exit 0/1/2."""
    from ..sim.distributions import parse_dist

    try:
        _check_export(args.out)
        if args.plot and not args.plot.lower().endswith((".png", ".pdf", ".svg")):
            raise ValueError(f"--plot must end in .png, .pdf or .svg, got {args.plot!r}")
        if args.load is not None and not args.batch and not args.trace and not args.load > 0:
            raise ValueError(f"--load must be > 0 (per-engine utilisation; < 1 for a stable system), got {args.load}")
        cfg = _base_config(args, scheme=args.scheme, hwm=args.hwm, load=args.load, batch=args.batch,
                           trace=args.trace, length=parse_dist(args.workload), seed=args.seed,
                           progress=False if (args.no_progress or args.json) else None)
        from ..sim.runner import build_workload, run
        from ..sim.workloads import streams

        workload = build_workload(cfg, streams(cfg.seed))
    except ValueError as exc:
        return _error("simulate", str(exc))
    from ..sim.driver import SimulationStalled

    try:
        result = run(cfg, workload)
    except SimulationStalled as exc:
        print(f"sched-lab simulate: {exc}", file=sys.stderr)
        return 1
    summary = result.summary()
    out: dict[str, Any] = {
        "scheme": cfg.scheme, "engines": cfg.engines, "tasks": result.n_tasks, "hwm": cfg.hwm,
        "load": None if cfg.source != "poisson" else cfg.load, "seed": cfg.seed, "workload": str(cfg.length),
        "source": cfg.source, "warmup": cfg.warmup, **summary.as_dict(), "sim_time": result.sim_time,
        "wall_s": result.wall_s, "sim_tasks_per_s": result.sim_tasks_per_s,
    }
    if cfg.actors:
        from ..sim.actors import actor_engines, actor_restarts, response_by_kind

        for kind, figures in response_by_kind(result).items():
            out.update({f"{kind.replace('-', '_')}_{k}": v for k, v in figures.items()})
        out["actor_restarts"] = actor_restarts(result)
        out["actors_per_engine_max"] = max(actor_engines(result).values(), default=0)
    if args.out:
        df = result.dataframe()
        df.to_csv(args.out, index=False) if args.out.endswith(".csv") else df.to_parquet(args.out, index=False)
    if args.plot:
        from .plots import response_cdf

        response_cdf({f"{cfg.scheme} hwm={cfg.hwm}": result.dataframe()}).savefig(args.plot, dpi=120)
    if args.json:
        print(json.dumps({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}))
    else:
        width = max(map(len, out))
        for k, v in out.items():
            print(f"{k:<{width}}  {_fmt(v)}")
    return 0 if summary.failed == 0 or cfg.retries or cfg.mtbf or cfg.task_error_rate or cfg.timeout_s \
        or cfg.time_limit_s or cfg.worker_mtbf else 1


def _split(text: str, sep: str, conv: Any, what: str) -> list[Any]:
    items = [s.strip() for s in text.split(sep) if s.strip()]
    if not items:
        raise ValueError(f"{what} is empty")
    try:
        return [conv(s) for s in items]
    except ValueError as exc:
        raise ValueError(f"bad {what} {text!r}: {exc}") from None


def compare_main(args: argparse.Namespace) -> int:
    """`sched-lab compare`: sweep, write the tidy CSV and the figure, print the aggregated table."""
    from .sweep import aggregate, run_sweep, sweep_configs
    from ..core.schemes import ORIGINAL_SCHEMES
    from ..sim.config import validate_scheme
    from ..sim.distributions import parse_dist

    try:
        schemes = _split(args.schemes, ",", str, "--schemes") if args.schemes is not None else []
        schemes += args.scheme
        if not schemes:
            schemes = list(ORIGINAL_SCHEMES)
        schemes = list(dict.fromkeys(validate_scheme(s, tuple(args.scheme_module)) for s in schemes))
        loads = _split(args.loads, ",", float, "--loads")
        if any(not 0 < x < 1 for x in loads):
            raise ValueError(f"--loads must be in (0, 1) for a stable system, got {args.loads!r}")
        hwms = _split(args.hwm, ",", int, "--hwm")
        workloads = _split(args.workloads, ";", parse_dist, "--workloads")
        if args.seeds < 1 or args.jobs < 0:
            raise ValueError("--seeds must be >= 1 and --jobs >= 0")
        if not args.out.endswith(".csv"):
            raise ValueError(f"--out must be a .csv file, got {args.out!r}")
        from .executors import ExecutorSpec

        executor = ExecutorSpec.parse(args.executor)
        if args.cluster and executor.kind != "local":
            raise ValueError(f"choose --cluster or --executor {executor}, not both")
        base = _base_config(args, load=loads[0], seed=args.seed)
        configs = sweep_configs(base, schemes, loads, hwms, workloads, range(args.seed, args.seed + args.seeds))
    except ValueError as exc:
        return _error("compare", str(exc))
    from tqdm import tqdm

    from .executors import ExecutorUnavailable
    from .sweep import ClusterUnavailable

    try:
        with tqdm(total=len(configs), file=sys.stderr, unit="run", disable=None if not args.json else True) as bar:
            tidy = run_sweep(configs, jobs=args.jobs or None, on_done=lambda n: bar.update(n - bar.n),
                             cluster=args.cluster, executor=str(executor))
    except (ClusterUnavailable, ExecutorUnavailable) as exc:
        print(f"sched-lab compare: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if args.cluster is None and executor.kind == "local":
            raise
        where = "the cluster" if args.cluster else f"the {executor.kind} executor"
        print(f"sched-lab compare: a point failed on {where}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    tidy.to_csv(args.out, index=False)
    table = aggregate(tidy)
    if args.plot:
        from .plots import response_vs_load

        multi = [g for g, vals in (("hwm", hwms), ("workload", workloads)) if len(vals) > 1]
        response_vs_load(tidy, group=("scheme", *multi),
                         title=f"{args.engines if not args.speeds else base.engines} engines, "
                               f"{args.tasks} tasks, {args.seeds} seeds").savefig(args.plot, dpi=120)
    if args.json:
        print(table.to_json(orient="records"))
    else:
        print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        print(f"\nwrote {args.out}" + (f" and {args.plot}" if args.plot else ""), file=sys.stderr)
    return 0
