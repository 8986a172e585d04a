"""What a caller reading its own answers buys: on vs off, paired blocks on one sched-lab cluster (issue 15).

A thin script over sched_lab.apps.bench.caller_reads (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.caller_reads import main

if __name__ == "__main__":
    sys.exit(main())
