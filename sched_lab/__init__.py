"""sched-lab: one pure scheduling core, driven by a live cluster and by a SimPy simulator.

The scheme plugin API is importable from here: `register_scheme(name, law, *, pool=None,
params=None, summary="")`, `Choice` (what a law sees), `SCHEMES` (the registry) and
`load_scheme_modules`. `sched_lab.testing` is the core's scheme checks (core/scheme_checks.py) with
a clock passed in (the core reads none), so `from sched_lab.testing import check_scheme` reports the
law's time per call too; it is made here, so no module sits outside the layers of DESIGN §2.
"""

import sys as _sys
import time as _time
import types as _types
from typing import Any as _Any

from .core import scheme_checks as _checks
from .core.scheme_api import SCHEMES, Choice, EngineDirectory, load_scheme_modules, parse_scheme, register_scheme
from .core.schemes import ORIGINAL_SCHEMES


def _check_scheme(name: str, **kw: _Any) -> str:
    """`core.scheme_checks.check_scheme` with `clock=time.perf_counter`: the report includes time per call."""
    kw.setdefault("clock", _time.perf_counter)
    return _checks.check_scheme(name, **kw)


def _check_all(names: _Any, **kw: _Any) -> list[str]:
    """`check_scheme` for several schemes; the reports in order."""
    return [_check_scheme(n, **kw) for n in names]


testing = _types.ModuleType(__name__ + ".testing", _checks.__doc__)
testing.__dict__.update(check_scheme=_check_scheme, check_all=_check_all, chi2_sf=_checks.chi2_sf,
                        two_sample_chi2=_checks.two_sample_chi2,
                        __all__=["check_scheme", "check_all", "chi2_sf", "two_sample_chi2"])
_check_scheme.__name__ = _check_scheme.__qualname__ = "check_scheme"
_check_all.__name__ = _check_all.__qualname__ = "check_all"
_sys.modules[__name__ + ".testing"] = testing

__version__ = "0.1.0"
__all__ = ["register_scheme", "Choice", "EngineDirectory", "SCHEMES", "ORIGINAL_SCHEMES", "parse_scheme",
           "load_scheme_modules", "testing", "__version__"]
