"""Instructions per round trip, process by process, beside ProcessPoolExecutor (issue 15): callgrind counts.

A thin script over sched_lab.apps.bench.instructions (its docstring has the method and options); run with --help.
"""

import sys

from sched_lab.apps.bench.instructions import main

if __name__ == "__main__":
    sys.exit(main())
