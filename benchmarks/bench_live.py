"""Live-cluster benchmark: sched-lab vs ProcessPoolExecutor and ipyparallel (see sched_lab.apps.bench).

    python benchmarks/bench_live.py [--quick] [--runs 3] [--json] [--markdown] [--peers ppe,ipyparallel]

The same as `sched-lab bench ...`; this script is a thin wrapper kept for its familiar path.
"""

import sys

from sched_lab.apps.bench import main

if __name__ == "__main__":
    sys.exit(main())
