"""Actor benchmark: sched-lab's actors vs Ray's actors in the same run (round trip, calls/s with 1 and 8 actors).

A thin script over sched_lab.apps.bench.actors (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.actors import main

if __name__ == "__main__":
    sys.exit(main())
