"""The Client's questions to the task database and its purges: `hub_history`, `db_query`, `result_status`,
`purge_results` / `purge_local_results` / `purge_hub_results` / `purge_everything` (ipyparallel's names).

A mixin of `Client` (it uses the client's `_request`, `_ids`, caches and lock). Records come back with
ipyparallel's types: timestamps as aware UTC datetimes, result/payload bytes as bytes, and a `header`
(`msg_id`, `msg_type`, `date`, `session`) built from the stored row. Queries may compare timestamps
with datetimes or with seconds since the epoch.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from .error import RemoteError, collect_exceptions
from .metadata import DATE_KEYS, to_datetime, to_timestamp

if TYPE_CHECKING:
    import threading

    from .asyncresult import AsyncResult
    from .metadata import Metadata

_HEADER_NEEDS = ("submitted", "client_id")


def _query_values(cond: Any) -> Any:
    """A query condition with datetimes (also inside `$in` lists and operator dicts) as epoch seconds."""
    if isinstance(cond, dict):
        return {op: _query_values(v) for op, v in cond.items()}
    if isinstance(cond, (list, tuple, set, frozenset)):
        return [to_timestamp(v) for v in cond]
    return to_timestamp(cond)


class HubQueries:
    """Task-database queries and purges, mixed into Client."""

    if TYPE_CHECKING:        # provided by Client
        _lock: threading.Lock
        _done: dict[str, tuple[bool, Any]]
        metadata: dict[str, Metadata]
        outstanding: set[str]
        history: list[str]

        def _request(self, op: str, timeout: float | None = 30.0, **args: Any) -> Any: ...
        def _ids(self, jobs: Any) -> list[str]: ...
        def _resolve_targets(self, targets: Any) -> Any: ...
        def get_result(self, indices_or_msg_ids: Any = None, block: bool | None = None, owner: bool = True,
                       timeout: float | None = None) -> AsyncResult: ...

    # ---------------------------------------------------------------------------- queries
    def hub_history(self) -> list[str]:
        """Every task id in the controller's database, oldest submission first."""
        return self._request("hub_history")

    def db_query(self, query: dict[str, Any], keys: str | list[str] | None = None) -> list[dict[str, Any]]:
        """Task records matching a Mongo-style query (`$lt $gt $lte $gte $eq $ne $in $nin $exists $mod`).

        `keys` (a name or a list of names) selects fields; `msg_id` always comes back. Raises
        KeyError for an unknown field or operator, TypeError for a query that is not a dict.
        """
        if not isinstance(query, dict):
            raise TypeError(f"a query is a dict of field -> value or {{operator: value}}, not {query!r}")
        if isinstance(keys, str):
            keys = [keys]
        if keys is not None and not (isinstance(keys, (list, tuple)) and all(isinstance(k, str) for k in keys)):
            raise TypeError(f"keys is a field name or a list of field names, not {keys!r}")
        want_header = keys is None or "header" in keys
        ask = None
        if keys is not None:
            ask = [k for k in keys if k != "header"]
            if want_header:
                ask += [k for k in _HEADER_NEEDS if k not in ask]
        rows = self._request("db_query", query={k: _query_values(v) for k, v in query.items()}, keys=ask)
        for row in rows:
            for k, v in row.items():
                if isinstance(v, dict) and "$bytes" in v:
                    row[k] = base64.b64decode(v["$bytes"])
            for k in DATE_KEYS:
                if k in row:
                    row[k] = to_datetime(row[k])
            if want_header:
                row["header"] = {"msg_id": row["msg_id"], "msg_type": "apply_request", "date": row["submitted"],
                                 "session": row["client_id"]}
                if keys is not None:
                    for k in _HEADER_NEEDS:
                        if k not in keys:
                            del row[k]
        return rows

    def result_status(self, msg_ids: Any, status_only: bool = True) -> dict[str, Any]:
        """`{"status": "ok", "pending": [ids], "completed": [ids]}` for tasks of any client.

        Without `status_only` the completed results are fetched too and keyed by msg_id (failures
        as exceptions); then a single failed task raises its error, several a CompositeError, as in
        ipyparallel. Raises RemoteError (ename KeyError) for an unknown id.
        """
        ids = self._ids(msg_ids)
        with self._lock:
            completed = [m for m in ids if m in self._done]
        known = set(completed)          # (a list here made 100,000 ids take 97 s)
        rest = [m for m in ids if m not in known]
        pending: list[str] = []
        if rest:
            found = {r["msg_id"]: r["status"] for r in self._request(
                "db_query", query={"msg_id": {"$in": rest}}, keys=["status"])}
            missing = [m for m in rest if m not in found]
            if missing:
                raise RemoteError("KeyError", f"No such msg: {missing[0]!r}")
            for m in rest:
                (pending if found[m] == "pending" else completed).append(m)
        content: dict[str, Any] = {"status": "ok", "pending": pending, "completed": completed}
        if status_only or not completed:
            return content
        ar = self.get_result(completed, owner=False)
        ar.wait()
        failures = []
        for m in completed:
            ok, value = ar._values[m]
            content[m] = value
            if not ok:
                failures.append(value)
        if len(ids) == 1 and failures:
            raise failures[0]
        collect_exceptions(failures, "result_status")
        return content

    # ----------------------------------------------------------------------------- purges
    def _purge_ids(self, jobs: Any, targets: Any) -> list[str]:
        if not jobs and not targets:
            raise ValueError("Must specify at least one of `targets` and `jobs`")
        ids = self._ids(jobs) if jobs else []
        if targets is not None and targets != [] and targets != ():
            engines = self._resolve_targets(targets if isinstance(targets, (list, tuple, range)) else [targets])
            if not all(isinstance(e, int) and not isinstance(e, bool) for e in engines):
                raise TypeError(f"targets are engine ids (ints), not {targets!r}")
            ids += [r["msg_id"] for r in self._request("db_query", query={"engine_id": {"$in": list(engines)}},
                                                       keys=["msg_id"])]
        return ids

    def purge_local_results(self, jobs: Any = (), targets: Any = ()) -> None:
        """Forget results and metadata in this client only: `"all"`, or `jobs` (ids, AsyncResults, indices)
        and/or everything that ran on `targets`. They can still be fetched again with `get_result`.

        Raises RuntimeError for tasks still outstanding, ValueError when given nothing to purge.
        """
        with self._lock:
            if jobs == "all":
                if self.outstanding:
                    raise RuntimeError(f"Can't purge outstanding tasks: {sorted(self.outstanding)[:5]}")
                self._done.clear()
                self.metadata.clear()
                return
        ids = self._purge_ids(jobs, targets)
        with self._lock:
            busy = [m for m in ids if m in self.outstanding]
            if busy:
                raise RuntimeError(f"Can't purge outstanding tasks: {busy[:5]}")
            for m in ids:
                self._done.pop(m, None)
                self.metadata.pop(m, None)

    def purge_hub_results(self, jobs: Any = (), targets: Any = ()) -> int:
        """Make the controller forget finished tasks (`"all"`, or `jobs` and/or `targets`); returns how many went.

        Frees the scheduler's and controller's memory too. Raises RuntimeError for tasks not finished
        yet (nothing is purged then), ValueError when given nothing to purge.
        """
        ids = None if jobs == "all" else self._purge_ids(jobs, targets)
        return self._request("purge", timeout=120.0 if ids is None else 30.0 + 1e-3 * len(ids), ids=ids)

    def purge_results(self, jobs: Any = (), targets: Any = ()) -> int:
        """`purge_local_results` then `purge_hub_results` with the same arguments; returns how many rows went."""
        self.purge_local_results(jobs, targets)
        return self.purge_hub_results(jobs, targets)

    def purge_everything(self) -> int:
        """Forget every finished task here and in the controller, and clear `history`; returns how many rows went.

        Raises RuntimeError while tasks are outstanding (nothing is purged then).
        """
        self.purge_local_results("all")
        n = self.purge_hub_results("all")
        self.history.clear()
        return n
