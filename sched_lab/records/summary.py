"""Task records -> pandas DataFrame and run summaries (one path for live runs and simulations).

Records are per attempt (TaskRecord's fields). A task's *final* record is its last one; response =
final finish − submission, wait = final start − submission, over tasks that succeeded, after a
warm-up cut (the first `warmup` fraction of tasks by submission is ignored). Makespan, throughput,
utilisation and imbalance use every record.

Response times are end to end when the driver knows the client's side (`client_times`: when the
client submitted each task and received its final result; the simulator does): client submit to
client receipt, network hops included; `sched_*_response` are then the scheduler's view (its own
receipt of the submission to its receipt of the final result). Without client times both are the
scheduler's view. `Summary.response` says which one `mean_response`/`p50`/`p99` report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from ..core.model import Outcome, RecordList, TaskRecord

__all__ = ["Summary", "to_dataframe", "summarize", "final_records", "RESPONSE_KINDS"]

RESPONSE_KINDS = ("end_to_end", "scheduler")


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
    `response` is "end_to_end" (client submit to client receipt) or "scheduler" (the scheduler's
    receipts): what `mean/p50/p99_response` measure; `sched_*_response` are always the scheduler's.
    `mean_wait` is scheduler-side (its receipt of the submission to the start on an engine).
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
    sched_mean_response: float = float("nan")
    sched_p50_response: float = float("nan")
    sched_p99_response: float = float("nan")
    response: str = "scheduler"

    def __post_init__(self) -> None:
        if self.response not in RESPONSE_KINDS:
            raise ValueError(f"response must be one of {', '.join(RESPONSE_KINDS)}, got {self.response!r}")

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def _percentiles(resp: np.ndarray) -> tuple[float, float, float]:
    nan = float("nan")
    if not len(resp):
        return nan, nan, nan
    return float(resp.mean()), float(np.percentile(resp, 50)), float(np.percentile(resp, 99))


def summarize(records: Any, engines: int | None = None, warmup: float = 0.0,
              client_times: tuple[Any, Any] | None = None) -> Summary:
    """Summary of per-attempt records; `engines` = engine count (default: engines seen in the records).

    `client_times`: (submitted, received) arrays indexed by integer task id, the client's clock:
    response is then end to end (see the module doc). Raises ValueError if they do not cover every
    task id or a measured task has no receipt time."""
    if not 0 <= warmup < 1:
        raise ValueError(f"warmup must be a fraction in [0, 1), got {warmup!r}")
    cols = _columns(records)
    nan = float("nan")
    kind = "scheduler" if client_times is None else "end_to_end"
    if len(cols["task_id"]) == 0:
        return Summary(0, 0, 0, nan, nan, nan, nan, nan, nan, nan, nan, response=kind)
    fin = final_records(cols)
    sub_f = cols["submitted"][fin]
    order = np.lexsort((cols["task_id"][fin], sub_f)) if cols["task_id"].dtype != object else np.argsort(sub_f, kind="stable")
    keep = fin[order[int(len(fin) * warmup):]]
    ok = cols["ok"][keep]
    kept_ok = keep[ok]
    resp = cols["finished"][kept_ok] - cols["submitted"][kept_ok]
    sched = _percentiles(resp)
    if client_times is not None:
        resp = _end_to_end(cols["task_id"][kept_ok], client_times)
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
        sched_mean_response=sched[0], sched_p50_response=sched[1], sched_p99_response=sched[2], response=kind,
    )


def _end_to_end(task_ids: np.ndarray, client_times: tuple[Any, Any]) -> np.ndarray:
    """Client receipt − client submission of `task_ids` (integer ids indexing the client arrays)."""
    submitted, received = (np.asarray(a, dtype=np.float64) for a in client_times)
    if submitted.shape != received.shape:
        raise ValueError(f"client_times: {len(submitted)} submission times but {len(received)} receipt times")
    ids = np.asarray(task_ids)
    if len(ids) and (ids.dtype.kind not in "iu" or ids.min() < 0 or ids.max() >= len(submitted)):
        raise ValueError(f"client_times cover task ids 0..{len(submitted) - 1}; the records have others")
    resp: np.ndarray = np.subtract(received[ids], submitted[ids])
    if np.isnan(resp).any():
        raise ValueError(f"client_times: {int(np.isnan(resp).sum())} measured task(s) have no receipt time")
    return resp
