"""Matplotlib figures of simulation and live-run results; every function returns a Figure.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend), so
they work in the CLI, in tests and in notebooks alike; save with `fig.savefig(path)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["response_vs_load", "response_cdf", "confidence_halfwidth"]

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


def response_vs_load(tidy: Any, metrics: Sequence[str] = ("mean_response", "p99_response"),
                     group: Sequence[str] = ("scheme",), theory: Mapping[str, Sequence[tuple[float, float]]] | None = None,
                     title: str | None = None) -> Any:
    """Response metrics against load, one line per group, with 95% confidence bands over seeds.

    `tidy`: a DataFrame with a `load` column, the `metrics` columns and the `group` columns, one row
    per (group, load, seed). `theory`: optional name -> [(load, value)] curves drawn dashed on the
    first panel. Log scale on y when the values span more than a decade.
    """
    from matplotlib.figure import Figure

    missing = [c for c in ("load", *metrics, *group) if c not in tidy.columns]
    if missing:
        raise ValueError(f"response_vs_load needs columns {missing}")
    fig = Figure(figsize=(5.5 * len(metrics), 4.2), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for key, sub in tidy.groupby(list(group), sort=True):
            key = key if isinstance(key, tuple) else (key,)
            label = " ".join(f"{g}={k}" if g != "scheme" else str(k) for g, k in zip(group, key))
            stats = sub.groupby("load")[metric].agg(["mean", lambda v: confidence_halfwidth(list(v))])
            loads, mean, half = stats.index.to_numpy(float), stats["mean"].to_numpy(), stats.iloc[:, 1].to_numpy()
            (line,) = ax.plot(loads, mean, marker="o", ms=3, label=label)
            ax.fill_between(loads, mean - half, mean + half, color=line.get_color(), alpha=0.2, lw=0)
        if theory and ax is axes[0]:
            for name, curve in theory.items():
                xs, ys = zip(*curve)
                ax.plot(xs, ys, ls="--", lw=1, color="0.3", label=name)
        values = tidy[metric].to_numpy(float)
        values = values[np.isfinite(values) & (values > 0)]
        if len(values) and values.max() / values.min() > 10:
            ax.set_yscale("log")
        ax.set_xlabel("load per engine")
        ax.set_ylabel(metric.replace("_", " "))
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig


def response_cdf(runs: Mapping[str, Any] | Any, title: str | None = None) -> Any:
    """Empirical CDF of task response times (final successful attempts), one curve per run.

    `runs`: a records DataFrame (or anything `analysis.to_dataframe` takes), or a mapping name -> such.
    """
    from matplotlib.figure import Figure

    from .analysis import to_dataframe

    if not isinstance(runs, Mapping):
        runs = {"": runs}
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, records in runs.items():
        df = to_dataframe(records)
        last = df.drop_duplicates("task_id", keep="last")
        ok = last[last["outcome"].astype(str) == "ok"]
        resp = np.sort((ok["finished_at"] - ok["submitted_at"]).to_numpy(float))
        resp = resp[resp > 0]
        if len(resp) == 0:
            continue
        ax.step(resp, np.arange(1, len(resp) + 1) / len(resp), where="post", label=name or None)
    ax.set_xscale("log")
    ax.set_xlabel("response time (submission to completion)")
    ax.set_ylabel("fraction of tasks")
    ax.grid(True, alpha=0.3)
    if any(runs):
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return fig
