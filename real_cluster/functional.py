"""Functional dependencies (`dependent`, `@depend`, `@require`, checked on the engine before a task runs), the
client's `Dependency` class for `after` / `follow`, and `@interactive`.

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
from collections.abc import Iterable
from typing import Any, Callable

from sched_lab.core.dependency import Dependency as CoreDependency

from .error import UnmetDependency

__all__ = ["Dependency", "dependent", "depend", "require", "interactive", "check_dependencies"]


def interactive(f: Callable) -> Callable:
    """ipyparallel's `@interactive`: the function runs on the engine with the engine's namespace as its globals.

    It returns a copy of `f` that belongs to `__main__`, so it ships by value and the engine binds it
    to its namespace (real_cluster/namespace.py) as it does any function defined in a notebook or
    script: names pushed or executed there resolve, and `global` assignments land there.
    """
    if not isinstance(f, types.FunctionType):
        return f                # a builtin, a class, ...: no globals to rebind (and never mutated)
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    g.__kwdefaults__ = f.__kwdefaults__
    g.__qualname__ = f.__qualname__
    g.__doc__ = f.__doc__
    g.__dict__.update(f.__dict__)
    g.__module__ = "__main__"
    return g


def _dependency_ids(spec: Any) -> set[str]:
    """Task ids from an id, an AsyncResult, a Dependency, or an iterable of ids and AsyncResults."""
    if isinstance(spec, str):
        return {spec}
    if isinstance(spec, (Dependency, CoreDependency)):
        return set(spec)
    msg_ids = getattr(spec, "msg_ids", None)
    if msg_ids is not None:
        return set(msg_ids)
    if isinstance(spec, Iterable) and not isinstance(spec, (bytes, dict)):
        out: set[str] = set()
        for item in spec:
            if isinstance(item, str):
                out.add(item)
            elif getattr(item, "msg_ids", None) is not None:
                out.update(item.msg_ids)
            elif isinstance(item, (Dependency, CoreDependency)):
                out.update(item)
            else:
                raise TypeError(f"invalid dependency element {item!r}: expected a task id or an AsyncResult")
        return out
    raise TypeError(f"invalid dependency {spec!r}: expected task ids, AsyncResults, or a list of those")


class Dependency(set):
    """ipyparallel's Dependency: a set of task ids with `all`, `success` and `failure` flags.

    `Dependency(ids, all=True, success=True, failure=False)`; `ids` may be a task id, an
    AsyncResult, another Dependency, a list of those, or the dict `as_dict()` makes. Being a set,
    ids can be added and removed; the flags are plain attributes and may be changed until the task
    is submitted (a view reads them then). Raises TypeError for other elements, ValueError when
    both `success` and `failure` are False (also at submission, if set so later).
    """

    def __init__(self, dependencies: Any = (), all: bool = True, success: bool = True, failure: bool = False):
        if isinstance(dependencies, dict):
            all = dependencies.get("all", True)
            success = dependencies.get("success", True)
            failure = dependencies.get("failure", False)
            dependencies = dependencies.get("dependencies", ())
        if not (success or failure):
            raise ValueError("a Dependency must count success, failure, or both")
        super().__init__(_dependency_ids(dependencies))
        self.all = all
        self.success = success
        self.failure = failure

    def to_core(self) -> CoreDependency:
        """The scheduler's (immutable) Dependency with these ids and flags. Raises ValueError for bad flags."""
        return CoreDependency(set(self), all=bool(self.all), success=bool(self.success), failure=bool(self.failure))

    def check(self, completed: Any, failed: Any = ()) -> bool:
        """Whether the dependency is met, given the ids that completed and the ids that failed."""
        return self.to_core().check(set(completed), set(failed))

    def unreachable(self, completed: Any, failed: Any = ()) -> bool:
        """Whether the dependency can never be met any more."""
        return self.to_core().unreachable(set(completed), set(failed))

    def as_dict(self) -> dict[str, Any]:
        """`{"dependencies": [ids], "all", "success", "failure"}` (JSON-able; `Dependency(d)` reads it back)."""
        return {"dependencies": sorted(self), "all": self.all, "success": self.success, "failure": self.failure}

    def __repr__(self) -> str:
        return (f"Dependency({sorted(self)!r}, all={self.all!r}, success={self.success!r}, "
                f"failure={self.failure!r})")


def as_core_dependency(value: Any) -> CoreDependency | None:
    """What a view's `after` / `follow` flag means to the scheduler: None, or the core Dependency.

    A Dependency keeps its flags; inside a list its ids count with the default flags, as in
    ipyparallel. Raises TypeError / ValueError for anything that is not a dependency.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        value = Dependency(value)
    if isinstance(value, Dependency):
        return value.to_core() if value else None
    if isinstance(value, (list, tuple, set, frozenset)) and any(isinstance(v, Dependency) for v in value):
        value = _dependency_ids(value)
    return CoreDependency.coerce(value)


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
