"""Simulator benchmark: simulated tasks per wall second vs an idiomatic SimPy model.

A thin script over sched_lab.apps.bench.sim (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.sim import main

if __name__ == "__main__":
    sys.exit(main())
