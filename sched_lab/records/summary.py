"""Task records -> pandas DataFrame and run summaries (one path for live runs and simulations).

Records are per attempt (TaskRecord's fields). A task's *final* record is its last one; response =
final finish − submission, wait = final start − submission, over tasks that succeeded, after a
warm-up cut (the first `warmup` fraction of tasks by submission is ignored). Makespan, throughput,
utilisation and imbalance use every record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.model import Outcome, RecordList, TaskRecord

__all__ = ["Summary", "to_dataframe", "summarize", "final_records"]


def to_dataframe(records: Any) -> Any:
    """A DataFrame with TaskRecord's columns from a ColumnarRecords, RecordList, list of TaskRecord or DataFrame."""
    import pandas as pd  # type: ignore[import-untyped]  # (pandas-stubs is not a dependency)

    if isinstance(records, pd.DataFrame):
        return records
    if hasattr(records, "to_dataframe"):
        return records.to_dataframe()
    if isinstance(records, RecordList):
        records = records.records
    rows = [tuple(getattr(r, f) for f in TaskRecord.fields()) for r in records]
    df = pd.DataFrame.from_records(rows, columns=list(TaskRecord.fields()))
    df["outcome"] = df["outcome"].astype(str)
    return df


def _columns(records: Any) -> dict[str, np.ndarray]:
    """task_id, submitted, started, finished (float), ok (bool), engine (float, NaN = none) arrays."""
    if hasattr(records, "columns") and callable(records.columns) and hasattr(records, "categories"):
        cols = records.columns()
        ok_code = list(Outcome).index(Outcome.OK)
        return {"task_id": cols["task_id"], "submitted": cols["submitted_at"], "started": cols["started_at"],
                "finished": cols["finished_at"], "ok": cols["outcome"] == ok_code, "engine": cols["engine_id"]}
    df = to_dataframe(records)

    def floats(name: str) -> np.ndarray:
        column: np.ndarray = df[name].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        return column

    return {"task_id": df["task_id"].to_numpy(), "submitted": floats("submitted_at"), "started": floats("started_at"),
            "finished": floats("finished_at"), "ok": (df["outcome"].astype(str) == Outcome.OK.value).to_numpy(),
            "engine": floats("engine_id") if df["engine_id"].map(lambda v: v is None or isinstance(v, (int, float))).all()
            else np.full(len(df), np.nan)}


def final_records(cols: dict[str, np.ndarray]) -> np.ndarray:
    """Indices of each task's last record (records arrive in time order from both drivers)."""
    tid = cols["task_id"]
    if len(tid) == 0:
        return np.empty(0, dtype=np.int64)
    rev = tid[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    return np.sort(len(tid) - 1 - first_in_rev)


@dataclass(frozen=True, slots=True)
class Summary:
    """Headline figures of one run. Times are in the driver's unit; NaN when there is nothing to measure.

    `measured`/`ok`/`failed` count tasks after the warm-up cut; `utilization` = busy engine time /
    (engines × makespan); `imbalance` = max / mean busy time per engine (1 = perfectly even).
    """

    measured: int
    ok: int
    failed: int
    mean_wait: float
    mean_response: float
    p50_response: float
    p99_response: float
    makespan: float
    throughput: float
    utilization: float
    imbalance: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def summarize(records: Any, engines: int | None = None, warmup: float = 0.0) -> Summary:
    """Summary of per-attempt records; `engines` = engine count (default: engines seen in the records)."""
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    cols = _columns(records)
    nan = float("nan")
    if len(cols["task_id"]) == 0:
        return Summary(0, 0, 0, nan, nan, nan, nan, nan, nan, nan, nan)
    fin = final_records(cols)
    sub_f = cols["submitted"][fin]
    order = np.lexsort((cols["task_id"][fin], sub_f)) if cols["task_id"].dtype != object else np.argsort(sub_f, kind="stable")
    keep = fin[order[int(len(fin) * warmup):]]
    ok = cols["ok"][keep]
    kept_ok = keep[ok]
    resp = cols["finished"][kept_ok] - cols["submitted"][kept_ok]
    wait = cols["started"][kept_ok] - cols["submitted"][kept_ok]
    wait = wait[~np.isnan(wait)]
    makespan = float(np.nanmax(cols["finished"]) - np.nanmin(cols["submitted"]))
    ran = ~np.isnan(cols["started"]) & ~np.isnan(cols["engine"])
    busy = cols["finished"][ran] - cols["started"][ran]
    eng = cols["engine"][ran].astype(np.int64)
    n_eng = engines if engines is not None else int(len(np.unique(eng)))
    per_engine = np.bincount(eng, weights=busy, minlength=n_eng) if len(eng) and eng.min() >= 0 else busy
    mean_busy = float(per_engine.sum() / n_eng) if n_eng else nan
    n_ok_all = int(cols["ok"][fin].sum())
    return Summary(
        measured=int(len(keep)), ok=int(ok.sum()), failed=int(len(keep) - ok.sum()),
        mean_wait=float(wait.mean()) if len(wait) else nan,
        mean_response=float(resp.mean()) if len(resp) else nan,
        p50_response=float(np.percentile(resp, 50)) if len(resp) else nan,
        p99_response=float(np.percentile(resp, 99)) if len(resp) else nan,
        makespan=makespan,
        throughput=n_ok_all / makespan if makespan > 0 else nan,
        utilization=float(busy.sum() / (n_eng * makespan)) if makespan > 0 and n_eng else nan,
        imbalance=float(per_engine.max() / mean_busy) if mean_busy and mean_busy > 0 else nan,
    )
