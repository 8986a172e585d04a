"""Every message of the cluster protocol, and the one place that converts them to and from frames.

Each message is a frozen, slotted dataclass with a wire name `TYPE`. Plain fields travel in the
JSON header; the fields named in `BUFFERS` (pickled payloads) travel as opaque frame buffers, so
the controller routes them without unpickling. `to_wire(msg)` -> (header, buffers) and
`from_wire(header, buffers)` -> msg are inverses; `from_wire` raises ProtocolError for anything
malformed (unknown type, missing or extra fields, wrong buffer count).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from sched_lab.core.dependency import Dependency

from .error import ProtocolError


@dataclass(frozen=True, slots=True)
class TaskFlags:
    """The per-task flags a client submits (what the scheduler sees of a task, minus its id)."""

    targets: tuple[int, ...] | None = None
    after: Dependency | None = None
    follow: Dependency | None = None
    retries: int = 0
    timeout_s: float | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be a non-negative int, got {self.retries!r}")
        if self.timeout_s is not None and (isinstance(self.timeout_s, bool) or self.timeout_s < 0):
            raise ValueError(f"timeout must be a non-negative number or None, got {self.timeout_s!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (also what the task database stores)."""
        return {"targets": list(self.targets) if self.targets is not None else None,
                "after": self.after.as_dict() if self.after else None,
                "follow": self.follow.as_dict() if self.follow else None,
                "retries": self.retries, "timeout": self.timeout_s, "label": self.label}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFlags:
        """Inverse of `to_dict`."""
        return cls(targets=tuple(data["targets"]) if data.get("targets") is not None else None,
                   after=Dependency.from_dict(data["after"]) if data.get("after") else None,
                   follow=Dependency.from_dict(data["follow"]) if data.get("follow") else None,
                   retries=data.get("retries", 0), timeout_s=data.get("timeout"), label=data.get("label"))


# ---------------------------------------------------------------------------------- handshake

@dataclass(frozen=True, slots=True)
class Hello:
    """Server -> peer: the challenge."""
    TYPE: ClassVar[str] = "hello"
    nonce: str
    version: int


@dataclass(frozen=True, slots=True)
class Auth:
    """Peer -> server: who it is, its own challenge, and its proof of the key."""
    TYPE: ClassVar[str] = "auth"
    role: str
    nonce: str
    mac: str


@dataclass(frozen=True, slots=True)
class Welcome:
    """Server -> peer: the server's proof of the key (the peer checks it before trusting anything)."""
    TYPE: ClassVar[str] = "welcome"
    mac: str


# ------------------------------------------------------------------------------------ engines

@dataclass(frozen=True, slots=True)
class Register:
    """Engine -> controller: join the cluster."""
    TYPE: ClassVar[str] = "register"
    uuid: str
    pid: int
    hostname: str


@dataclass(frozen=True, slots=True)
class Registered:
    """Controller -> engine: the engine's id and how often to send heartbeats."""
    TYPE: ClassVar[str] = "registered"
    engine_id: int
    hb_period_s: float


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Engine -> controller: still alive (sent from its own thread, also while a task runs)."""
    TYPE: ClassVar[str] = "hb"


@dataclass(frozen=True, slots=True)
class RunTask:
    """Controller -> engine: run attempt `attempt` of a task (`payload` is the client's pickled call)."""
    TYPE: ClassVar[str] = "run"
    BUFFERS: ClassVar[tuple[str, ...]] = ("payload",)
    task_id: str
    attempt: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Controller -> engine: do not run this attempt if it has not started (answer status 'aborted')."""
    TYPE: ClassVar[str] = "cancel"
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskDone:
    """Engine -> controller: an attempt ended. `status`: ok | error | unmet | aborted; `result` pickled when ok."""
    TYPE: ClassVar[str] = "done"
    BUFFERS: ClassVar[tuple[str, ...]] = ("result",)
    task_id: str
    attempt: int
    status: str
    started_at: float | None
    completed_at: float
    ename: str | None = None
    evalue: str | None = None
    traceback: str | None = None
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class StopEngine:
    """Controller -> engine: exit cleanly."""
    TYPE: ClassVar[str] = "stop"


# ------------------------------------------------------------------------------------ clients

@dataclass(frozen=True, slots=True)
class Submit:
    """Client -> controller: a new task (`payload` is the pickled function and arguments)."""
    TYPE: ClassVar[str] = "submit"
    BUFFERS: ClassVar[tuple[str, ...]] = ("payload",)
    task_id: str
    flags: TaskFlags
    submitted_at: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class TaskResult:
    """Controller -> client: a task's final outcome. `status`: ok | error; `result` pickled when ok."""
    TYPE: ClassVar[str] = "result"
    BUFFERS: ClassVar[tuple[str, ...]] = ("result",)
    task_id: str
    status: str
    engine_id: int | None
    submitted_at: float | None
    started_at: float | None
    completed_at: float | None
    received_at: float | None
    ename: str | None = None
    evalue: str | None = None
    traceback: str | None = None
    engine_info: dict | None = None
    label: str | None = None
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """Client -> controller: a query or command `op` with JSON-able `args`; answered by a Reply with the same `rid`."""
    TYPE: ClassVar[str] = "req"
    BUFFERS: ClassVar[tuple[str, ...]] = ("big",)
    rid: int
    op: str
    args: dict
    big: bytes | None = None        # JSON of `args` when too large for a frame header (then `args` is {})


@dataclass(frozen=True, slots=True)
class Reply:
    """Controller -> client: the answer to Request `rid` (`value` if ok, else `error` = [ename, evalue])."""
    TYPE: ClassVar[str] = "rep"
    BUFFERS: ClassVar[tuple[str, ...]] = ("big",)
    rid: int
    ok: bool
    value: Any = None
    error: list | None = None
    big: bytes | None = None        # JSON of `value` when too large for a frame header (then `value` is None)


@dataclass(frozen=True, slots=True)
class EnginesChanged:
    """Controller -> client: the ids of the engines now registered."""
    TYPE: ClassVar[str] = "engines"
    ids: tuple[int, ...]


_NO_FLAGS = TaskFlags()
MESSAGE_TYPES: tuple[type, ...] = (Hello, Auth, Welcome, Register, Registered, Heartbeat, RunTask, CancelTask,
                                   TaskDone, StopEngine, Submit, TaskResult, Request, Reply, EnginesChanged)
_BY_TYPE: dict[str, type] = {cls.TYPE: cls for cls in MESSAGE_TYPES}
# per class: (header field names, buffer field names, required header names)
_LAYOUT: dict[type, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {}
for _cls in MESSAGE_TYPES:
    _bufs = getattr(_cls, "BUFFERS", ())
    _fs = fields(_cls)
    _LAYOUT[_cls] = (tuple(f.name for f in _fs if f.name not in _bufs), _bufs,
                     frozenset(f.name for f in _fs if f.name not in _bufs
                               and f.default is MISSING and f.default_factory is MISSING))


def to_wire(msg: Any) -> tuple[dict[str, Any], list[bytes]]:
    """A message as a frame header and its buffers (a None buffer field is sent as no buffer)."""
    cls = type(msg)
    names, bufs, required = _LAYOUT[cls]
    header: dict[str, Any] = {"t": cls.TYPE}
    for name in names:
        value = getattr(msg, name)
        if value is None and name not in required:
            continue
        if isinstance(value, TaskFlags):
            if value == _NO_FLAGS:      # the default flags travel as no field at all (bench_live.py, burst)
                continue
            value = value.to_dict()
        elif isinstance(value, tuple):
            value = list(value)
        header[name] = value
    buffers = [getattr(msg, b) for b in bufs if getattr(msg, b) is not None]
    if bufs and buffers:
        header["nb"] = len(buffers)
    return header, buffers


def from_wire(header: dict[str, Any], buffers: list[bytes]) -> Any:
    """The message a frame carries. Raises ProtocolError if it is not a well-formed message."""
    cls = _BY_TYPE.get(header.get("t"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {header.get('t')!r}")
    names, bufs, required = _LAYOUT[cls]
    kwargs: dict[str, Any] = {}
    for key, value in header.items():
        if key in ("t", "nb"):
            continue
        if key not in names:
            raise ProtocolError(f"unexpected field {key!r} in a {cls.TYPE!r} message")
        kwargs[key] = value
    if cls is Submit and "flags" not in kwargs:
        kwargs["flags"] = _NO_FLAGS
    missing = required - kwargs.keys()
    if missing:
        raise ProtocolError(f"{cls.TYPE!r} message lacks {sorted(missing)}")
    if len(buffers) > len(bufs) or (len(buffers) != header.get("nb", 0)):
        raise ProtocolError(f"{cls.TYPE!r} message has {len(buffers)} buffers, expected {header.get('nb', 0)}")
    for name, buf in zip(bufs, buffers):
        kwargs[name] = buf
    try:
        if "flags" in kwargs and kwargs["flags"] is not _NO_FLAGS:
            kwargs["flags"] = TaskFlags.from_dict(kwargs["flags"])
        if cls is EnginesChanged:
            kwargs["ids"] = tuple(kwargs["ids"])
        return cls(**kwargs)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ProtocolError(f"malformed {cls.TYPE!r} message: {exc}") from None
