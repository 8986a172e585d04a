"""What the task database's redo log buys: answers after one log append vs after the SQLite commit (issue 15).

A thin script over sched_lab.apps.bench.redo (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.redo import main

if __name__ == "__main__":
    sys.exit(main())
