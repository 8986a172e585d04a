"""The rules every header field of every message must meet: type, range and size (messages.from_wire applies them).

How this works. `FIELD_RULES[wire name][field]` is a check that raises `_Bad(problem)` for a value
it refuses; `check_fields` runs them over a decoded header and raises `InvalidField` naming the
message type and the field (nested ones dotted: `flags.targets`, `args.ids`). A message whose own id
(`task_id`, `rid`) passed its check carries it in the error, so the receiver can answer that task or
request instead of closing the connection. `check_request_args` does the same for the arguments of
each request `op`. Strings must be encodable as UTF-8 (a lone surrogate decoded from JSON could not
be forwarded); numbers must be finite; bools are not ints.
"""

from __future__ import annotations

import math
from typing import Any, Callable

from .error import InvalidField

MAX_ID_CHARS = 256              # task ids (ours are 20-40)
MAX_NAME_CHARS = 256            # ops, exception names, roles, uuids, hostnames
MAX_LABEL_CHARS = 1024          # keeps a result header within a frame: label + the engine's text fields
MAX_TEXT_CHARS = 256 * 2**20    # evalue, traceback, output (long texts travel in a buffer: the frame bounds them)
MAX_TARGETS = 4096
MAX_DEPENDENCIES = 100_000
MAX_TIME = 1e12                 # seconds since the epoch (year 33658): finite, non-negative


class _Bad(Exception):
    def __init__(self, problem: str, sub: str = ""):
        super().__init__(problem)
        self.problem = problem
        self.sub = sub


Check = Callable[[Any], None]


def _text(value: Any, lo: int, hi: int) -> None:
    if not isinstance(value, str):
        raise _Bad(f"must be a string, got {type(value).__name__}")
    if not lo <= len(value) <= hi:
        raise _Bad(f"must be {lo}..{hi} characters, got {len(value)}")
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise _Bad("is not valid UTF-8 text") from None


def string(lo: int = 0, hi: int = MAX_NAME_CHARS, *, optional: bool = False, choices: tuple[str, ...] = ()) -> Check:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        _text(value, lo, hi)
        if choices and value not in choices:
            raise _Bad(f"must be one of {list(choices)}, got {value!r}")
    return check


def integer(lo: int, hi: int, *, optional: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        if type(value) is not int:
            raise _Bad(f"must be an integer, got {type(value).__name__}")
        if not lo <= value <= hi:
            raise _Bad(f"must be in {lo}..{hi}, got {value}")
    return check


def number(lo: float, hi: float, *, optional: bool = False, above: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        if type(value) not in (int, float):
            raise _Bad(f"must be a number, got {type(value).__name__}")
        if not math.isfinite(value) or not lo <= value <= hi or (above and value == lo):
            raise _Bad(f"must be a finite number in {'(' if above else '['}{lo}, {hi}], got {value!r}")
    return check


def boolean(value: Any) -> None:
    if type(value) is not bool:
        raise _Bad(f"must be true or false, got {type(value).__name__}")


def mapping(*, optional: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, dict):
            raise _Bad(f"must be an object, got {type(value).__name__}")
        anything(value)
    return check


def anything(value: Any) -> None:
    """Any decoded JSON (a reply's value) whose strings can be encoded again; its size the frame decoder bounded."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode()
            except UnicodeEncodeError:
                raise _Bad("holds text that is not valid UTF-8") from None
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)


def list_of(item: Check, hi: int, *, optional: bool = False) -> Check:
    def check(value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, list):
            raise _Bad(f"must be a list, got {type(value).__name__}")
        if len(value) > hi:
            raise _Bad(f"must have at most {hi} items, got {len(value)}")
        for i, v in enumerate(value):
            try:
                item(v)
            except _Bad as exc:
                raise _Bad(f"item {i} {exc.problem}", exc.sub) from None
    return check


def record(rules: dict[str, Check], *, optional: bool = False, required: tuple[str, ...] = ()) -> Check:
    """A JSON object with only the keys in `rules`, each meeting its rule; errors name `outer.key`."""
    def check(value: Any) -> None:
        if value is None and optional:
            return
        if not isinstance(value, dict):
            raise _Bad(f"must be an object, got {type(value).__name__}")
        for key in required:
            if key not in value:
                raise _Bad("is missing", key)
        for key, v in value.items():
            rule = rules.get(key)
            if rule is None:
                raise _Bad("is not a known field", str(key))
            try:
                rule(v)
            except _Bad as exc:
                raise _Bad(exc.problem, f"{key}.{exc.sub}" if exc.sub else key) from None
    return check


TASK_ID = string(1, MAX_ID_CHARS)
ATTEMPT = integer(0, 0xFFFFFFFF)
ENGINE_ID = integer(0, 0x7FFFFFFF)
TIME = number(0.0, MAX_TIME)
OPT_TIME = number(0.0, MAX_TIME, optional=True)
OPT_NAME = string(0, MAX_NAME_CHARS, optional=True)
OPT_TEXT = string(0, MAX_TEXT_CHARS, optional=True)
TEXT = string(0, MAX_TEXT_CHARS)       # captured output: "" when none (None would not survive a round trip)
TASK_IDS = list_of(TASK_ID, MAX_DEPENDENCIES)


def _dependency(value: Any) -> None:
    record({"dependencies": TASK_IDS, "all": boolean, "success": boolean, "failure": boolean},
           optional=True, required=("dependencies",))(value)
    if value is not None and value.get("success") is False and not value.get("failure", False):
        raise _Bad("must count success, failure, or both")


_FLAG_FIELDS = record({"targets": list_of(ENGINE_ID, MAX_TARGETS, optional=True), "after": _dependency,
                       "follow": _dependency, "retries": integer(0, 1_000_000),
                       "timeout": number(0.0, 1e9, optional=True), "label": string(0, MAX_LABEL_CHARS, optional=True),
                       "time_limit": number(0.0, 1e9, optional=True),
                       "size_hint": number(0.0, 1e300, optional=True), "direct": boolean,
                       "actor": record({"id": TASK_ID, "class": string(0, MAX_NAME_CHARS),
                                        "name": string(1, MAX_NAME_CHARS, optional=True),
                                        "max_restarts": integer(0, 1_000_000),
                                        "max_task_retries": integer(0, 1_000_000),
                                        "max_concurrency": integer(1, 1024)}, optional=True, required=("id",)),
                       "actor_id": string(1, MAX_ID_CHARS, optional=True)})


def direct_problem(direct: Any, targets: Any, after: Any, follow: Any) -> str | None:
    """What is wrong with a task's `direct` flag given its other flags (None: nothing)."""
    if type(direct) is not bool:
        return f"must be true or false, got {type(direct).__name__}"
    if direct and (targets is None or len(targets) != 1):
        return f"needs exactly one engine in targets, got {targets!r}"
    if direct and (after or follow):
        return "takes no after/follow dependencies (a direct task goes to its engine at once)"
    return None


def FLAGS(value: Any) -> None:          # noqa: N802 - a rule, named like the others
    _FLAG_FIELDS(value)
    if isinstance(value, dict) and "direct" in value:
        problem = direct_problem(value["direct"], value.get("targets"), value.get("after"), value.get("follow"))
        if problem:
            raise _Bad(problem, "direct")

FIELD_RULES: dict[str, dict[str, Check]] = {
    "hello": {"nonce": string(1, 64), "version": integer(0, 0xFFFF)},
    "auth": {"role": string(choices=("engine", "client")), "nonce": string(1, 64), "mac": string(1, 128)},
    "welcome": {"mac": string(1, 128)},
    "refused": {"reason": string(0, 1024), "retry": boolean},
    "register": {"uuid": string(1, MAX_NAME_CHARS), "pid": integer(0, 0xFFFFFFFF), "hostname": string(0, 255),
                 "speed": number(0.0, 1e300, above=True), "labels": list_of(string(1, 200), 64)},
    "registered": {"engine_id": ENGINE_ID, "hb_period_s": number(0.0, 3600.0, above=True),
                   "liveness_s": number(0.0, 86400.0, above=True)},
    "hb": {},
    "attach": {"uuid": string(1, MAX_NAME_CHARS)},
    "run": {"task_id": TASK_ID, "attempt": ATTEMPT, "time_limit_s": number(0.0, 1e9, optional=True),
            "actor_id": string(1, MAX_ID_CHARS, optional=True),
            "actor_role": string(choices=("create", "recreate", "call"), optional=True),
            "incarnation": integer(0, 0xFFFFFFFF, optional=True), "max_concurrency": integer(1, 1024, optional=True)},
    "wreplaced": {"reason": string(0, 4096)},
    "delactor": {"actor_id": string(1, MAX_ID_CHARS), "incarnation": integer(0, 0xFFFFFFFF, optional=True)},
    "cancel": {"task_id": TASK_ID, "attempt": ATTEMPT},
    "took": {"task_id": TASK_ID, "attempt": ATTEMPT, "seq": integer(1, 2**63 - 1)},
    "pulloffer": {"path": string(1, 4096), "token": string(1, 128), "index": integer(0, 0xFFFF)},
    "done": {"task_id": TASK_ID, "attempt": ATTEMPT,
             "status": string(choices=("ok", "error", "unmet", "aborted", "died", "time_limit", "fn_unknown")),
             "started_at": OPT_TIME, "completed_at": TIME, "ename": OPT_NAME, "evalue": OPT_TEXT,
             "traceback": OPT_TEXT, "stdout": TEXT, "stderr": TEXT, "error_full": OPT_TEXT},
    "stop": {},
    "submit": {"task_id": TASK_ID, "flags": FLAGS, "submitted_at": TIME},
    "result": {"task_id": TASK_ID, "status": string(choices=("ok", "error")),
               "engine_id": integer(0, 0x7FFFFFFF, optional=True), "submitted_at": OPT_TIME, "started_at": OPT_TIME,
               "completed_at": OPT_TIME, "received_at": OPT_TIME, "ename": OPT_NAME, "evalue": OPT_TEXT,
               "traceback": OPT_TEXT, "engine_info": mapping(optional=True),
               "label": string(0, MAX_LABEL_CHARS, optional=True), "stdout": TEXT, "stderr": TEXT},
    "req": {"rid": integer(0, 2**53), "op": string(1, 64), "args": mapping()},
    "rep": {"rid": integer(0, 2**53), "ok": boolean, "value": anything,
            "error": list_of(string(0, MAX_TEXT_CHARS), 2, optional=True)},
    "engines": {"ids": list_of(ENGINE_ID, 1_000_000)},
    "signal": {"signum": integer(1, 64)},
}

REQUEST_ARGS: dict[str, Check] = {
    "engines": record({}), "hub_history": record({}), "records": record({}), "function_stats": record({}),
    "pull_stats": record({}),
    "queue_status": record({"verbose": boolean}),
    "db_query": record({"query": mapping(), "keys": list_of(string(1, 64), 64, optional=True)}, required=("query",)),
    "get_result": record({"ids": TASK_IDS}, required=("ids",)),
    "resubmit": record({"ids": TASK_IDS}, required=("ids",)),
    "abort": record({"ids": TASK_IDS}, required=("ids",)),
    "purge": record({"ids": list_of(TASK_ID, MAX_DEPENDENCIES, optional=True)}),
    "shutdown": record({"targets": list_of(ENGINE_ID, MAX_TARGETS, optional=True), "hub": boolean}),
    "actors": record({}), "get_actor": record({"name": string(1, MAX_NAME_CHARS)}, required=("name",)),
    "kill_actor": record({"actor_id": string(1, MAX_ID_CHARS)}, required=("actor_id",)),
    "signal": record({"signum": integer(1, 64), "targets": list_of(ENGINE_ID, MAX_TARGETS, optional=True)},
                     required=("signum",)),
}


def _own_id(msg_type: str, header: dict[str, Any]) -> tuple[str | None, int | None]:
    task_id, rid = header.get("task_id"), header.get("rid")
    try:
        TASK_ID(task_id)
    except _Bad:
        task_id = None
    try:
        FIELD_RULES["req"]["rid"](rid)
    except _Bad:
        rid = None
    return task_id, rid


def check_fields(msg_type: str, values: dict[str, Any]) -> None:
    """Raise InvalidField for the first field of a `msg_type` message that breaks its rule."""
    rules = FIELD_RULES[msg_type]
    for name, value in values.items():
        try:
            rules[name](value)
        except _Bad as exc:
            task_id, rid = _own_id(msg_type, values)
            raise InvalidField(msg_type, f"{name}.{exc.sub}" if exc.sub else name, exc.problem, task_id, rid) from None


def check_binary(msg_type: str, task_id: Any, times: tuple[tuple[str, float], ...]) -> None:
    """The checks a binary header still needs (its ints are bounded by the struct): the id and the times."""
    try:
        TASK_ID(task_id)
    except _Bad as exc:
        raise InvalidField(msg_type, "task_id", exc.problem) from None
    for name, t in times:
        if not (0.0 <= t <= MAX_TIME):      # also false for NaN
            raise InvalidField(msg_type, name, f"must be a finite number in [0.0, {MAX_TIME}], got {t!r}", task_id)


def check_request_args(op: str, args: Any, rid: int | None = None) -> None:
    """Raise InvalidField (field `args.<name>`) unless `args` suit request `op` (an op not listed is not checked)."""
    rule = REQUEST_ARGS.get(op)
    if rule is None:
        return
    try:
        rule(args)
    except _Bad as exc:
        raise InvalidField("req", f"args.{exc.sub}" if exc.sub else "args", exc.problem, rid=rid) from None
