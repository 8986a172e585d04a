"""Where a round trip and the dispatch gap go (issue 15): per-step timestamps of a live cluster.

A thin script over sched_lab.apps.bench.gap (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.gap import main

if __name__ == "__main__":
    sys.exit(main())
