"""What the function cache buys: cache on vs off, paired rounds on one sched-lab cluster (issue 15).

A thin script over sched_lab.apps.bench.fncache_ab (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.fncache_ab import main

if __name__ == "__main__":
    sys.exit(main())
