"""sched-lab: one pure scheduling core, driven by a live cluster and by a SimPy simulator.

The scheme plugin API is importable from here: `register_scheme(name, law, *, pool=None,
params=None, summary="")`, `Choice` (what a law sees), `SCHEMES` (the registry) and
`load_scheme_modules`. `sched_lab.testing` is an alias of `sched_lab.core.scheme_checks`
(standard library only, in the core layer), so `from sched_lab.testing import check_scheme`
works without a module outside the layers of DESIGN §2.
"""

import sys as _sys

from .core import scheme_checks as testing
from .core.scheme_api import SCHEMES, Choice, EngineDirectory, load_scheme_modules, parse_scheme, register_scheme
from .core.schemes import ORIGINAL_SCHEMES

_sys.modules[__name__ + ".testing"] = testing

__version__ = "0.1.0"
__all__ = ["register_scheme", "Choice", "EngineDirectory", "SCHEMES", "ORIGINAL_SCHEMES", "parse_scheme",
           "load_scheme_modules", "testing", "__version__"]
