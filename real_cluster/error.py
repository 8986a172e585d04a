"""The live cluster's exceptions: one tree, each class saying when it is raised.

```
ClusterError (= IPythonError)
├── ProtocolError                 a peer broke the wire protocol (bad frame, too large, bad header)
│   ├── InvalidField              one header field of a message is of the wrong type, range or size
│   └── AuthenticationError       a peer failed the HMAC challenge-response
├── ConnectionFailed              the controller could not be reached or the connection dropped
│   └── ControllerBusy            the controller refused the handshake as overloaded (retry later)
└── KernelError                   ipyparallel's base of everything about tasks and engines
    ├── NoEnginesRegistered       `targets` used while no engine is registered
    ├── TimeoutError              a result was not ready in time (also a builtins.TimeoutError)
    ├── TaskRejectError           raised by a task itself to be run elsewhere (with `retries`)
    └── RemoteError               a task failed: `.ename`, `.evalue`, `.traceback`, `.engine_info`
        ├── CompositeError        several parts of one result failed (e.g. a map)
        └── SchedulerError        failures named by the scheduler or the engine's runtime
            ├── EngineError       the task's engine (or its worker process) died or could not be reached
            ├── TaskTimeout       the task waited in the scheduler longer than its `timeout`
            ├── TaskAborted       the task was aborted (queued, or running: its worker was stopped)
            ├── TimeLimitExceeded the task ran longer than its `time_limit`
            ├── ActorDiedError    an actor call could not run: its actor died (restarts used up) or was killed
            ├── SchemeError       the scheduling scheme raised or chose an engine that was not a candidate
            └── UnmetDependency   a functional dependency was unmet on an engine (never reaches clients)
                └── ImpossibleDependency   the task's dependencies can never be met
                    ├── InvalidDependency  the task named unknown task ids, or itself, as dependencies
                    └── DependencyTimeout  ipyparallel's documented name; never raised (TaskTimeout is)
```

Failures the scheduler makes arrive as instances of the named class, which are also
`RemoteError`s with `.ename` set, so both `except TaskTimeout:` and code written for ipyparallel
(`except RemoteError as e: e.ename == "TaskTimeout"`) work. ipyparallel's helpers
`collect_exceptions`, `wrap_exception` and `unwrap_exception` are here with the same meaning.
"""

from __future__ import annotations

import builtins
import sys
import traceback as _traceback
from typing import Any

__all__ = [
    "ClusterError", "IPythonError", "ProtocolError", "InvalidField", "AuthenticationError", "ConnectionFailed",
    "ControllerBusy", "KernelError",
    "NoEnginesRegistered", "TimeoutError", "TaskRejectError", "RemoteError", "CompositeError", "SchedulerError",
    "EngineError", "TaskTimeout", "TaskAborted", "TimeLimitExceeded", "ActorDiedError", "UnmetDependency", "ImpossibleDependency",
    "InvalidDependency", "DependencyTimeout", "SchemeError", "remote_error", "collect_exceptions", "wrap_exception",
    "unwrap_exception",
]


class ClusterError(Exception):
    """Base of every error raised by real_cluster."""


class ProtocolError(ClusterError):
    """Raised when a peer sends bytes that are not a valid frame or message (the peer's fault)."""


class InvalidField(ProtocolError):
    """Raised when one header field of a message has the wrong type, range or size (`field` names it).

    `msg_type` is the message's wire name; `task_id` / `rid` are set when the message's own id was
    valid, so the receiver can answer that task or request instead of closing the connection.
    """

    def __init__(self, msg_type: str, field: str, problem: str, task_id: str | None = None, rid: int | None = None):
        super().__init__(f"{msg_type!r} message: field {field!r} {problem}")
        self.msg_type = msg_type
        self.field = field
        self.task_id = task_id
        self.rid = rid


class AuthenticationError(ProtocolError):
    """Raised when a peer fails the HMAC challenge-response (wrong key, replayed or forged answer)."""


class ConnectionFailed(ClusterError):
    """Raised when the controller cannot be reached, or the connection to it is lost."""


class Unreachable(ConnectionFailed):
    """Raised when the address refuses or cannot be reached, or the TLS handshake fails: retrying will not help."""


class ControllerBusy(ConnectionFailed):
    """Raised when the controller refused the handshake because it is overloaded (not a key problem: retry)."""


IPythonError = ClusterError     # ipyparallel's name for the base of all its exceptions


class KernelError(ClusterError):
    """Base of the errors about tasks and engines (ipyparallel's `KernelError`); never raised itself."""


class NoEnginesRegistered(KernelError):
    """Raised when a task names `targets` but no engine is registered at all."""


class TimeoutError(KernelError, builtins.TimeoutError):  # noqa: A001 - ipyparallel's name
    """Raised when a result is not ready within the time asked (`ar.get(timeout)`); also a builtin TimeoutError."""


class TaskRejectError(KernelError):
    """Raised by a task on an engine that cannot run it; with `retries` the task runs on another engine."""


def _rebuild(cls: type, ename: str, evalue: str, traceback: str, engine_info: dict | None) -> RemoteError:
    err = RemoteError.__new__(cls)
    RemoteError.__init__(err, ename, evalue, traceback, engine_info)
    return err


class RemoteError(KernelError):
    """Raised when a task failed: on its engine (`engine_info` set) or in the scheduler (empty).

    `str(err)` is ipyparallel's: `"[{engine_id}:{method}] {ename}: {evalue}"`, or
    `"[Engine Exception] {ename}: {evalue}"` when no engine ran it.
    """

    def __init__(self, ename: str, evalue: str = "", traceback: str = "", engine_info: dict | None = None):
        super().__init__(ename, evalue)
        self.ename = ename
        self.evalue = evalue
        self.traceback = traceback or ""
        self.engine_info: dict[str, Any] = dict(engine_info or {})

    def __reduce__(self) -> tuple:
        return _rebuild, (type(self), self.ename, self.evalue, self.traceback, self.engine_info)

    @property
    def label(self) -> str:
        """`"[engine_id:method]"`, or `"[Engine Exception]"` when no engine ran the task."""
        if self.engine_info:
            return f"[{self.engine_info.get('engine_id', '?')}:{self.engine_info.get('method', 'apply')}]"
        return "[Engine Exception]"

    def __str__(self) -> str:
        return f"{self.label} {self.ename}: {self.evalue}"

    def __repr__(self) -> str:
        eid = self.engine_info.get("engine_id", " ")
        return f"<{type(self).__name__}[{eid}]:{self.ename}({self.evalue})>"

    def render_traceback(self) -> list[str]:
        """The label followed by the remote traceback lines (what IPython displays)."""
        return [self.label] + (self.traceback.splitlines() if self.traceback else [f"{self.ename}: {self.evalue}"])

    _render_traceback_ = render_traceback


class SchedulerError(RemoteError):
    """Base of the failures the cluster itself names (its `ename` is always the class name)."""

    def __init__(self, evalue: str = "", traceback: str = "", engine_info: dict | None = None):
        super().__init__(type(self).__name__, evalue, traceback, engine_info)


class EngineError(SchedulerError):
    """Raised when the task's engine died (or could not be reached) while the task was out, with no retries left."""


class TaskTimeout(SchedulerError):
    """Raised when a task waited in the scheduler longer than its `timeout` (running tasks never time out)."""


class TaskAborted(SchedulerError):
    """Raised when a task was aborted: before it ran, or while running (its engine stopped its worker)."""


class TimeLimitExceeded(SchedulerError):
    """Raised when a task ran longer than its `time_limit`; its engine stopped it (retries apply)."""


class ActorDiedError(SchedulerError):
    """Raised for an actor call whose actor died: in flight beyond `max_task_retries`, after its restarts were used
    up, or after `kill_actor` (also for calls on an actor that never existed)."""


class SchemeError(SchedulerError):
    """Raised when the scheme (e.g. a user's `--scheme-module` law) raised or chose a non-candidate for the task."""


class UnmetDependency(SchedulerError):
    """Raised on an engine when a functional dependency is unmet; the scheduler then tries another engine."""


class ImpossibleDependency(UnmetDependency):
    """Raised when a task's dependencies or placement constraints can never be met."""


class InvalidDependency(ImpossibleDependency):
    """Raised when a task names unknown task ids, or itself, in `after`/`follow`."""


class DependencyTimeout(ImpossibleDependency):
    """ipyparallel's documented name for a dependency wait that timed out; never raised here (TaskTimeout is)."""


class CompositeError(RemoteError):
    """Raised when several parts of one result failed; `elist` holds `(ename, evalue, tb, engine_info)`.

    `str` follows ipyparallel: a summary line and the first `tb_limit` errors.
    """

    tb_limit = 4

    def __init__(self, message: str, elist: list[tuple[str, str, str, dict]]):
        super().__init__("CompositeError", message)
        self.message = message
        self.elist = list(elist)

    def __reduce__(self) -> tuple:
        return CompositeError, (self.message, self.elist)

    @property
    def errors(self) -> list[RemoteError]:
        """The individual failures, as RemoteErrors (of the named class for scheduler failures)."""
        return [remote_error(*e) for e in self.elist]

    def __str__(self) -> str:
        lines = [self.message]
        for ename, evalue, _tb, info in self.elist[: self.tb_limit]:
            label = f"[{info.get('engine_id', '?')}:{info.get('method', 'apply')}]" if info else "[Engine Exception]"
            lines.append(f"{label}{ename}: {evalue}")
        if len(self.elist) > self.tb_limit:
            lines.append(f".... {len(self.elist) - self.tb_limit} more exceptions ...")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"CompositeError({len(self.elist)})"

    def raise_exception(self, excid: int = 0) -> None:
        """Raise failure number `excid` on its own."""
        raise self.errors[excid]

    def render_traceback(self, excid: int | None = None) -> list[str]:
        """The remote tracebacks of all failures, or of failure `excid`."""
        errors = self.errors if excid is None else [self.errors[excid]]
        out: list[str] = []
        for err in errors:
            out.extend(err.render_traceback())
            out.append("")
        return out


_NAMED: dict[str, type[SchedulerError]] = {
    cls.__name__: cls
    for cls in (EngineError, TaskTimeout, TaskAborted, UnmetDependency, ImpossibleDependency, InvalidDependency,
                DependencyTimeout, TimeLimitExceeded, SchemeError, ActorDiedError)
}


def remote_error(ename: str, evalue: str = "", traceback: str = "", engine_info: dict | None = None) -> RemoteError:
    """The exception a client raises for a failed task: the named class for the cluster's own failures."""
    cls = _NAMED.get(ename)
    if cls is not None:
        return cls(evalue, traceback, engine_info)
    return RemoteError(ename, evalue, traceback, engine_info)


def composite_error(method: str, failures: list[BaseException]) -> CompositeError:
    """One CompositeError holding every failure (nested CompositeErrors flattened), as ipyparallel reports a map."""
    elist: list[tuple[str, str, str, dict]] = []
    for exc in failures:
        if isinstance(exc, CompositeError):
            elist.extend(exc.elist)
        elif isinstance(exc, RemoteError):
            elist.append((exc.ename, exc.evalue, exc.traceback, exc.engine_info))
        else:
            elist.append((type(exc).__name__, str(exc), "", {}))
    return CompositeError(f"one or more exceptions raised in: {method}", elist)


def collect_exceptions(rdict_or_list: dict | list, method: str = "unspecified") -> dict | list:
    """Return the results unchanged if none is an exception; else raise one CompositeError of all of them."""
    values = rdict_or_list.values() if isinstance(rdict_or_list, dict) else rdict_or_list
    failures = [v for v in values if isinstance(v, BaseException)]
    if not failures:
        return rdict_or_list
    raise composite_error(method, failures)


def wrap_exception(engine_info: dict | None = None) -> dict[str, Any]:
    """The exception being handled as a reply dict: `status`, `ename`, `evalue`, `traceback`, `engine_info`.

    Call it inside an `except` block. Raises RuntimeError when no exception is being handled.
    """
    etype, evalue, tb = sys.exc_info()
    if etype is None:
        raise RuntimeError("wrap_exception() called outside an except block")
    return {"status": "error", "ename": etype.__name__, "evalue": str(evalue),
            "traceback": "".join(_traceback.format_exception(etype, evalue, tb)),
            "engine_info": dict(engine_info or {})}


def unwrap_exception(content: dict[str, Any]) -> RemoteError:
    """The RemoteError (of the named class for the cluster's own failures) for a `wrap_exception` dict."""
    return remote_error(content.get("ename", "RemoteError"), content.get("evalue", ""), content.get("traceback", ""),
                        content.get("engine_info"))
