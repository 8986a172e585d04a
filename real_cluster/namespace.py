"""An engine's namespace (ipyparallel's user namespace): the dict that `push`, `pull` and `execute` work on.

How this works. The namespace is a module-level dict of the worker process, so it lives exactly as
long as the worker: a worker restart (a crash, an abort, a time limit, `SIGKILL`) starts an empty
one. The nanny tells each worker its `generation` (0 for the first worker of an engine, then 1, 2,
...), so a later worker knows its namespace was emptied and says so when a name is missing.
`_push`, `_pull`, `_execute` and `_clear` run as ordinary tasks (the DirectView pins them to their
engine); they are imported on the engine by reference, never shipped by value.

Globals, as in ipyparallel: a function defined in `__main__` (a notebook, a script, `@interactive`)
runs with the namespace as its globals (`lend`), wherever it is passed (the function or an
argument of a task; load-balanced tasks too: an engine has one namespace). It reads names pushed or
executed there, and its `global` assignments land there. The values cloudpickle shipped with it
(the client's globals it refers to, as they were at submission) stand in, for that call only, for
the names the namespace lacks: the engine's own names win, and nothing shipped stays behind.
"""

from __future__ import annotations

import builtins
import types
from typing import Any

NAMESPACE: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
GENERATION = 0          # set by the worker from the nanny's `--generation`: how many workers this engine had before


def set_generation(generation: int) -> None:
    """Called once by the worker at start: 0 for an engine's first worker, n after n restarts."""
    global GENERATION
    GENERATION = generation


def _is_main(obj: Any) -> bool:
    return getattr(obj, "__module__", None) == "__main__"


def _is_main_function(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType) and obj.__module__ == "__main__"


def _rebound(f: types.FunctionType) -> types.FunctionType:
    """`f` with the namespace as its globals (its code, name, defaults, closure and attributes kept)."""
    g = types.FunctionType(f.__code__, NAMESPACE, f.__name__, f.__defaults__, f.__closure__)
    g.__kwdefaults__ = f.__kwdefaults__
    g.__qualname__ = f.__qualname__
    g.__doc__ = f.__doc__
    g.__module__ = "__main__"
    g.__dict__.update(f.__dict__)
    return g


_REBOUND: dict[types.FunctionType, tuple[types.FunctionType, tuple]] = {}     # f -> (its rebound copy, f's state)
_REBOUND_MAX = 512


def _rebound_cached(f: types.FunctionType) -> types.FunctionType:
    """`_rebound(f)`, the same copy again while nothing `_rebound` copies from `f` changed and neither has
    attributes: a by-value function from the worker's cache (fncache.py) runs many times (bench_worker.py
    --by-value: ~6k instructions a call). Bounded: cleared when full."""
    state = (f.__code__, f.__defaults__, f.__kwdefaults__, f.__closure__, f.__name__, f.__qualname__, f.__doc__)
    hit = _REBOUND.get(f)
    if hit is not None and hit[1] == state and not f.__dict__ and not hit[0].__dict__:
        return hit[0]
    g = _rebound(f)
    if not f.__dict__:
        if len(_REBOUND) >= _REBOUND_MAX:
            _REBOUND.clear()
        _REBOUND[f] = (g, state)
    return g


class lend:           # noqa: N801 - used as `with lend(f, args, kwargs) as (f, args, kwargs):`
    """Run a call with its `__main__` functions bound to the namespace (see the module docstring).

    Entering binds the function and any top-level function argument, and lends the namespace the
    client's values shipped with them (cloudpickle's globals) for the names it lacks; leaving takes
    back the lent names the call did not rebind. So the engine's own names win, the client's values
    are current at every call, and nothing the client shipped stays behind in the engine.
    """

    __slots__ = ("call", "lent")

    def __init__(self, f: Any, args: tuple, kwargs: dict):
        self.call = (f, args, kwargs)
        self.lent: dict[str, Any] | None = None

    def __enter__(self) -> tuple[Any, tuple, dict]:
        f, args, kwargs = self.call
        main_args = False
        for a in args:                                       # (loops, not any(<generator>): this runs per task)
            if type(a) is types.FunctionType and a.__module__ == "__main__":
                main_args = True
                break
        if kwargs and not main_args:
            main_args = any(_is_main_function(v) for v in kwargs.values())
        if not main_args and not (type(f) is types.FunctionType and f.__module__ == "__main__"):
            return self.call                                 # the common case: nothing to bind
        self.lent = {}
        if _is_main_function(f):
            f = self._bind(f)
        if main_args:
            args = tuple(self._bind(a) if _is_main_function(a) else a for a in args)
            kwargs = {k: self._bind(v) if _is_main_function(v) else v for k, v in kwargs.items()}
        return f, args, kwargs

    def _bind(self, f: types.FunctionType) -> types.FunctionType:
        shipped = f.__globals__
        if shipped is NAMESPACE:
            return f
        assert self.lent is not None
        for name, value in shipped.items():
            if (name.startswith("__") and name.endswith("__")) or name in NAMESPACE:
                continue                                     # the engine's own value wins
            if _is_main_function(value) and value.__globals__ is shipped:
                value = _rebound_cached(value)               # a helper from the same `__main__`: bound too
            NAMESPACE[name] = self.lent[name] = value
        return _rebound_cached(f)

    def __exit__(self, *exc: Any) -> None:
        if self.lent:
            for name, value in self.lent.items():
                if NAMESPACE.get(name, lend) is value:       # not rebound by the call: taken back
                    del NAMESPACE[name]


def _restart_note() -> str:
    return "" if GENERATION == 0 else (
        f" (this engine's worker was restarted {GENERATION} time{'s' if GENERATION > 1 else ''}; "
        "a restart empties the namespace, so names pushed before it are lost)")


def _lookup(key: str) -> Any:
    try:
        return eval(key, NAMESPACE)          # noqa: S307 - ipyparallel's pull evaluates the name (`a`, `a.b`, `a[0]`)
    except NameError as exc:
        raise NameError(f"{exc}{_restart_note()}") from None


def _push(**ns: Any) -> None:
    """Task body of `push`: set the names in the namespace."""
    NAMESPACE.update(ns)


def _pull(keys: Any) -> Any:
    """Task body of `pull`: the value of a name, or a list of values for a list of names.

    A missing name raises NameError, saying so when the engine's worker was restarted."""
    if isinstance(keys, (list, tuple, set)):
        return [_lookup(k) for k in keys]
    return _lookup(keys)


def _execute(code: str) -> None:
    """Task body of `execute`: run `code` in the namespace (its prints are the task's captured output)."""
    try:
        exec(compile(code, "<execute>", "exec"), NAMESPACE)     # noqa: S102 - what execute is for
    except NameError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is not None:
            exc.__traceback__ = exc.__traceback__.tb_next        # start the traceback at the user's code
        raise NameError(f"{exc}{_restart_note()}").with_traceback(exc.__traceback__) from None


def _import(name: str, fromlist: tuple[str, ...]) -> None:
    """Task body of `sync_imports`: `import name` (the top package is bound) or `from name import *fromlist`."""
    module = __import__(name, NAMESPACE, None, fromlist, 0)
    if not fromlist:
        NAMESPACE[name.partition(".")[0]] = module
    for key in fromlist:
        if key == "*":
            public = getattr(module, "__all__", None) or [k for k in vars(module) if not k.startswith("_")]
            NAMESPACE.update({k: getattr(module, k) for k in public})
        else:
            NAMESPACE[key] = getattr(module, key)


def _clear() -> None:
    """Task body of `clear`: empty the namespace (back to a fresh worker's)."""
    NAMESPACE.clear()
    NAMESPACE.update({"__name__": "__main__", "__builtins__": builtins})


def _generation() -> int:
    """Task body: this engine's worker generation (0 = never restarted)."""
    return GENERATION
