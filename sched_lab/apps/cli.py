"""The `sched-lab` command line: one parser, subcommands contributed by the packages that own them.

Each subcommand module exposes `register(subparsers)`, which adds its parser and sets `func` (a
callable taking the parsed namespace and returning an exit code). Modules are light to import;
heavy imports happen inside the command that needs them. Exit codes: 0 ok, 1 failed run, 2 usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__

# (module, required): a missing optional module simply contributes no subcommand.
_COMMAND_MODULES = (
    "sched_lab.apps.sim_commands",        # simulate, compare
    "sched_lab.apps.cluster_commands",    # cluster, controller, engine
    "sched_lab.apps.demo_bench_commands", # demo, bench
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors; keep that, say it clearly
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every available subcommand."""
    parser = _Parser(prog="sched-lab", description="Load-balancing task schedulers, live and simulated.")
    parser.add_argument("--version", action="version", version=f"sched-lab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sched-lab` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
