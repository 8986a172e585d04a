"""Live-cluster benchmark: sched-lab vs ProcessPoolExecutor and ipyparallel in the same run.

A thin script over sched_lab.apps.bench.live (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.live import main

if __name__ == "__main__":
    sys.exit(main())
