"""A columnar RecordSink: the core's per-attempt records kept as numpy columns, not Python objects.

How this works. `add(...)` (the core's positional RecordSink signature) appends one tuple to a
small buffer; every `chunk` records the buffer is converted to numpy columns and dropped, so at rest
a record costs ~90 bytes (10^6 records ≈ 90 MB) and no per-task Python object survives. `add` does
not check the buffer size (the simulator calls `flush()` every 4096 final outcomes). Task and
engine ids must be integers (the simulator's ids are); `None` becomes NaN in float columns.
Justified by benchmarks/bench_sim.py (a TaskRecord per attempt costs ~4x the memory and time).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.model import Outcome, TaskRecord

OUTCOMES: tuple[Outcome, ...] = tuple(Outcome)
_OUTCOME_CODE = {o: i for i, o in enumerate(OUTCOMES)}
_FLOAT_COLS = ("engine_id", "submitted_at", "dispatched_at", "started_at", "finished_at", "queue_len", "engine_load")
_INT_COLS = ("task_id", "attempt")
_CODED_COLS = ("error_name", "scheme", "label")


class ColumnarRecords:
    """RecordSink with numpy columns; `columns()` gives them, `to_dataframe()` the TaskRecord-shaped frame."""

    __slots__ = ("_buf", "_parts", "_codes", "_n")

    def __init__(self) -> None:
        self._buf: list[tuple[Any, ...]] = []
        self._parts: list[dict[str, np.ndarray]] = []
        self._codes: dict[str, dict[Any, int]] = {c: {None: -1} for c in _CODED_COLS}
        self._n = 0

    def add(self, *fields: Any) -> None:
        """One record, positional in TaskRecord field order (the core's RecordSink.add)."""
        self._buf.append(fields)

    def flush(self) -> None:
        """Convert the buffered records to numpy columns (bounded memory; call every so often)."""
        self._flush()

    def __len__(self) -> int:
        return self._n + len(self._buf)

    def _flush(self) -> None:
        buf, self._buf = self._buf, []
        if not buf:
            return
        cols = list(zip(*buf))
        names = TaskRecord.fields()
        by_name = dict(zip(names, cols))
        part: dict[str, np.ndarray] = {}
        for name in _INT_COLS:
            part[name] = np.array(by_name[name], dtype=np.int64)
        for name in _FLOAT_COLS:
            part[name] = np.array(by_name[name], dtype=np.float64)
        n = len(buf)
        outcomes = by_name["outcome"]
        if outcomes.count(outcomes[0]) == n:          # one value (e.g. all OK, the common case): no per-row lookup
            part["outcome"] = np.full(n, _OUTCOME_CODE[outcomes[0]], dtype=np.int8)
        else:
            part["outcome"] = np.array([_OUTCOME_CODE[o] for o in outcomes], dtype=np.int8)
        for name in _CODED_COLS:
            codes = self._codes[name]
            values = by_name[name]
            if values.count(values[0]) == n:
                part[name] = np.full(n, codes.setdefault(values[0], len(codes) - 1), dtype=np.int32)
            else:
                part[name] = np.array([codes.setdefault(v, len(codes) - 1) for v in values], dtype=np.int32)
        self._parts.append(part)
        self._n += len(buf)

    def add_columns(self, *, outcome: Any, error_name: list[Any] | None, scheme: Any, label: Any,
                    **numeric: np.ndarray) -> None:
        """Records given as whole columns, after any added so far (the fast path, sim/fastpath.py).

        `numeric`: every column of TaskRecord but the coded ones, as numpy arrays of one length;
        `outcome`: one Outcome for every record or an array of them (None = all OK); `error_name`: a list of
        names/None (None = all None); `scheme` and `label`: one value for every record. Coded as `add` would.
        """
        self._flush()
        n = len(numeric["task_id"])
        part: dict[str, np.ndarray] = {}
        for name in _INT_COLS:
            part[name] = np.asarray(numeric[name], dtype=np.int64)
        for name in _FLOAT_COLS:
            part[name] = np.asarray(numeric[name], dtype=np.float64)
        if any(len(col) != n for col in part.values()):
            raise ValueError("add_columns: every column must have the same length")
        if not n:
            return
        if outcome is None or isinstance(outcome, Outcome):
            part["outcome"] = np.full(n, _OUTCOME_CODE[outcome or Outcome.OK], dtype=np.int8)
        else:
            part["outcome"] = np.array([_OUTCOME_CODE[o] for o in outcome], dtype=np.int8)
        for name, values in (("error_name", error_name), ("scheme", scheme), ("label", label)):
            codes = self._codes[name]
            if isinstance(values, list):
                part[name] = np.array([codes.setdefault(v, len(codes) - 1) for v in values], dtype=np.int32)
            else:
                part[name] = np.full(n, codes.setdefault(values, len(codes) - 1), dtype=np.int32)
        self._parts.append(part)
        self._n += n

    def columns(self) -> dict[str, np.ndarray]:
        """All records so far as raw columns (outcome/error_name/scheme/label as integer codes)."""
        self._flush()
        if not self._parts:
            return {name: np.empty(0) for name in TaskRecord.fields()}
        if len(self._parts) > 1:
            self._parts = [{k: np.concatenate([p[k] for p in self._parts]) for k in self._parts[0]}]
        return dict(self._parts[0])

    def categories(self, column: str) -> list[Any]:
        """Values of a coded column, indexed by code (code -1 is None)."""
        if column == "outcome":
            return [str(o) for o in OUTCOMES]
        codes = self._codes[column]
        out: list[Any] = [None] * (len(codes) - 1)
        for value, code in codes.items():
            if code >= 0:
                out[code] = value
        return out

    def to_dataframe(self) -> Any:
        """The records as a pandas DataFrame with TaskRecord's columns (nullable ints, categoricals)."""
        import pandas as pd

        cols = self.columns()
        data: dict[str, Any] = {}
        for name in TaskRecord.fields():
            col = cols[name]
            if name in ("engine_id", "queue_len", "engine_load"):
                data[name] = pd.array(np.where(np.isnan(col), 0, col).astype(np.int64), dtype="Int64")
                data[name][np.isnan(col)] = pd.NA
            elif name == "outcome" or name in _CODED_COLS:
                data[name] = pd.Categorical.from_codes(col.astype(np.int32) if len(col) else np.empty(0, np.int32),
                                                       categories=[str(c) for c in self.categories(name)])
            else:
                data[name] = col
        return pd.DataFrame(data, columns=list(TaskRecord.fields()))
