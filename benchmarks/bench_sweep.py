"""Sweep benchmark: one compare sweep locally, on a Dask LocalCluster and (with --ray) on Ray.

A thin script over sched_lab.apps.bench.sweep (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.sweep import main

if __name__ == "__main__":
    sys.exit(main())
