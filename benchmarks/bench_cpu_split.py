"""Where the CPU of a no-op task goes, process by process, beside ProcessPoolExecutor (issues 10, 15).

A thin script over sched_lab.apps.bench.cpu_split (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.cpu_split import main

if __name__ == "__main__":
    sys.exit(main())
