"""Controller SIGKILL benchmark: answered submissions lost, aborted or rewritten across restarts (goal 0).

A thin script over sched_lab.apps.bench.sigkill (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.sigkill import main

if __name__ == "__main__":
    sys.exit(main())
