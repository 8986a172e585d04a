"""Ray-style actors, client side: `view.actor(Cls, ...)` -> ActorHandle; `h.method(*a)` -> AsyncResult.

How this works. Creating an actor submits one task whose flags carry `ActorOptions` (a fresh actor
id, the class name, the name and restart options) and whose call is (class, args, kwargs): the
controller's scheduler places it like any task (the view's targets, follow, after; `@require` on the
class is checked on the engine) and the worker keeps the instance (worker_actors.py). A method call
is a task whose flags carry the actor id and whose call is (method name, args, kwargs); the core
queues it FIFO per actor and sends it to the actor's engine. Calls may be made at once: they wait
for the creation. Failures arrive as for tasks: the method's own exception, or ActorDiedError.

An ActorHandle pickles to its id, class name and method names only, so it can be passed to tasks
and to other actors. Unpickled in a process without a client, it connects on first use: in an
engine's worker with the profile's client connection file, found next to the engine's own
(`SCHED_LAB_ENGINE_FILE`, which the engine sets) or named by `SCHED_LAB_CLIENT_FILE`. The engine's
key never grants client rights (docs/security.md): an engine that cannot read the client file gets
an error naming the file it looked for.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .asyncresult import AsyncResult
from .error import ClusterError
from .functional import dependent
from .messages import ActorOptions, TaskFlags
from .profile import CLIENT_FILE
from .serialize import pack_call

if TYPE_CHECKING:
    from .client import Client
    from .view import LoadBalancedView

__all__ = ["ActorHandle", "ActorMethod", "create_actor", "handle_for"]

ENGINE_FILE_ENV = "SCHED_LAB_ENGINE_FILE"      # set by an engine for its worker: its connection file
CLIENT_FILE_ENV = "SCHED_LAB_CLIENT_FILE"      # overrides where a worker finds the client connection file
_OPTION_NAMES = ("name", "max_restarts", "max_task_retries", "max_concurrency", "init_kwargs")

_lock = threading.Lock()
_process_client: Client | None = None          # the client handles use in this process when none is bound


def _remember(client: Client) -> None:
    global _process_client
    with _lock:
        if _process_client is None or _process_client._closed or _process_client._lost is not None:
            _process_client = client


def client_file_for_worker() -> Path:
    """The client connection file a handle uses inside an engine's worker (ClusterError if there is none)."""
    explicit = os.environ.get(CLIENT_FILE_ENV)
    if explicit:
        path = Path(explicit)
    else:
        engine_file = os.environ.get(ENGINE_FILE_ENV)
        if not engine_file:
            raise ClusterError("this ActorHandle has no client in this process: create one (Client(...)) and use "
                               "client.get_actor(name), or set SCHED_LAB_CLIENT_FILE to a client connection file")
        path = Path(engine_file).parent / CLIENT_FILE
    if not os.access(path, os.R_OK):
        raise ClusterError(f"an ActorHandle used on an engine needs a client connection, and {path} is not readable "
                           f"here: the engine key grants no client rights; copy the profile's {CLIENT_FILE} there or "
                           f"set SCHED_LAB_CLIENT_FILE")
    return path


def _client_here() -> Client:
    """This process's client for handles: the one last used to create or look up an actor, else a new one."""
    global _process_client
    with _lock:
        client = _process_client
        if client is not None and not client._closed and client._lost is None:
            return client
        from .client import Client
        client = _process_client = Client(connection_file=client_file_for_worker())
        return client


def _actor_class(cls: Any) -> type:
    """The class under any `@require` / `@depend` wrappers (TypeError if it is not a class)."""
    inner = cls
    while isinstance(inner, dependent):
        inner = inner.f
    if not isinstance(inner, type):
        raise TypeError(f"view.actor() needs a class, got {cls!r}")
    return inner


def _methods(cls: type) -> frozenset[str]:
    return frozenset(n for n in dir(cls) if not n.startswith("_") and callable(getattr(cls, n, None)))


class ActorMethod:
    """`handle.method`: calling it (or `.remote(...)`, Ray's spelling) submits a call and returns its AsyncResult."""

    __slots__ = ("_handle", "_name")

    def __init__(self, handle: ActorHandle, name: str):
        self._handle = handle
        self._name = name

    def __call__(self, *args: Any, **kwargs: Any) -> AsyncResult:
        return self._handle._call(self._name, args, kwargs)

    remote = __call__

    def __repr__(self) -> str:
        return f"<ActorMethod {self._handle._class_name}.{self._name} of {self._handle._actor_id[:12]}>"


class ActorHandle:
    """An actor: `h.method(*args, **kwargs)` returns an AsyncResult; picklable (pass it to tasks and actors).

    `h.creation` (in the process that created it) is the AsyncResult of the constructor. A method the class
    does not have raises AttributeError at once (for handles from `get_actor`, on the engine)."""

    def __init__(self, actor_id: str, class_name: str, methods: frozenset[str] | None = None,
                 name: str | None = None, client: Client | None = None, creation: AsyncResult | None = None):
        self._actor_id = actor_id
        self._class_name = class_name
        self._methods = methods
        self._name = name
        self._client = client
        self.creation = creation
        self._flags = TaskFlags(actor_id=actor_id)     # every call's (validated once)

    @property
    def actor_id(self) -> str:
        """The actor's id (unique in the cluster)."""
        return self._actor_id

    @property
    def name(self) -> str | None:
        """The name it was created with (None: anonymous)."""
        return self._name

    def __getattr__(self, attr: str) -> ActorMethod:
        if attr.startswith("_"):
            raise AttributeError(attr)
        if self._methods is not None and attr not in self._methods:
            raise AttributeError(f"actor class {self._class_name!r} has no method {attr!r}")
        return ActorMethod(self, attr)

    def _call(self, method: str, args: tuple, kwargs: dict) -> AsyncResult:
        client = self._client
        if client is None or client._closed or client._lost is not None:
            client = self._client = _client_here()
        tid = client.submit_task(pack_call(method, args, kwargs), self._flags)  # type: ignore[arg-type] # a name
        return client._track(AsyncResult(client, [tid], f"{self._class_name}.{method}"))

    def __reduce__(self) -> tuple:
        return _rebuild, (self._actor_id, self._class_name, self._methods, self._name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ActorHandle) and other._actor_id == self._actor_id

    def __hash__(self) -> int:
        return hash(self._actor_id)

    def __repr__(self) -> str:
        named = f" name={self._name!r}" if self._name else ""
        return f"<ActorHandle {self._class_name} {self._actor_id[:12]}{named}>"


def _rebuild(actor_id: str, class_name: str, methods: frozenset[str] | None, name: str | None) -> ActorHandle:
    return ActorHandle(actor_id, class_name, methods, name)


def create_actor(view: LoadBalancedView, cls: Any, args: tuple, kwargs: dict, *, name: str | None = None,
                 max_restarts: int = 0, max_task_retries: int = 0, max_concurrency: int = 1,
                 init_kwargs: dict | None = None) -> ActorHandle:
    """What `view.actor(...)` does (see its docstring). Raises TypeError / ValueError for bad options, ValueError
    if `name` is taken by a live actor."""
    inner = _actor_class(cls)
    if init_kwargs is not None:
        if not isinstance(init_kwargs, dict):
            raise TypeError(f"init_kwargs must be a dict, got {type(init_kwargs).__name__}")
        clash = set(init_kwargs) & set(kwargs)
        if clash:
            raise TypeError(f"constructor keywords given twice (in kwargs and init_kwargs): {sorted(clash)}")
        kwargs = {**kwargs, **init_kwargs}
    options = ActorOptions(actor_id=uuid.uuid4().hex, class_name=inner.__name__[:256], name=name,
                           max_restarts=max_restarts, max_task_retries=max_task_retries,
                           max_concurrency=max_concurrency)
    flags = replace(view._flags(), actor=options)
    client = view.client
    tid = view._submit(pack_call(cls, args, kwargs), flags)
    creation = client._track(AsyncResult(client, [tid], f"{inner.__name__}.__init__"))
    _remember(client)
    if name is not None:            # the controller filed the name with the submission, before this request
        found = client._request("get_actor", name=name)
        if found["actor_id"] != options.actor_id:
            raise ValueError(f"an actor named {name!r} already exists ({found['class']} {found['actor_id'][:12]})")
    return ActorHandle(options.actor_id, inner.__name__, _methods(inner), name, client, creation)


def handle_for(client: Client, found: dict[str, Any]) -> ActorHandle:
    """The handle of an actor the controller described (`get_actor`'s answer), bound to `client`."""
    _remember(client)
    return ActorHandle(found["actor_id"], found["class"], None, found.get("name"), client)
