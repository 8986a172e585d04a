"""Shared plumbing of the experiment scripts: arguments, output paths, tables and figures.

Every study is `python experiments/NAME.py [--quick] [--jobs N] [--seed S] [--out DIR]`; it writes a
tidy CSV and PNG figures into `experiments/results/NAME/` (`.../NAME/quick/` with `--quick`, so a
quick run never overwrites the committed full results) and prints its key table. Simulation
sweeps go through `sched_lab.apps.sweep.run_sweep`, and the studies that need per-record metrics
(failures_retries, dependencies) map their own point function with `map_points`
(`sweep.map_points`); both accept `--cluster PROFILE` (the points run as tasks on a running
sched-lab cluster) and `--executor local|dask:ADDRESS|ray[:ADDRESS]` (local processes, a Dask
scheduler or Ray), with identical rows whichever runs them.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

RESULTS = Path(__file__).resolve().parent / "results"
PNG_DPI = 75


def parse_args(name: str, description: str, argv: Sequence[str] | None = None,
               extra: Callable[[argparse.ArgumentParser], None] | None = None,
               uses_sweep: bool = False, takes_schemes: bool = False) -> argparse.Namespace:
    """The common options (plus `extra`'s); sets `args.out` (created) and `args.name`.

    `uses_sweep`: the study runs its points through `sweep` or `map_points`, so it offers
    `--cluster PROFILE` and `--executor SPEC`. `takes_schemes`: it offers `--scheme
    NAME[:k=v,..]` (repeatable; replaces the study's own list) and `--scheme-module M` (repeatable);
    `args.schemes` is then the validated list or None, `args.scheme_modules` a tuple."""
    p = argparse.ArgumentParser(prog=f"experiments/{name}.py", description=description)
    p.add_argument("--quick", action="store_true", help="the small version (CI): well under a minute on 2 cores")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (default: all cores)")
    p.add_argument("--seed", type=int, default=1, help="first seed (seeds are SEED, SEED+1, ...)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"output directory (default experiments/results/{name}, or .../{name}/quick)")
    if uses_sweep:
        p.add_argument("--cluster", metavar="PROFILE", default=None,
                       help="run the sweep's simulation points as tasks on this running sched-lab cluster")
        from sched_lab.apps.executors import EXECUTOR_HELP

        p.add_argument("--executor", metavar="SPEC", default="local", help=EXECUTOR_HELP)
    if takes_schemes:
        p.add_argument("--scheme", action="append", default=[], metavar="NAME[:k=v,..]",
                       help="run this scheme instead of the study's list (repeatable), e.g. powerofd:d=3")
        p.add_argument("--scheme-module", action="append", default=[], metavar="MODULE|FILE.py",
                       help="import this module or file first: it registers schemes (repeatable)")
    if extra:
        extra(p)
    args = p.parse_args(argv)
    if takes_schemes:
        from sched_lab.core.scheme_api import check_scheme_spec, load_scheme_modules, scheme_module_path

        try:
            args.scheme_modules = tuple(scheme_module_path(m) for m in args.scheme_module)
            load_scheme_modules(args.scheme_modules)
            args.schemes = [check_scheme_spec(s) for s in args.scheme] or None
        except ValueError as exc:
            p.error(str(exc))
    if args.jobs is not None and args.jobs < 1:
        p.error("--jobs must be >= 1")
    if uses_sweep:
        from sched_lab.apps.executors import ExecutorSpec

        try:
            spec = ExecutorSpec.parse(args.executor)
        except ValueError as exc:
            p.error(f"--executor: {exc}")
        if args.cluster and spec.kind != "local":
            p.error(f"choose --cluster or --executor {spec}, not both")
    args.name = name
    args.out = args.out or (RESULTS / name / "quick" if args.quick else RESULTS / name)
    args.out.mkdir(parents=True, exist_ok=True)
    args.started = time.perf_counter()
    return args


def _progress(total: int) -> Callable[[int], None]:
    def on_done(i: int) -> None:
        if i == total or i % max(1, total // 10) == 0:
            log(f"  {i}/{total} simulation points")

    return on_done


def sweep(configs: Sequence[Any], args: argparse.Namespace) -> Any:
    """`sweep.run_sweep` over the configs (where `--cluster`/`--executor` say); progress on stderr."""
    from sched_lab.apps.sweep import run_sweep

    return run_sweep(configs, jobs=args.jobs, on_done=_progress(len(configs)),
                     cluster=getattr(args, "cluster", None), executor=getattr(args, "executor", None))


def map_points(fn: Callable[[Any], dict[str, Any]], points: Sequence[Any], args: argparse.Namespace) -> Any:
    """`fn` over `points` (order kept) -> DataFrame, in local processes or where `--cluster`/`--executor`
    say; for points that need whole records (sweep.run_point returns only the summary metrics).
    `fn` must be a module-level function (it is shipped by value to remote workers)."""
    import pandas as pd

    from sched_lab.apps.sweep import map_points as run_points

    return pd.DataFrame(run_points(fn, points, jobs=args.jobs, on_done=_progress(len(points)),
                                   cluster=getattr(args, "cluster", None), executor=getattr(args, "executor", None)))


def stop_on_sigterm() -> None:
    """SIGTERM raises SystemExit, so it unwinds through `with Cluster(...)`, which stops the cluster."""
    def _exit(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, _exit)


def log(msg: str) -> None:
    """Progress to stderr (results go to stdout)."""
    print(msg, file=sys.stderr, flush=True)


def save_csv(df: Any, args: argparse.Namespace, filename: str) -> Path:
    path = args.out / filename
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def save_fig(fig: Any, args: argparse.Namespace, filename: str) -> Path:
    """Save a Figure as a small PNG: 75 dpi, quantised to a 256-colour palette (well under 150 KB)."""
    import io

    from PIL import Image

    path = args.out / filename
    buf = io.BytesIO()
    fig.savefig(buf, dpi=PNG_DPI, format="png")
    buf.seek(0)
    with Image.open(buf) as img:
        img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def print_table(df: Any, title: str, floatfmt: str = "{:.4g}") -> None:
    """The key table, readable in a terminal (stdout)."""
    print(f"\n## {title}\n")
    print(df.to_string(index=False, float_format=lambda v: floatfmt.format(v)))


def done(args: argparse.Namespace) -> int:
    log(f"{args.name}: results in {args.out} ({time.perf_counter() - args.started:.1f} s)")
    return 0
