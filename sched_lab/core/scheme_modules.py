"""Loading users' scheme modules: a dotted module name or a `.py` file that calls `register_scheme`.

Configuration time only (a CLI, a SimConfig, a controller starting): the scheduler never imports
or reads files. A file is imported once per process under a name derived from its absolute path,
so the simulator, sweep workers and the live controller all load the same function.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _module_name_for(path: Path) -> str:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    return f"sched_lab_user_schemes.{path.stem}_{digest}"


def load_scheme_module(target: str) -> Any:
    """See `_load`; a module that fails to import leaves the registry as it was."""
    from .scheme_api import SCHEMES

    before = dict(SCHEMES)
    try:
        return _load(target)
    except ValueError:
        SCHEMES.clear()
        SCHEMES.update(before)
        raise


def _load(target: str) -> Any:
    """Import a module (dotted name) or a file (`.py` path) that registers schemes; idempotent.

    Raises ValueError naming the target when it cannot be found or fails to import (the message
    carries the module's own exception, which is chained).
    """
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"--scheme-module needs a module name or a .py file, got {target!r}")
    target = target.strip()
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ValueError(f"scheme module file {target!r} not found")
        name = _module_name_for(path)
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ValueError(f"cannot import scheme module file {target!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:      # the user's module is broken: a clear error, nothing half-registered kept
            del sys.modules[name]
            raise ValueError(f"scheme module file {target!r} failed to import: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and target.startswith(exc.name):
            raise ValueError(f"scheme module {target!r} not found ({exc})") from None
        raise ValueError(f"scheme module {target!r} failed to import: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise ValueError(f"scheme module {target!r} failed to import: {type(exc).__name__}: {exc}") from exc


def load_scheme_modules(targets: Iterable[str]) -> None:
    """`load_scheme_module` for each target, in order."""
    for target in targets:
        load_scheme_module(target)


def scheme_module_path(target: str) -> str:
    """A target as another process on this host must see it: files made absolute, module names as they are."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        return str(Path(target).expanduser().resolve())
    return target
