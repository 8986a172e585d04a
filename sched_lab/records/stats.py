"""Statistics over task records shared by both drivers' outputs: confidence intervals, KS distances,
response-time samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["confidence_halfwidth", "ks_distance", "response_times"]

# two-sided 95% Student t quantiles for 1..30 degrees of freedom (then the normal value)
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)


def confidence_halfwidth(values: Sequence[float], level: float = 0.95) -> float:
    """Half-width of the 95% confidence interval of the mean of `values` (0 for a single value)."""
    if level != 0.95:
        raise ValueError("only 95% intervals are supported")
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if len(x) < 2:
        return 0.0
    t = _T95[len(x) - 2] if len(x) - 1 <= len(_T95) else 1.96
    return float(t * x.std(ddof=1) / math.sqrt(len(x)))


def response_times(records: Any, warmup: float = 0.0) -> np.ndarray:
    """Response times (final finish − submission) of the tasks whose final attempt succeeded, sorted.

    `records`: anything `summary.to_dataframe` takes (live or simulated, per attempt). `warmup`: the
    fraction of tasks (by submission) to leave out, as `summary.summarize` does.
    """
    from .summary import to_dataframe

    df = to_dataframe(records)
    last = df.drop_duplicates("task_id", keep="last").sort_values("submitted_at", kind="stable")
    last = last.iloc[int(len(last) * warmup):]
    ok = last[last["outcome"].astype(str) == "ok"]
    resp = (ok["finished_at"].astype(float) - ok["submitted_at"].astype(float)).to_numpy(float)
    return np.sort(resp[np.isfinite(resp)])


def ks_distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sample Kolmogorov–Smirnov distance sup |F_a − F_b| of two samples (in [0, 1]; NaN if one is empty)."""
    x, y = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    if len(x) == 0 or len(y) == 0:
        return float("nan")
    grid = np.concatenate([x, y])
    fx = np.searchsorted(x, grid, side="right") / len(x)
    fy = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(fx - fy)))
