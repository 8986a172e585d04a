"""The scheme plugin API: write a scheme once, run it live and simulated (DESIGN §3.1).

How this works. `register_scheme(name, law, pool=..., params=..., summary=...)` puts a `Scheme`
in the registry `SCHEMES`; the built-in schemes (schemes.py) are registered by the same call.
A *law* is the plain, obviously-correct rule: `law(choice, **params)` returns one engine id
from `choice.candidates` (see `Choice`). A *pool* is an optional fast implementation of the
same law (the `EnginePool` protocol); without one the law itself decides, O(n) per decision.

A scheme is selected by a *spec* string `NAME[:key=value,...]` (`powerofd:d=3`);
`parse_scheme(spec)` checks the name and the parameters against the registry and returns a
`BoundScheme`, which the scheduler asks for a pool (`new_pool`) and, for tasks restricted to an
explicit engine list, for one decision (`choose_among`). A law or a user pool that raises, or
that returns an engine that is not a candidate, raises `SchemeFailure` inside the core; the
scheduler turns it into a `Fail(task, "SchemeError", ...)` action and goes on.

`load_scheme_modules(["mod", "path/to/file.py"])` (scheme_modules.py) imports the modules that
call `register_scheme` (configuration time only: the scheduler itself never imports or reads files).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from random import Random
from types import MappingProxyType
from typing import Any, Protocol

EngineId = Hashable
SCHEME_ERROR = "SchemeError"


class SchemeFailure(Exception):
    """A scheme's law or pool raised or chose a non-candidate (caught by the scheduler: the task fails)."""


@dataclass(frozen=True, slots=True)
class Choice:
    """What a law sees for one decision; every tuple is aligned with `candidates`.

    `candidates`: the engine ids the task may go to, least recently assigned first. `loads`:
    their outstanding task counts. `speeds`: their advertised speed factors (1.0 unless told).
    `labels`: their advertised labels (frozensets of strings). `task`: the task's spec (`label`,
    `size_hint`, ...). `rng`: the scheduler's seeded `random.Random` (the only randomness a law
    may use, so runs replay under a seed).
    """

    candidates: tuple[EngineId, ...]
    loads: tuple[int, ...]
    speeds: tuple[float, ...]
    labels: tuple[frozenset[str], ...]
    task: Any
    rng: Random

    def __post_init__(self) -> None:
        n = len(self.candidates)
        if n == 0:
            raise ValueError("a Choice needs at least one candidate")
        if not (len(self.loads) == len(self.speeds) == len(self.labels) == n):
            raise ValueError("loads, speeds and labels must be aligned with candidates")


class EngineDirectory:
    """What each live engine advertises (speed factor, labels); kept by the scheduler, read by pools."""

    __slots__ = ("speed", "labels")

    def __init__(self) -> None:
        self.speed: dict[EngineId, float] = {}
        self.labels: dict[EngineId, frozenset[str]] = {}

    def join(self, engine: EngineId, speed: float = 1.0, labels: frozenset[str] = frozenset()) -> None:
        self.speed[engine] = speed
        self.labels[engine] = labels

    def leave(self, engine: EngineId) -> None:
        self.speed.pop(engine, None)
        self.labels.pop(engine, None)


class EnginePool(Protocol):
    """The available engines (below hwm) of one scheduler, with a scheme's fast decision rule.

    `load` maps each available engine to its load; it must stay the same dict object (the
    scheduler reads it to test availability). `seq` is an engine's last-assignment sequence
    number (smaller = less recently assigned). `choose` returns an available engine that is not in
    `exclude`, or None when there is none; `task` is the task's spec.
    """

    load: dict[EngineId, int]

    def add(self, engine: EngineId, load: int, seq: int) -> None: ...
    def update(self, engine: EngineId, load: int, seq: int) -> None: ...
    def discard(self, engine: EngineId) -> None: ...
    def __len__(self) -> int: ...
    def __contains__(self, engine: object) -> bool: ...
    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None,
               task: Any = None) -> EngineId | None: ...


Law = Callable[..., EngineId]
PoolFactory = Callable[..., EnginePool]


def _call_law(scheme_label: str, law: Law, choice: Choice, params: Mapping[str, Any]) -> EngineId:
    """The law's decision, checked: SchemeFailure if it raised or returned a non-candidate."""
    try:
        engine = law(choice, **params)
    except Exception as exc:        # the user's code failed: the task fails with SchemeError, not the core
        raise SchemeFailure(f"scheme {scheme_label!r} raised {type(exc).__name__}: {exc}") from exc
    if engine not in choice.candidates:
        shown = ", ".join(map(repr, choice.candidates[:8])) + (", ..." if len(choice.candidates) > 8 else "")
        raise SchemeFailure(f"scheme {scheme_label!r} returned {engine!r}, which is not a candidate ({shown})")
    return engine


class LawPool:
    """The pool of a scheme registered without one: the law over the explicit candidate list, O(n log n)."""

    def __init__(self, label: str, law: Law, params: Mapping[str, Any], engines: EngineDirectory) -> None:
        self.load: dict[EngineId, int] = {}
        self.seq: dict[EngineId, int] = {}
        self._label, self._law, self._params, self._engines = label, law, dict(params), engines

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        self.load[engine] = load
        self.seq[engine] = seq

    update = add

    def discard(self, engine: EngineId) -> None:
        if self.load.pop(engine, None) is not None:
            del self.seq[engine]

    def __len__(self) -> int:
        return len(self.load)

    def __contains__(self, engine: object) -> bool:
        return engine in self.load

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None, task: Any = None) -> EngineId | None:
        cands = sorted((s, e) for e, s in self.seq.items() if not (exclude and e in exclude))
        if not cands:
            return None
        ids = [e for _, e in cands]
        return decide(self._label, self._law, self._params, ids, [self.load[e] for e in ids], self._engines, task, rng)


def decide(label: str, law: Law, params: Mapping[str, Any], ids: Sequence[EngineId], loads: Sequence[int],
           engines: EngineDirectory, task: Any, rng: Random) -> EngineId:
    """One checked decision of `law` over candidates `ids` (LRU order) with their `loads`."""
    speed, labels = engines.speed, engines.labels
    choice = Choice(tuple(ids), tuple(loads), tuple(speed.get(e, 1.0) for e in ids),
                    tuple(labels.get(e, frozenset()) for e in ids), task, rng)
    return _call_law(label, law, choice, params)


class _CheckedPool:
    """A user's fast pool, held to the rules at every decision (a wrong choice fails the task, not the core).

    It keeps its own record of the available engines (what the scheduler told it), so a pool whose
    bookkeeping is wrong can neither pick a lost or full engine nor mislead the scheduler.
    """

    def __init__(self, label: str, inner: EnginePool) -> None:
        self._label, self._inner = label, inner
        self.load: dict[EngineId, int] = {}
        self._broken: str | None = None        # set when the pool's bookkeeping raised: every choice fails

    def _keep(self, what: str, call: Callable[..., None], *args: Any) -> None:
        try:
            call(*args)
        except Exception as exc:               # the user's pool failed: its tasks fail with SchemeError
            if self._broken is None:
                self._broken = f"scheme {self._label!r} (pool) raised {type(exc).__name__} in {what}: {exc}"

    def add(self, engine: EngineId, load: int, seq: int) -> None:
        self.load[engine] = load
        self._keep("add", self._inner.add, engine, load, seq)

    def update(self, engine: EngineId, load: int, seq: int) -> None:
        self.load[engine] = load
        self._keep("update", self._inner.update, engine, load, seq)

    def discard(self, engine: EngineId) -> None:
        self.load.pop(engine, None)
        self._keep("discard", self._inner.discard, engine)

    def __len__(self) -> int:
        return len(self.load)

    def __contains__(self, engine: object) -> bool:
        return engine in self.load

    def choose(self, rng: Random, exclude: Collection[EngineId] | None = None, task: Any = None) -> EngineId | None:
        if self._broken is not None:
            raise SchemeFailure(self._broken)
        try:
            engine = self._inner.choose(rng, exclude, task)
        except Exception as exc:    # the user's pool failed: the task fails with SchemeError
            raise SchemeFailure(f"scheme {self._label!r} (pool) raised {type(exc).__name__}: {exc}") from exc
        if engine is None:
            if any(not (exclude and e in exclude) for e in self.load):
                raise SchemeFailure(f"scheme {self._label!r} (pool) returned None although candidates exist")
            return None
        try:
            ok = engine in self.load and not (exclude and engine in exclude)
        except TypeError:                  # unhashable: certainly not an engine id
            ok = False
        if not ok:
            raise SchemeFailure(f"scheme {self._label!r} (pool) returned {engine!r}, which is not a candidate")
        return engine


@dataclass(frozen=True, slots=True)
class Scheme:
    """A registered scheme: its law, its optional fast pool factory, its parameters and their defaults."""

    name: str
    law: Law
    pool_factory: PoolFactory | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    index_reference: Callable[..., int] | None = None   # built-ins: the law over loads -> index, no Choice

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in ":,= \t"):
            raise ValueError(f"a scheme name must be a non-empty string without ':', ',', '=' or spaces, "
                             f"got {self.name!r}")
        if not callable(self.law):
            raise TypeError(f"scheme {self.name!r}: law must be callable, got {self.law!r}")
        if self.pool_factory is not None and not callable(self.pool_factory):
            raise TypeError(f"scheme {self.name!r}: pool must be callable (a factory), got {self.pool_factory!r}")
        params = dict(self.params or {})
        for key in params:
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"scheme {self.name!r}: parameter names must be identifiers, got {key!r}")
        object.__setattr__(self, "params", MappingProxyType(params))

    def bind(self, **params: Any) -> BoundScheme:
        """This scheme with some parameters set (the others at their defaults)."""
        unknown = [k for k in params if k not in self.params]
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise ValueError(f"scheme {self.name!r} has no parameter {unknown[0]!r} (parameters: {allowed})")
        return BoundScheme(self, tuple(params.items()))

    def pool(self, engines: EngineDirectory | None = None, **params: Any) -> EnginePool:
        """A fresh pool with these parameters (the law's LawPool when the scheme has no fast pool)."""
        return self.bind(**params).new_pool(engines if engines is not None else EngineDirectory())

    def reference(self, loads: Sequence[int], rng: Random, **params: Any) -> int:
        """The law over candidates 0..n-1 with these loads (speed 1, no labels, no task): an index.

        (benchmarks/bench_core.py's peer: the built-ins answer from their plain index function.)
        """
        if self.index_reference is not None:
            return self.index_reference(loads, rng, **{**self.params, **params})
        n = len(loads)
        choice = Choice(tuple(range(n)), tuple(loads), (1.0,) * n, (frozenset(),) * n, None, rng)
        index = _call_law(self.name, self.law, choice, {**self.params, **params})
        assert isinstance(index, int)
        return index


@dataclass(frozen=True, slots=True)
class BoundScheme:
    """A scheme with its parameters: what a scheduler runs. `label` is the canonical spec string."""

    scheme: Scheme
    given: tuple[tuple[str, Any], ...] = ()

    @property
    def params(self) -> dict[str, Any]:
        return {**self.scheme.params, **dict(self.given)}

    @property
    def label(self) -> str:
        if not self.given:
            return self.scheme.name
        return self.scheme.name + ":" + ",".join(f"{k}={v}" for k, v in self.given)

    @property
    def builtin(self) -> bool:
        """One of the schemes sched-lab registers (not a user's)."""
        return self.scheme.name in _BUILTIN

    def new_pool(self, engines: EngineDirectory) -> EnginePool:
        """A fresh pool for one scheduler (ValueError if the parameters are bad for the pool)."""
        factory = self.scheme.pool_factory
        if factory is None:
            return LawPool(self.label, self.scheme.law, self.params, engines)
        pool = factory(engines, **self.params)
        # built-in pools are held to their laws by tests/core/test_schemes.py; users' pools are checked live
        return pool if self.scheme.name in _BUILTIN else _CheckedPool(self.label, pool)

    def choose_among(self, ids: Sequence[EngineId], loads: Sequence[int], engines: EngineDirectory,
                     task: Any, rng: Random) -> EngineId:
        """The law's checked decision over an explicit candidate list (LRU order); SchemeFailure if it errs."""
        return decide(self.label, self.scheme.law, self.params, ids, loads, engines, task, rng)


SCHEMES: dict[str, Scheme] = {}
_BUILTIN: set[str] = set()


def register_scheme(name: str, law: Law, *, pool: PoolFactory | None = None,
                    params: Mapping[str, Any] | None = None, summary: str = "") -> Scheme:
    """Register a scheme under `name` (DESIGN §3.1); returns it.

    `law(choice, **params)` returns one engine id from `choice.candidates` (a `Choice`).
    `pool(engines, **params)`: an optional factory of a fast `EnginePool` making the same law
    (check it with `sched_lab.testing.check_scheme`). `params`: parameter names and defaults;
    values given as `NAME:key=value` are converted to the default's type. Registering a name
    again replaces the scheme (a module loaded twice); the built-in names cannot be replaced.
    """
    scheme = Scheme(name, law, pool, dict(params or {}), summary or (law.__doc__ or "").strip().split("\n")[0])
    if name in _BUILTIN and name in SCHEMES:
        raise ValueError(f"{name!r} is a built-in scheme; register yours under another name")
    scheme.bind().label                          # names checked in __post_init__
    SCHEMES[name] = scheme
    return scheme


def _register_builtin(name: str, law: Law, *, pool: PoolFactory | None = None,
                      params: Mapping[str, Any] | None = None, summary: str = "",
                      index_reference: Callable[..., int] | None = None) -> Scheme:
    scheme = replace(register_scheme(name, law, pool=pool, params=params, summary=summary),
                     index_reference=index_reference)
    SCHEMES[name] = scheme
    _BUILTIN.add(name)
    return scheme


def get_scheme(name: str) -> Scheme:
    """The registered scheme called `name`; ValueError naming the choices otherwise."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise ValueError(f"unknown scheme {name!r}; allowed: {', '.join(SCHEMES)}") from None


def _convert(scheme: Scheme, key: str, text: str) -> Any:
    default = scheme.params[key]
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if kind in (int, float, str):
            return kind(text)
        if default is None:
            for conv in (int, float):
                try:
                    return conv(text)
                except ValueError:
                    pass
            return text
    except ValueError:
        raise ValueError(f"scheme {scheme.name!r}: parameter {key}={text!r} is not a valid {kind.__name__}") from None
    return text


def parse_scheme(spec: str | BoundScheme) -> BoundScheme:
    """`NAME[:key=value,...]` -> the registered scheme with those parameters; ValueError listing the choices."""
    if isinstance(spec, BoundScheme):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"a scheme is NAME[:key=value,...]; got {spec!r}")
    name, _, rest = spec.strip().partition(":")
    scheme = get_scheme(name.strip())
    given: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ValueError(f"bad scheme parameter {item!r} in {spec!r}: expected key=value")
        if key not in scheme.params:
            allowed = ", ".join(scheme.params) or "none"
            raise ValueError(f"scheme {scheme.name!r} has no parameter {key!r} (parameters: {allowed})")
        given[key] = _convert(scheme, key, value.strip())
    return scheme.bind(**given)


def check_scheme_spec(spec: str) -> str:
    """Validate a spec (name, parameters, and a pool built with them); returns its canonical label."""
    bound = parse_scheme(spec)
    bound.new_pool(EngineDirectory())
    return bound.label


# User modules (files or dotted names that call register_scheme) are loaded by scheme_modules.py.
from .scheme_modules import load_scheme_module, load_scheme_modules, scheme_module_path  # noqa: E402

__all__ = [
    "SCHEME_ERROR", "SchemeFailure", "Choice", "EngineDirectory", "EnginePool", "LawPool", "Scheme", "BoundScheme",
    "SCHEMES", "register_scheme", "get_scheme", "parse_scheme", "check_scheme_spec", "decide",
    "load_scheme_module", "load_scheme_modules", "scheme_module_path",
]
from . import schemes as _builtin  # noqa: E402, F401 - the built-in schemes register themselves: SCHEMES is never bare
