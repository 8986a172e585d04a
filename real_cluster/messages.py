"""Every message of the cluster protocol, and the one place that converts them to and from frames.

Each message is a frozen, slotted dataclass with a wire name `TYPE`. Plain fields travel in the
JSON header; the fields named in `BUFFERS` (pickled payloads) travel as opaque frame buffers, so
the controller routes them without unpickling. `to_wire(msg)` -> (header, buffers) and
`from_wire(header, buffers)` -> msg are inverses; `from_wire` raises ProtocolError for anything
malformed (unknown type, missing or extra fields, wrong buffer count), and InvalidField naming the
field for a value of the wrong type, range or size (every field's rule: wire_fields.py).

The four messages every task sends (Submit, RunTask, TaskDone, TaskResult) have a binary header
in their common shape (default flags, a success): a NUL byte, a type code, fixed struct fields,
then the task id in UTF-8; so do an actor's RunTask and an actor call's Submit (then the task id's
length, the task id and the actor id). It costs a fraction of the JSON (bench_live.py: the no-op burst); any
other shape of those messages, and every other message, travels as JSON.
"""

from __future__ import annotations

import json
import struct
from dataclasses import MISSING, dataclass, fields
from typing import Any, ClassVar

from sched_lab.core.dependency import Dependency
from sched_lab.core.options import check_retries, check_size_hint, check_time_limit_s, check_timeout_s

from .error import InvalidField, ProtocolError
from .wire_fields import MAX_ID_CHARS, MAX_TIME, check_binary, check_fields, direct_problem


@dataclass(frozen=True, slots=True)
class ActorOptions:
    """What an actor-creating task says about its actor (`view.actor(...)`): its id, class, name and options.

    `name` None: anonymous. `max_restarts` / `max_task_retries` >= 0 (Ray's -1, unlimited, is not offered);
    `max_concurrency` >= 1 calls of it may run at once (in threads of its worker)."""

    actor_id: str
    class_name: str = "Actor"
    name: str | None = None
    max_restarts: int = 0
    max_task_retries: int = 0
    max_concurrency: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.actor_id, str) or not 0 < len(self.actor_id) <= 256:
            raise ValueError(f"actor_id must be a non-empty string, got {self.actor_id!r}")
        if self.name is not None and (not isinstance(self.name, str) or not 0 < len(self.name) <= 256):
            raise ValueError(f"an actor's name must be a non-empty string of at most 256 characters, got {self.name!r}")
        for opt in ("max_restarts", "max_task_retries"):
            value = getattr(self, opt)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1_000_000:
                raise ValueError(f"{opt} must be an int in 0..1000000, got {value!r}")
        if isinstance(self.max_concurrency, bool) or not isinstance(self.max_concurrency, int) \
                or not 1 <= self.max_concurrency <= 1024:
            raise ValueError(f"max_concurrency must be an int in 1..1024, got {self.max_concurrency!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form."""
        return {"id": self.actor_id, "class": self.class_name, "name": self.name, "max_restarts": self.max_restarts,
                "max_task_retries": self.max_task_retries, "max_concurrency": self.max_concurrency}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActorOptions:
        """Inverse of `to_dict`."""
        return cls(actor_id=data["id"], class_name=data.get("class", "Actor"), name=data.get("name"),
                   max_restarts=data.get("max_restarts", 0), max_task_retries=data.get("max_task_retries", 0),
                   max_concurrency=data.get("max_concurrency", 1))


@dataclass(frozen=True, slots=True)
class TaskFlags:
    """The per-task flags a client submits (what the scheduler sees of a task, minus its id)."""

    targets: tuple[int, ...] | None = None
    after: Dependency | None = None
    follow: Dependency | None = None
    retries: int = 0
    timeout_s: float | None = None
    label: str | None = None
    time_limit_s: float | None = None
    size_hint: float | None = None        # the submitter's estimate of its length, for schemes (None = unknown)
    direct: bool = False            # a DirectView task: one target, no after/follow (core: TaskSpec.direct)
    actor: ActorOptions | None = None     # this task creates that actor (view.actor)
    actor_id: str | None = None           # this task is a method call of that actor (ActorHandle)

    def __post_init__(self) -> None:
        if self.actor is not None and self.actor_id is not None:
            raise ValueError("a task either creates an actor or calls one, not both")
        if self.targets is not None:
            object.__setattr__(self, "targets", tuple(self.targets))
        check_retries(self.retries)
        check_timeout_s(self.timeout_s)
        object.__setattr__(self, "time_limit_s", check_time_limit_s(self.time_limit_s))
        if self.size_hint is not None:
            object.__setattr__(self, "size_hint", check_size_hint(self.size_hint))
        if self.direct is not False:
            problem = direct_problem(self.direct, self.targets, self.after, self.follow)
            if problem:
                raise ValueError(f"direct {problem}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form (also what the task database stores)."""
        return {"targets": list(self.targets) if self.targets is not None else None,
                "after": self.after.as_dict() if self.after else None,
                "follow": self.follow.as_dict() if self.follow else None,
                "retries": self.retries, "timeout": self.timeout_s, "label": self.label,
                **({"time_limit": self.time_limit_s} if self.time_limit_s is not None else {}),
                **({"actor": self.actor.to_dict()} if self.actor is not None else {}),
                **({"actor_id": self.actor_id} if self.actor_id is not None else {}),
                **({"size_hint": self.size_hint} if self.size_hint is not None else {}),
                **({"direct": True} if self.direct else {})}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskFlags:
        """Inverse of `to_dict`."""
        return cls(targets=tuple(data["targets"]) if data.get("targets") is not None else None,
                   after=Dependency.from_dict(data["after"]) if data.get("after") else None,
                   follow=Dependency.from_dict(data["follow"]) if data.get("follow") else None,
                   retries=data.get("retries", 0), timeout_s=data.get("timeout"), label=data.get("label"),
                   time_limit_s=data.get("time_limit"), size_hint=data.get("size_hint"),
                   direct=data.get("direct", False),
                   actor=ActorOptions.from_dict(data["actor"]) if data.get("actor") else None,
                   actor_id=data.get("actor_id"))


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


@dataclass(frozen=True, slots=True)
class Refused:
    """Server -> peer, then close: the handshake is refused. `retry`: overloaded, try again (not a key problem)."""
    TYPE: ClassVar[str] = "refused"
    reason: str
    retry: bool


# ------------------------------------------------------------------------------------ engines

@dataclass(frozen=True, slots=True)
class Register:
    """Engine -> controller: join the cluster, advertising a `speed` factor (> 0) and `labels` (for schemes)."""
    TYPE: ClassVar[str] = "register"
    uuid: str
    pid: int
    hostname: str
    speed: float = 1.0
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.speed, bool) or not isinstance(self.speed, (int, float)) or not 0 < self.speed < 1e300:
            raise ValueError(f"speed must be a finite number > 0, got {self.speed!r}")
        if isinstance(self.labels, str) or not isinstance(self.labels, (list, tuple)) or len(self.labels) > 64 \
                or not all(isinstance(x, str) and 0 < len(x) <= 200 for x in self.labels):
            raise ValueError(f"labels must be a list of at most 64 non-empty strings, got {self.labels!r}")
        object.__setattr__(self, "labels", tuple(self.labels))


@dataclass(frozen=True, slots=True)
class Registered:
    """Controller -> engine: the engine's id, how often to send heartbeats, and after how long silence is death."""
    TYPE: ClassVar[str] = "registered"
    engine_id: int
    hb_period_s: float
    liveness_s: float = 5.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Engine -> controller: still alive (sent from its own thread, also while a task runs)."""
    TYPE: ClassVar[str] = "hb"


@dataclass(frozen=True, slots=True)
class AttachWorker:
    """Worker -> controller, first on the worker's own engine-key connection: tasks for the engine registered
    with this `uuid` may come here straight (its nanny keeps the heartbeat and the control; worker.py)."""
    TYPE: ClassVar[str] = "attach"
    uuid: str


@dataclass(frozen=True, slots=True)
class PullOffer:
    """Controller -> worker, on its direct link over the Unix socket: take staged tasks yourself (pulling.py). Fetch
    the staging socket and the pull table from the Unix socket at `path` with `token`; your entry is `index`."""
    TYPE: ClassVar[str] = "pulloffer"
    path: str
    token: str
    index: int


@dataclass(frozen=True, slots=True)
class Took:
    """Worker -> controller, on its direct link, just before the answer it came with: it took this staged attempt
    and runs it next (pulling.py)."""
    TYPE: ClassVar[str] = "took"
    task_id: str
    attempt: int
    seq: int                              # its stage number (pull_table.py)


@dataclass(frozen=True, slots=True)
class RunTask:
    """Controller -> engine: run attempt `attempt` of a task (`payload` is the client's pickled call).

    `time_limit_s`: seconds it may run before the engine stops it (None = no limit)."""
    TYPE: ClassVar[str] = "run"
    BUFFERS: ClassVar[tuple[str, ...]] = ("payload",)
    task_id: str
    attempt: int
    payload: bytes
    time_limit_s: float | None = None
    actor_id: str | None = None           # an actor's task: `actor_role` "create"/"recreate" (payload: class,
    actor_role: str | None = None         # args) or "call" (payload: method name, args) on instance `incarnation`
    incarnation: int | None = None
    max_concurrency: int | None = None    # calls of that actor that may run at once (threads of the worker)


@dataclass(frozen=True, slots=True)
class CancelTask:
    """Controller -> engine: stop this attempt, queued or running (answer status 'aborted')."""
    TYPE: ClassVar[str] = "cancel"
    task_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class TaskDone:
    """Engine -> controller: an attempt ended. `status`: ok | error | unmet | aborted | time_limit (its engine
    stopped it) | died (the worker process died or was killed; `evalue` says how) | fn_unknown (the worker lacks
    the function the payload names by digest: the controller resends it, fncache.py); `result` pickled when ok;
    the task's captured output; `error_full`: the whole error text when evalue/traceback were cut (kept in
    the task database, never sent to clients)."""
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
    stdout: str = ""
    stderr: str = ""
    error_full: str | None = None


@dataclass(frozen=True, slots=True)
class StopEngine:
    """Controller -> engine: exit now (a running task is stopped; the controller retries or fails it)."""
    TYPE: ClassVar[str] = "stop"


@dataclass(frozen=True, slots=True)
class SignalEngine:
    """Controller -> engine: send signal `signum` to the task running there (to its worker process)."""
    TYPE: ClassVar[str] = "signal"
    signum: int

    def __post_init__(self) -> None:
        if isinstance(self.signum, bool) or not isinstance(self.signum, int) or not 0 < self.signum < 65:
            raise ValueError(f"signum must be a signal number, got {self.signum!r}")


@dataclass(frozen=True, slots=True)
class WorkerReplaced:
    """Engine -> controller: its worker process was replaced (it died or was stopped), with every actor in it."""
    TYPE: ClassVar[str] = "wreplaced"
    reason: str


@dataclass(frozen=True, slots=True)
class DeleteActor:
    """Controller -> engine (-> its worker): forget this actor's instance (`incarnation` None: every one)."""
    TYPE: ClassVar[str] = "delactor"
    actor_id: str
    incarnation: int | None = None


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
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True, slots=True)
class Request:
    """Client -> controller: a query or command `op` with JSON-able `args`; answered by a Reply with the same `rid`."""
    TYPE: ClassVar[str] = "req"
    BUFFERS: ClassVar[tuple[str, ...]] = ("args_json",)
    rid: int
    op: str
    args: dict
    args_json: bytes | None = None        # JSON of `args` when too large for a frame header (then `args` is {})


@dataclass(frozen=True, slots=True)
class Reply:
    """Controller -> client: the answer to Request `rid` (`value` if ok, else `error` = [ename, evalue])."""
    TYPE: ClassVar[str] = "rep"
    BUFFERS: ClassVar[tuple[str, ...]] = ("value_json",)
    rid: int
    ok: bool
    value: Any = None
    error: list | None = None
    value_json: bytes | None = None        # JSON of `value` when too large for a frame header (then `value` is None)


@dataclass(frozen=True, slots=True)
class EnginesChanged:
    """Controller -> client: the ids of the engines now registered."""
    TYPE: ClassVar[str] = "engines"
    ids: tuple[int, ...]


_NO_FLAGS = NO_FLAGS = TaskFlags()     # the default flags: decoded Submits share this one object
_EMPTY_OK = frozenset({"stdout", "stderr"})     # left out of a header when empty
TEXT_IN_HEADER_MAX = 8000      # characters of text fields beyond which long texts move to a JSON buffer
_BINARY = (RunTask, TaskDone, Submit, TaskResult, Took)
MESSAGE_TYPES: tuple[type, ...] = (Hello, Auth, Welcome, Refused, Register, Registered, Heartbeat, RunTask, CancelTask,
                                   TaskDone, StopEngine, Submit, TaskResult, Request, Reply, EnginesChanged,
                                   SignalEngine, AttachWorker, WorkerReplaced, DeleteActor, PullOffer, Took)
_BY_TYPE: dict[str, type] = {cls.TYPE: cls for cls in MESSAGE_TYPES}
# per class: (header field names, buffer field names, required header names)
_LAYOUT: dict[type, tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]] = {}
for _cls in MESSAGE_TYPES:
    _bufs = getattr(_cls, "BUFFERS", ())
    _fs = fields(_cls)
    _LAYOUT[_cls] = (tuple(f.name for f in _fs if f.name not in _bufs), _bufs,
                     frozenset(f.name for f in _fs if f.name not in _bufs
                               and f.default is MISSING and f.default_factory is MISSING))


# ------------------------------------------------------------------------- binary headers
_RUN, _DONE, _SUBMIT, _RESULT = 1, 2, 3, 4
_RUN_S = struct.Struct("!BBI")             # NUL, code, attempt
_DONE_S = struct.Struct("!BBIdd")          # NUL, code, attempt, started_at, completed_at
_SUBMIT_S = struct.Struct("!BBd")          # NUL, code, submitted_at
_RUN_ACTOR, _CALL = 5, 6                    # an actor's RunTask; the Submit of an actor call (bench_actors.py)
_RUN_ACTOR_S = struct.Struct("!BBIIHBH")    # NUL, code, attempt, incarnation, max_concurrency, role, len(task id)
_CALL_S = struct.Struct("!BBdH")            # NUL, code, submitted_at, len(task id); then task id, actor id
_ROLES = ("create", "recreate", "call")
_TOOK = 7
_TOOK_S = struct.Struct("!BBIq")           # NUL, code, attempt, seq (a worker's take, with almost every answer)
_RESULT_S = struct.Struct("!BBidddd")      # NUL, code, engine_id, submitted/started/completed/received_at
_RESULT_IDLE = 8                            # the same, sent with no other task in flight (client_link.py: its poll)
RESULT_HEADS = (bytes((0, _RESULT)), bytes((0, _RESULT_IDLE)))     # a result frame's header starts so: busy, idle


def _to_binary(msg: Any) -> bytes | None:
    """The binary header of a message in its common shape, or None (then it goes as JSON)."""
    cls = type(msg)
    if cls is RunTask:
        if type(msg.attempt) is int and 0 <= msg.attempt <= 0xFFFFFFFF and msg.time_limit_s is None \
                and msg.actor_id is None and msg.actor_role is None and msg.incarnation is None \
                and msg.max_concurrency is None:
            return _RUN_S.pack(0, _RUN, msg.attempt) + msg.task_id.encode()
        if (type(msg.attempt) is int and 0 <= msg.attempt <= 0xFFFFFFFF and msg.time_limit_s is None
                and msg.actor_role in _ROLES and type(msg.actor_id) is str and type(msg.incarnation) is int
                and 0 <= msg.incarnation <= 0xFFFFFFFF and type(msg.max_concurrency) is int
                and 0 < msg.max_concurrency <= 1024):
            tid = msg.task_id.encode()
            if len(tid) <= 0xFFFF:
                return _RUN_ACTOR_S.pack(0, _RUN_ACTOR, msg.attempt, msg.incarnation, msg.max_concurrency,
                                         _ROLES.index(msg.actor_role), len(tid)) + tid + msg.actor_id.encode()
    elif cls is TaskDone:
        if (msg.status == "ok" and msg.ename is None and msg.evalue is None and msg.traceback is None
                and msg.started_at is not None and type(msg.attempt) is int and 0 <= msg.attempt <= 0xFFFFFFFF
                and not msg.stdout and not msg.stderr and msg.error_full is None):
            return _DONE_S.pack(0, _DONE, msg.attempt, msg.started_at, msg.completed_at) + msg.task_id.encode()
    elif cls is Took:
        if type(msg.attempt) is int and 0 <= msg.attempt <= 0xFFFFFFFF and type(msg.seq) is int \
                and 0 < msg.seq < 2 ** 63:
            return _TOOK_S.pack(0, _TOOK, msg.attempt, msg.seq) + msg.task_id.encode()
    elif cls is Submit:
        if msg.flags == _NO_FLAGS:
            return _SUBMIT_S.pack(0, _SUBMIT, msg.submitted_at) + msg.task_id.encode()
        flags = msg.flags
        if type(flags.actor_id) is str and flags == TaskFlags(actor_id=flags.actor_id):
            tid = msg.task_id.encode()
            if len(tid) <= 0xFFFF:
                return _CALL_S.pack(0, _CALL, msg.submitted_at, len(tid)) + tid + flags.actor_id.encode()
    elif cls is TaskResult:
        if (msg.status == "ok" and msg.ename is None and msg.evalue is None and msg.traceback is None
                and msg.engine_info is None and msg.label is None and not msg.stdout and not msg.stderr
                and type(msg.engine_id) is int
                and -0x80000000 <= msg.engine_id <= 0x7FFFFFFF and msg.submitted_at is not None
                and msg.started_at is not None and msg.completed_at is not None and msg.received_at is not None
                and not msg.stdout and not msg.stderr):
            return _RESULT_S.pack(0, _RESULT, msg.engine_id, msg.submitted_at, msg.started_at, msg.completed_at,
                                  msg.received_at) + msg.task_id.encode()
    return None


# The four frames of a usual task, encoded straight from their values: the same bytes as
# `encode_frame(*to_wire(msg))` of the RunTask / Submit / TaskDone / TaskResult in the binary shape, without
# building the message (a frozen dataclass of 4-15 fields) and taking it apart again (bench_cpu_split.py,
# bench_instructions.py: each process's instructions per task). Each packs prefix, header length, one buffer, its
# length and the binary header in one struct; they are written out one by one on purpose: one shared builder
# (a closure taking the header's fields as *args) cost 1-2 % of each process's instructions per round trip.
_RUN_FRAME, _SUBMIT_FRAME, _DONE_FRAME, _RESULT_FRAME = (struct.Struct("!IHBI" + head.format[1:])
                                                         for head in (_RUN_S, _SUBMIT_S, _DONE_S, _RESULT_S))


def run_frame(task_id: str, attempt: int, payload: bytes) -> bytes:
    """The frame of `RunTask(task_id, attempt, payload)` (no time limit, not an actor's task)."""
    if type(attempt) is not int or not 0 <= attempt <= 0xFFFFFFFF:
        raise ValueError(f"attempt must be an int in 0..2**32-1, got {attempt!r}")
    tid = task_id.encode()
    head_len = _RUN_S.size + len(tid)
    return b"".join((_RUN_FRAME.pack(7 + head_len + len(payload), head_len, 1, len(payload), 0, _RUN, attempt),
                     tid, payload))


_TOOK_FRAME = struct.Struct("!IHB" + _TOOK_S.format[1:])


def took_frame(task_id: str, attempt: int, seq: int) -> bytes:
    """The frame of `Took(task_id, attempt, seq)`: a pulling worker's report of a take, ahead of nearly every
    answer in a burst (binary: its JSON header cost the worker ~4 µs and the controller ~5 µs a task)."""
    tid = task_id.encode()
    head_len = _TOOK_S.size + len(tid)
    return _TOOK_FRAME.pack(3 + head_len, head_len, 0, 0, _TOOK, attempt, seq) + tid


def submit_frame(task_id: str, submitted_at: float, payload: bytes) -> bytes:
    """The frame of `Submit(task_id, NO_FLAGS, submitted_at, payload)` (a client's usual task)."""
    tid = task_id.encode()
    head_len = _SUBMIT_S.size + len(tid)
    return b"".join((_SUBMIT_FRAME.pack(7 + head_len + len(payload), head_len, 1, len(payload), 0, _SUBMIT,
                                        submitted_at), tid, payload))


def done_ok_frame(task_id: str, attempt: int, started_at: float, completed_at: float, result: bytes) -> bytes:
    """The frame of a TaskDone `ok` with no output or error and `result` as its one buffer: a worker's answer to a
    task that printed nothing (bench_worker.py)."""
    tid = task_id.encode()
    head_len = _DONE_S.size + len(tid)
    return b"".join((_DONE_FRAME.pack(7 + head_len + len(result), head_len, 1, len(result), 0, _DONE, attempt,
                                      started_at, completed_at), tid, result))


def result_ok_frame(task_id: str, engine_id: int, submitted_at: float, started_at: float, completed_at: float,
                    received_at: float, result: bytes, idle: bool = False) -> bytes:
    """The frame of a successful `TaskResult` with no label, no output and a result (the usual answer). `idle`: the
    controller has no other task in flight (its own code: the client decodes the same TaskResult)."""
    if type(engine_id) is not int or not -0x80000000 <= engine_id <= 0x7FFFFFFF:
        raise ValueError(f"engine_id must be a 32-bit int, got {engine_id!r}")
    tid = task_id.encode()
    head_len = _RESULT_S.size + len(tid)
    return b"".join((_RESULT_FRAME.pack(7 + head_len + len(result), head_len, 1, len(result), 0,
                                        _RESULT_IDLE if idle else _RESULT, engine_id, submitted_at, started_at,
                                        completed_at, received_at), tid, result))


def result_ok(task_id: str, engine_id: int, submitted_at: float, started_at: float, completed_at: float,
              received_at: float, result: bytes) -> TaskResult:
    """The TaskResult whose frame `result_ok_frame` with the same arguments encodes."""
    return TaskResult(task_id=task_id, status="ok", engine_id=engine_id, submitted_at=submitted_at,
                      started_at=started_at, completed_at=completed_at, received_at=received_at, result=result)


def _positional_maker(cls: type) -> Any:
    """`make(*values)`: an instance of the frozen message class `cls` from every field's value, in field order.

    It sets the slots through their descriptors instead of running the generated `__init__`, whose
    `object.__setattr__` per field of a frozen class costs ~2.5x as much (bench_cpu_split.py: a TaskDone
    is ~2 µs cheaper to decode, a TaskResult ~3 µs). The same object: `make(*v) == cls(**dict(zip(names, v)))`.
    Only for classes without `__post_init__` (nothing to check beyond what the decoder checked).
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} checks its fields in __post_init__: construct it normally")
    names = [f.name for f in fields(cls)]
    src = (f"def make({', '.join(names)}):\n    m = new(cls)\n"
           + "".join(f"    s{i}(m, {name})\n" for i, name in enumerate(names)) + "    return m\n")
    namespace: dict[str, Any] = {"new": object.__new__, "cls": cls}
    namespace.update((f"s{i}", cls.__dict__[name].__set__) for i, name in enumerate(names))
    exec(src, namespace)        # noqa: S102 - the source is built from the class's own field names
    return namespace["make"]


_MAKE_RUN, _MAKE_DONE, _MAKE_SUBMIT, _MAKE_RESULT, _MAKE_TOOK = (_positional_maker(c) for c in (
    RunTask, TaskDone, Submit, TaskResult, Took))


def _from_binary(header: bytes, buffers: list[bytes]) -> Any:
    """Inverse of `_to_binary`; ProtocolError for anything else (InvalidField for a bad id or time)."""
    try:
        code = header[1] if header[0] == 0 else -1
        if code == _RUN and len(buffers) == 1:
            _, _, attempt = _RUN_S.unpack_from(header)
            tid = header[_RUN_S.size:].decode()
            if not 0 < len(tid) <= MAX_ID_CHARS:
                check_binary("run", tid, ())
            return _MAKE_RUN(tid, attempt, buffers[0], None, None, None, None, None)
        if code == _DONE and len(buffers) <= 1:
            _, _, attempt, started, completed = _DONE_S.unpack_from(header)
            tid = header[_DONE_S.size:].decode()
            if not (0 < len(tid) <= MAX_ID_CHARS and 0.0 <= started <= MAX_TIME and 0.0 <= completed <= MAX_TIME):
                check_binary("done", tid, (("started_at", started), ("completed_at", completed)))
            return _MAKE_DONE(tid, attempt, "ok", started, completed, None, None, None,
                              buffers[0] if buffers else None, "", "", None)
        if code == _SUBMIT and len(buffers) == 1:
            _, _, submitted = _SUBMIT_S.unpack_from(header)
            tid = header[_SUBMIT_S.size:].decode()
            if not (0 < len(tid) <= MAX_ID_CHARS and 0.0 <= submitted <= MAX_TIME):
                check_binary("submit", tid, (("submitted_at", submitted),))
            return _MAKE_SUBMIT(tid, _NO_FLAGS, submitted, buffers[0])
        if (code == _RESULT or code == _RESULT_IDLE) and len(buffers) <= 1:
            _, _, eid, submitted, started, completed, received = _RESULT_S.unpack_from(header)
            tid = header[_RESULT_S.size:].decode()
            if not (0 < len(tid) <= MAX_ID_CHARS and 0.0 <= submitted <= MAX_TIME and 0.0 <= started <= MAX_TIME
                    and 0.0 <= completed <= MAX_TIME and 0.0 <= received <= MAX_TIME):
                check_binary("result", tid, (("submitted_at", submitted), ("started_at", started),
                                             ("completed_at", completed), ("received_at", received)))
            return _MAKE_RESULT(tid, "ok", eid, submitted, started, completed, received, None, None, None, None,
                                None, buffers[0] if buffers else None, "", "")
        if code == _TOOK and not buffers:
            _, _, attempt, seq = _TOOK_S.unpack_from(header)
            tid = header[_TOOK_S.size:].decode()
            if not 0 < len(tid) <= MAX_ID_CHARS:
                check_binary("took", tid, ())
            if seq < 1:
                raise InvalidField("took", "seq", f"must be in 1..{2 ** 63 - 1}, got {seq}", tid)
            return _MAKE_TOOK(tid, attempt, seq)
        if code == _RUN_ACTOR and len(buffers) == 1:
            _, _, attempt, incarnation, max_conc, role, n = _RUN_ACTOR_S.unpack_from(header)
            tid = header[_RUN_ACTOR_S.size:_RUN_ACTOR_S.size + n].decode()
            aid = header[_RUN_ACTOR_S.size + n:].decode()
            if not 0 < len(tid) <= MAX_ID_CHARS:
                check_binary("run", tid, ())
            if role >= len(_ROLES):
                raise InvalidField("run", "actor_role", f"must be one of {list(_ROLES)}, got code {role}", tid)
            if not 0 < max_conc <= 1024:
                raise InvalidField("run", "max_concurrency", f"must be in 1..1024, got {max_conc}", tid)
            if not 0 < len(aid) <= MAX_ID_CHARS:
                raise InvalidField("run", "actor_id", f"must be 1..{MAX_ID_CHARS} characters, got {len(aid)}", tid)
            return RunTask(task_id=tid, attempt=attempt, payload=buffers[0], actor_id=aid, actor_role=_ROLES[role],
                           incarnation=incarnation, max_concurrency=max_conc)
        if code == _CALL and len(buffers) == 1:
            _, _, submitted, n = _CALL_S.unpack_from(header)
            tid = header[_CALL_S.size:_CALL_S.size + n].decode()
            aid = header[_CALL_S.size + n:].decode()
            if not (0 < len(tid) <= MAX_ID_CHARS and 0.0 <= submitted <= MAX_TIME):
                check_binary("submit", tid, (("submitted_at", submitted),))
            if not 0 < len(aid) <= MAX_ID_CHARS:
                raise InvalidField("submit", "flags.actor_id", f"must be 1..{MAX_ID_CHARS} characters", tid)
            return Submit(task_id=tid, flags=TaskFlags(actor_id=aid), submitted_at=submitted, payload=buffers[0])
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise ProtocolError(f"malformed binary header: {exc}") from None
    raise ProtocolError(f"binary header of unknown type {header[1:2]!r} or with {len(buffers)} buffers")


def to_wire(msg: Any) -> tuple[dict[str, Any] | bytes, list[bytes]]:
    """A message as a frame header and its buffers (a None buffer field is sent as no buffer)."""
    cls = type(msg)
    if cls in _BINARY:
        head = _to_binary(msg)
        if head is not None:
            buffers = [getattr(msg, b) for b in _LAYOUT[cls][1] if getattr(msg, b) is not None]
            return head, buffers
    names, bufs, required = _LAYOUT[cls]
    header: dict[str, Any] = {"t": cls.TYPE}
    for name in names:
        value = getattr(msg, name)
        if value is None and name not in required or (value == "" and name in _EMPTY_OK):
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
    if sum(len(v) for v in header.values() if type(v) is str) > TEXT_IN_HEADER_MAX:
        extra = {k: v for k, v in header.items() if type(v) is str and len(v) > 256 and k != "t"}
        for k in extra:
            del header[k]
        header["xh"] = 1
        buffers.append(json.dumps(extra, separators=(",", ":")).encode())
    return header, buffers


def from_wire(header: dict[str, Any] | bytes, buffers: list[bytes]) -> Any:
    """The message a frame carries. Raises ProtocolError if it is not a well-formed message."""
    if type(header) is bytes:
        return _from_binary(header, buffers)
    cls = _BY_TYPE.get(header.get("t"))  # type: ignore[arg-type]
    if cls is None:
        raise ProtocolError(f"unknown message type {header.get('t')!r}")
    names, bufs, required = _LAYOUT[cls]
    kwargs: dict[str, Any] = {}
    if header.get("xh") == 1 and buffers:            # long texts travel in a last JSON buffer
        header = dict(header)
        buffers = list(buffers)
        try:
            extra = json.loads(buffers.pop())
        except (UnicodeDecodeError, ValueError) as exc:
            raise ProtocolError(f"{cls.TYPE!r} message: its text buffer is not JSON: {exc}") from None
        if not isinstance(extra, dict) or any(not isinstance(v, str) or k in header for k, v in extra.items()):
            raise ProtocolError(f"{cls.TYPE!r} message: its text buffer must hold new string fields only")
        header.update(extra)
    for key, value in header.items():
        if key in ("t", "nb", "xh"):
            continue
        if key not in names:
            raise ProtocolError(f"unexpected field {key!r} in a {cls.TYPE!r} message")
        kwargs[key] = value
    missing = required - kwargs.keys() - ({"flags"} if cls is Submit else set())
    if missing:
        raise ProtocolError(f"{cls.TYPE!r} message lacks {sorted(missing)}")
    check_fields(cls.TYPE, kwargs)
    if cls is Submit and "flags" not in kwargs:
        kwargs["flags"] = _NO_FLAGS
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
