"""Task metadata as the client sees it: ipyparallel's `Metadata` dict, with `datetime` timestamps.

Every task the client knows has one `Metadata` in `client.metadata`, created at submission (or when
the task is first looked up) and updated in place as its result arrives, so AsyncResults that hold
it see the update. The keys are fixed (ipyparallel's, plus our `label`); a key outside them raises
KeyError, and each key is also an attribute (`md.engine_id`). Timestamps are timezone-aware UTC
`datetime`s (`submitted` on the client, `started`/`completed` on the engine, `received` when the
controller had the result), so `(md["completed"] - md["started"]).total_seconds()` works.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

__all__ = ["Metadata", "METADATA_KEYS", "DATE_KEYS", "UTC", "to_datetime", "to_timestamp"]

_DEFAULTS: dict[str, Any] = {
    "msg_id": None, "submitted": None, "started": None, "completed": None, "received": None,
    "engine_uuid": None, "engine_id": None, "follow": None, "after": None, "status": None,
    "execute_input": None, "execute_result": None, "error": None, "stdout": "", "stderr": "",
    "outputs": None, "data": None, "label": None,
}
METADATA_KEYS = frozenset(_DEFAULTS)
DATE_KEYS = ("submitted", "started", "completed", "received")


_from_ts = datetime.fromtimestamp
UTC = timezone.utc


def to_datetime(ts: float | datetime | None) -> datetime | None:
    """Seconds since the epoch as an aware UTC datetime (None and datetimes pass through)."""
    if ts is None or isinstance(ts, datetime):
        return ts
    return _from_ts(ts, UTC)


def to_timestamp(value: Any) -> Any:
    """A datetime as seconds since the epoch (naive ones are taken as local time); anything else unchanged."""
    return value.timestamp() if isinstance(value, datetime) else value


class Metadata(dict):
    """One task's metadata: a dict with ipyparallel's keys (each also an attribute); unknown keys raise KeyError."""

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any):
        dict.__init__(self, _DEFAULTS, outputs=[], data={})
        if args or kwargs:
            self.update(*args, **kwargs)

    @classmethod
    def of(cls, **fields: Any) -> Metadata:
        """A Metadata with these (known) fields set, built in one step (the client's hot path: no key check)."""
        md = dict.__new__(cls)
        dict.__init__(md, _DEFAULTS, outputs=[], data={}, **fields)
        return md

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in METADATA_KEYS:
            raise KeyError(f"{key!r} is not a metadata key (known: {sorted(METADATA_KEYS)})")
        dict.__setitem__(self, key, value)

    def update(self, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        """Like dict.update, with the same key check as item assignment."""
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __getattr__(self, key: str) -> Any:
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key: str, value: Any) -> None:
        if key not in METADATA_KEYS:
            raise AttributeError(key)
        self[key] = value
