"""Two source trees side by side, clusters up at once and taking turns: is a change faster (issue 15)?

A thin script over sched_lab.apps.bench.ab (its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.ab import main

if __name__ == "__main__":
    sys.exit(main())
