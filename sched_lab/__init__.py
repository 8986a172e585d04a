"""sched-lab: one pure scheduling core, driven by a live cluster and by a SimPy simulator.

The scheme plugin API is importable from here: `register_scheme(name, law, *, pool=None,
params=None, summary="")`, `Choice` (what a law sees), `SCHEMES` (the registry) and
`load_scheme_modules`. `sched_lab.testing` is the core's scheme checks (core/scheme_checks.py) with
a clock passed in (the core reads none), so `from sched_lab.testing import check_scheme` reports the
law's time per call too; it is made here, so no module sits outside the layers of DESIGN §2.

Both are imported when first used (PEP 562): every process of a cluster imports this package (a submodule's parent
comes first), and a worker or a nanny needs none of the scheme machinery.
"""

import importlib as _importlib
import sys as _sys
import time as _time
import types as _types
from typing import Any as _Any

_API = ("SCHEMES", "Choice", "EngineDirectory", "load_scheme_modules", "parse_scheme", "register_scheme")


def __getattr__(name: str) -> _Any:
    if name in _API or name == "ORIGINAL_SCHEMES":
        module = "sched_lab.core.schemes" if name == "ORIGINAL_SCHEMES" else "sched_lab.core.scheme_api"
        value = getattr(_importlib.import_module(module), name)        # (either registers the built-in schemes)
        globals()[name] = value             # once: later lookups do not come here
        return value
    try:                                    # a subpackage not imported yet (`sched_lab.core`, as it was before)
        return _importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _checks() -> _Any:
    return _importlib.import_module("sched_lab.core.scheme_checks")


def _check_scheme(name: str, **kw: _Any) -> str:
    """`core.scheme_checks.check_scheme` with `clock=time.perf_counter`: the report includes time per call."""
    kw.setdefault("clock", _time.perf_counter)
    report: str = _checks().check_scheme(name, **kw)
    return report


def _check_all(names: _Any, **kw: _Any) -> list[str]:
    """`check_scheme` for several schemes; the reports in order."""
    return [_check_scheme(n, **kw) for n in names]


def _testing_getattr(name: str) -> _Any:
    if name in ("chi2_sf", "two_sample_chi2"):
        value = getattr(_checks(), name)
        setattr(testing, name, value)
        return value
    raise AttributeError(f"module {testing.__name__!r} has no attribute {name!r}")


testing = _types.ModuleType(__name__ + ".testing", "The core's scheme checks (sched_lab.core.scheme_checks) with a "
                            "clock: check_scheme(name, ...) reports the law's time per call too.")
testing.__dict__.update(check_scheme=_check_scheme, check_all=_check_all, __getattr__=_testing_getattr,
                        __all__=["check_scheme", "check_all", "chi2_sf", "two_sample_chi2"])
_check_scheme.__name__ = _check_scheme.__qualname__ = "check_scheme"
_check_all.__name__ = _check_all.__qualname__ = "check_all"
_sys.modules[__name__ + ".testing"] = testing

__version__ = "0.1.0"
__all__ = ["register_scheme", "Choice", "EngineDirectory", "SCHEMES", "ORIGINAL_SCHEMES", "parse_scheme",
           "load_scheme_modules", "testing", "__version__"]
