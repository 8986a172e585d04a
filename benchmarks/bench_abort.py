"""Aborting 100,000 queued tasks, and another client's wait meanwhile: a thin script over sched_lab.apps.bench.abort
(its docstring has the options); run with --help.
"""

import sys

from sched_lab.apps.bench.abort import main

if __name__ == "__main__":
    sys.exit(main())
