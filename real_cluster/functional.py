"""Functional dependencies: `dependent`, `@depend`, `@require`, checked on the engine before a task runs.

A `dependent` wraps a function with a dependency function. The engine calls
`check_dependencies(f)` after unpickling a task and before calling it: a dependency function that
returns exactly `False`, or a `require`d module that fails to import, raises `UnmetDependency`
(the engine then reports DependencyUnmet and the scheduler tries another engine). Anything else
it returns (None, 0, ...) passes; an exception raised inside a dependency function is an ordinary
task error. `require` also makes the modules and objects it names available as globals of the
wrapped function, as ipyparallel's engines do in their namespace.
"""

from __future__ import annotations

import functools
import importlib
import types
from typing import Any, Callable

from .error import UnmetDependency

__all__ = ["dependent", "depend", "require", "check_dependencies"]


class dependent:  # noqa: N801 - lower-case name kept from ipyparallel
    """A callable `f` whose task may only run where `df(*dargs, **dkwargs)` is not False.

    Calling it calls `f`; the engine checks the dependency first (`check_dependencies`).
    """

    def __init__(self, _wrapped_f: Callable, _df: Callable, *dargs: Any, **dkwargs: Any):
        self.f = _wrapped_f
        self.df = _df
        self.dargs = dargs
        self.dkwargs = dkwargs
        self.__name__ = getattr(_wrapped_f, "__name__", "dependent")
        self.__doc__ = getattr(_wrapped_f, "__doc__", None)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.f(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<dependent {self.__name__} on {getattr(self.df, '__name__', self.df)!r}>"

    def check(self) -> None:
        """Raise UnmetDependency if the dependency function returns exactly False."""
        if self.df(*self.dargs, **self.dkwargs) is False:
            raise UnmetDependency(f"dependency {getattr(self.df, '__name__', self.df)!r} of {self.__name__!r} unmet")


def depend(_df: Callable, *dargs: Any, **dkwargs: Any) -> Callable[[Callable], dependent]:
    """Decorator: the task runs only on engines where `df(*dargs, **dkwargs)` is not False."""

    def decorate(f: Callable) -> dependent:
        return dependent(f, _df, *dargs, **dkwargs)

    return decorate


def _innermost(f: Any) -> Any:
    while isinstance(f, dependent):
        f = f.f
    return f


def _require(_target: Any, _modules: tuple[str, ...], _objects: dict[str, Any]) -> bool:
    """Import `_modules` and publish them and `_objects` as globals of the task function."""
    namespace = getattr(_innermost(_target), "__globals__", None)
    for name in _modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise UnmetDependency(f"cannot import {name!r}: {exc}") from None
        if namespace is not None:
            top = name.partition(".")[0]
            namespace.setdefault(top, importlib.import_module(top))
    if namespace is not None:
        for name, obj in _objects.items():
            namespace.setdefault(name, obj)
    return True


class _Requirement(dependent):
    """A dependent made by `require`: remembers the module names (also read by the simulator's models)."""

    def __init__(self, f: Callable, modules: tuple[str, ...], objects: dict[str, Any]):
        super().__init__(f, _require, None, modules, objects)
        self.modules = modules
        self.dargs = (self, modules, objects)

    def __reduce__(self) -> tuple:
        return _Requirement, (self.f, self.modules, self.dargs[2])


def require(*mods: Any, **mapping: Any) -> Callable[[Callable], dependent]:
    """Decorator: the task runs only on engines that can import the named modules.

    Strings and modules name modules to import; objects with a `__name__` (functions) and the
    keyword arguments are made available under that name. Raises TypeError for other objects.
    """
    modules: list[str] = []
    objects: dict[str, Any] = dict(mapping)
    for obj in mods:
        if isinstance(obj, str):
            modules.append(obj)
        elif isinstance(obj, types.ModuleType):
            modules.append(obj.__name__)
        elif hasattr(obj, "__name__"):
            objects[obj.__name__] = obj
        else:
            raise TypeError(f"require() needs module names or named objects, not {obj!r}; pass it as a keyword")

    def decorate(f: Callable) -> dependent:
        wrapped = _Requirement(f, tuple(modules), objects)
        functools.update_wrapper(wrapped, f, assigned=("__name__", "__doc__"), updated=())
        return wrapped

    return decorate


def check_dependencies(f: Any) -> None:
    """Check every functional dependency wrapped around `f`, outermost first (raises UnmetDependency)."""
    while isinstance(f, dependent):
        f.check()
        f = f.f
