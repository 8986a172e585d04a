"""What the paired benchmark scripts share around their measurement: a lab directory of their own, the options
every one of them takes (counts, `--mode`, `--json`), and the record of how and when a run was made."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Iterator


@contextlib.contextmanager
def own_lab_dir(prefix: str) -> Iterator[None]:
    """A `SCHED_LAB_DIR` of the run's own (removed at the end) unless the caller set one: the clusters a benchmark
    starts leave no profile behind."""
    if "SCHED_LAB_DIR" in os.environ:
        yield
        return
    own = os.environ["SCHED_LAB_DIR"] = tempfile.mkdtemp(prefix=prefix)
    try:
        yield
    finally:
        shutil.rmtree(own, ignore_errors=True)
        del os.environ["SCHED_LAB_DIR"]


def paired_parser(prog: str, doc: str, counts: dict[str, tuple[int, str]]) -> argparse.ArgumentParser:
    """`--<count> N` for each of `counts` (name: (default, help)), then `--mode by-value|module` and `--json`."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.splitlines()[0])
    for name, (default, text) in counts.items():
        parser.add_argument(f"--{name}", type=int, default=default, help=text)
    parser.add_argument("--mode", choices=("by-value", "module"), default="by-value",
                        help="task functions defined in __main__ (default) or imported from a module")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def counts_refused(prog: str, args: argparse.Namespace, counts: dict[str, tuple[int, str]]) -> bool:
    """Whether a count is below 1 (said on stderr)."""
    if min(getattr(args, name) for name in counts) >= 1:
        return False
    names = [f"--{name}" for name in counts]
    print(f"{prog}: {', '.join(names[:-1])} and {names[-1]} must be >= 1", file=sys.stderr)
    return True


def run_meta(script: str, argv: list[str] | None, load_before: float, **fields: Any) -> dict[str, Any]:
    """How and when this run was made (its command line as typed, the machine, the load around it)."""
    return {"command": f"python benchmarks/{script} " + " ".join(sys.argv[1:] if argv is None else argv), **fields,
            "cpus": os.cpu_count(), "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"),
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0]}
