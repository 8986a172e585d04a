"""What the machine allows: bare relays beside ProcessPoolExecutor and sched-lab (issue 15).

A thin script over sched_lab.apps.bench.floor (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.floor import main

if __name__ == "__main__":
    sys.exit(main())
