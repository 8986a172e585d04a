"""DirectView benchmark: sched-lab's multiengine interface vs ipyparallel's in the same run.

A thin script over sched_lab.apps.bench.directview (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.directview import main

if __name__ == "__main__":
    sys.exit(main())
