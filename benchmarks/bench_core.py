"""Scheduler-core benchmark: submit -> dispatch -> finish cycles/s vs the O(n) reference schemes.

A thin script over sched_lab.apps.bench.core (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.core import main

if __name__ == "__main__":
    sys.exit(main())
