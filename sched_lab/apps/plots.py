"""Matplotlib figures of simulation and live-run results; every function returns a Figure.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state, no GUI backend), so
they work in the CLI, in tests and in notebooks alike; save with `fig.savefig(path)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..records.stats import confidence_halfwidth, ks_distance, response_times

__all__ = ["response_vs_load", "response_vs_load_grid", "response_cdf", "engine_utilisation", "gantt",
           "live_vs_sim_cdf", "sim_vs_theory"]





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






def _ecdf(ax: Any, values: np.ndarray, **kw: Any) -> Any:
    values = values[values > 0] if ax.get_xscale() == "log" else values
    return ax.step(values, np.arange(1, len(values) + 1) / len(values), where="post", **kw)[0]


def response_cdf(runs: Mapping[str, Any] | Any, title: str | None = None, unit: str = "time units",
                 scale: float = 1.0, log: bool = True) -> Any:
    """Empirical CDF of task response times (final successful attempts), one curve per run.

    `runs`: a records DataFrame (or anything `analysis.to_dataframe` takes), or a mapping name -> such.
    Times are multiplied by `scale` and labelled in `unit` (e.g. scale=1000, unit="ms" for live seconds).
    """
    from matplotlib.figure import Figure

    if not isinstance(runs, Mapping):
        runs = {"": runs}
    fig = Figure(figsize=(6, 4.2), layout="constrained")
    ax = fig.subplots()
    if log:
        ax.set_xscale("log")
    for name, records in runs.items():
        resp = response_times(records) * scale
        if len(resp):
            _ecdf(ax, resp, label=name or None)
    ax.set_xlabel(f"response time, submission to completion ({unit})")
    ax.set_ylabel("fraction of tasks")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    if any(runs):
        ax.legend(fontsize=8)
    ax.set_title(title or "Response-time distribution")
    return fig


def live_vs_sim_cdf(pairs: Mapping[str, tuple[Any, Any]], title: str | None = None, unit: str = "ms",
                    scale: float = 1000.0) -> Any:
    """Live (solid) against simulated (dashed) response-time CDFs, one panel per name.

    `pairs`: name (e.g. a scheme) -> (live records, simulated records), both TaskRecord-shaped. Each
    panel's title gives the KS distance and the relative error of the simulated mean.
    """
    from matplotlib.figure import Figure

    if not pairs:
        raise ValueError("live_vs_sim_cdf needs at least one (live, sim) pair")
    n = len(pairs)
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, (name, (live, sim)) in zip(axes, pairs.items()):
        lv, sv = response_times(live) * scale, response_times(sim) * scale
        ax.set_xscale("log")
        _ecdf(ax, lv, label=f"live (n={len(lv)})", color="C0", lw=1.6)
        _ecdf(ax, sv, label=f"simulated (n={len(sv)})", color="C3", lw=1.4, ls="--")
        err = (sv.mean() - lv.mean()) / lv.mean() if len(lv) and len(sv) else float("nan")
        ax.set_title(f"{name}: KS={ks_distance(lv, sv):.3f}, mean err={err:+.1%}", fontsize=9)
        ax.set_xlabel(f"response time ({unit})")
        ax.set_ylabel("fraction of tasks")
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.suptitle(title or "Live cluster vs calibrated simulation: response-time CDFs")
    return fig


def _engine_frame(records: Any) -> Any:
    from ..records.summary import to_dataframe

    df = to_dataframe(records)
    ran = df[df["started_at"].notna() & df["engine_id"].notna()].copy()
    for col in ("submitted_at", "started_at", "finished_at"):
        ran[col] = ran[col].astype(float)
    return df, ran


def engine_utilisation(records: Any, engines: Sequence[Any] | None = None, title: str | None = None) -> Any:
    """Per-engine busy fraction (time running attempts / makespan) as bars; ok and failed work stacked.

    `engines`: the engine ids to show (default: those in the records); an engine that ran nothing shows 0.
    The dashed line is the mean over the engines shown.
    """
    from matplotlib.figure import Figure

    df, ran = _engine_frame(records)
    if len(ran) == 0:
        raise ValueError("engine_utilisation needs records of attempts that ran on an engine")
    t0 = float(df["submitted_at"].astype(float).min())
    span = float(ran["finished_at"].max()) - t0
    busy = (ran["finished_at"] - ran["started_at"]).clip(lower=0)
    ok = ran["outcome"].astype(str) == "ok"
    ids = list(engines) if engines is not None else sorted(ran["engine_id"].unique().tolist())
    by_ok = busy[ok].groupby(ran["engine_id"][ok]).sum().reindex(ids, fill_value=0) / span
    by_bad = busy[~ok].groupby(ran["engine_id"][~ok]).sum().reindex(ids, fill_value=0) / span
    fig = Figure(figsize=(max(5.0, min(12.0, 0.25 * len(ids) + 3)), 3.8), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(ids))
    ax.bar(x, by_ok.to_numpy(), color="C0", label="successful attempts")
    if by_bad.to_numpy().any():
        ax.bar(x, by_bad.to_numpy(), bottom=by_ok.to_numpy(), color="C3", label="failed attempts (wasted)")
    total = by_ok.to_numpy() + by_bad.to_numpy()
    ax.axhline(total.mean(), ls="--", color="0.3", lw=1, label=f"mean {total.mean():.2f}")
    ax.set_xticks(x if len(ids) <= 32 else x[:: max(1, len(ids) // 16)])
    ax.set_xticklabels([str(ids[i]) for i in ax.get_xticks().astype(int)], fontsize=7)
    ax.set_xlabel("engine")
    ax.set_ylabel("busy fraction of makespan")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "Per-engine utilisation")
    return fig


def gantt(records: Any, title: str | None = None, unit: str = "time units", scale: float = 1.0,
          max_engines: int = 40, t_window: tuple[float, float] | None = None) -> Any:
    """Task placement over time: one row per engine, one bar per attempt (started → finished).

    Works on live and simulated records alike (TaskRecord-shaped). Time is relative to the first
    submission, multiplied by `scale` and labelled in `unit`; `t_window` (in those units) zooms in.
    Failed attempts are red; at most `max_engines` engines are drawn (the first by id).
    """
    from matplotlib.figure import Figure

    df, ran = _engine_frame(records)
    if len(ran) == 0:
        raise ValueError("gantt needs records of attempts that ran on an engine")
    t0 = float(df["submitted_at"].astype(float).min())
    ids = sorted(ran["engine_id"].unique().tolist())[:max_engines]
    row = {e: i for i, e in enumerate(ids)}
    fig = Figure(figsize=(8, max(2.5, 0.28 * len(ids) + 1.4)), layout="constrained")
    ax = fig.subplots()
    ok = ran["outcome"].astype(str) == "ok"
    for good, color, label in ((True, "C0", "successful attempt"), (False, "C3", "failed attempt")):
        sub = ran[(ok == good) & ran["engine_id"].isin(ids)]
        if len(sub) == 0:
            continue
        start = (sub["started_at"].to_numpy(float) - t0) * scale
        width = (sub["finished_at"].to_numpy(float) - sub["started_at"].to_numpy(float)) * scale
        ys = np.array([row[e] for e in sub["engine_id"].tolist()])
        ax.barh(ys, width, left=start, height=0.7, color=color, edgecolor="white", linewidth=0.3, label=label)
    ax.set_yticks(range(len(ids)))
    ax.set_yticklabels([str(e) for e in ids], fontsize=7)
    ax.invert_yaxis()
    if t_window is not None:
        ax.set_xlim(*t_window)
    ax.set_xlabel(f"time since first submission ({unit})")
    ax.set_ylabel("engine")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title or "Task placement over time")
    return fig


def response_vs_load_grid(tidy: Any, rows: str = "hwm", metrics: Sequence[str] = ("mean_response", "p99_response"),
                          group: str = "scheme", title: str | None = None, unit: str = "mean task lengths") -> Any:
    """A grid of response-vs-load panels: one row per value of `rows`, one column per metric, one line per
    `group` value, with 95% confidence bands over seeds (log y when a panel spans more than a decade;
    a band's lower edge is drawn no lower than a tenth of the mean, so log panels stay readable)."""
    from matplotlib.figure import Figure

    missing = [c for c in ("load", rows, group, *metrics) if c not in tidy.columns]
    if missing:
        raise ValueError(f"response_vs_load_grid needs columns {missing}")
    row_values = sorted(tidy[rows].unique().tolist())
    fig = Figure(figsize=(4.6 * len(metrics), 3.2 * len(row_values) + 0.6), layout="constrained")
    axes = fig.subplots(len(row_values), len(metrics), squeeze=False)
    for r, rv in enumerate(row_values):
        part = tidy[tidy[rows] == rv]
        for c, metric in enumerate(metrics):
            ax = axes[r][c]
            for i, (key, sub) in enumerate(part.groupby(group, sort=True)):
                stats = sub.groupby("load")[metric].agg(["mean", lambda v: confidence_halfwidth(list(v))])
                x, m, h = stats.index.to_numpy(float), stats["mean"].to_numpy(), stats.iloc[:, 1].to_numpy()
                (line,) = ax.plot(x, m, marker="o", ms=3, label=str(key), color=f"C{i}")
                ax.fill_between(x, np.maximum(m - h, m / 10), m + h, color=line.get_color(), alpha=0.1, lw=0)
            values = part[metric].to_numpy(float)
            values = values[np.isfinite(values) & (values > 0)]
            if len(values) and values.max() / values.min() > 10:
                ax.set_yscale("log")
            ax.set_title(f"{rows}={rv}: {metric.replace('_', ' ')}", fontsize=9)
            ax.set_xlabel("load per engine")
            ax.set_ylabel(f"{metric.replace('_', ' ')} ({unit})", fontsize=8)
            ax.grid(True, alpha=0.3)
    axes[0][0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return fig


def sim_vs_theory(table: Any, title: str | None = None,
                  curves: Mapping[str, Sequence[tuple[float, float]]] | None = None) -> Any:
    """Simulated mean response (points with 95% error bars) against the closed form (line), one panel per model.

    `table`: one row per (model, load) with columns `model`, `load`, `sim_mean`, `sim_ci`, `theory`;
    an optional `label` column splits a panel into several series (e.g. schemes sharing one model).
    `curves`: optional model -> [(load, theory)] drawn instead of joining the table's theory values.
    """
    from matplotlib.figure import Figure

    missing = [c for c in ("model", "load", "sim_mean", "sim_ci", "theory") if c not in table.columns]
    if missing:
        raise ValueError(f"sim_vs_theory needs columns {missing}")
    models = list(dict.fromkeys(table["model"].tolist()))
    cols = min(len(models), 3)
    nrows = math.ceil(len(models) / cols)
    fig = Figure(figsize=(4.3 * cols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, cols, squeeze=False).ravel()
    for ax, model in zip(axes, models):
        part = table[table["model"] == model]
        labels = part["label"] if "label" in part.columns else None
        groups = part.groupby(labels, sort=False) if labels is not None else [("simulated", part)]
        series = list(groups)
        width = 0.012
        for i, (label, sub) in enumerate(series):
            offset = (i - (len(series) - 1) / 2) * width
            ax.errorbar(sub["load"].to_numpy(float) + offset, sub["sim_mean"], yerr=sub["sim_ci"], fmt="o", ms=3,
                        capsize=2, label=str(label), color=f"C{i}")
        if curves and model in curves:
            xs, ys = zip(*curves[model])
        else:
            th = part.drop_duplicates("load").sort_values("load")
            xs, ys = th["load"].to_numpy(float), th["theory"].to_numpy(float)
        ax.plot(xs, ys, color="0.2", lw=1.2, ls="--", label="theory")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("load per engine")
        ax.set_ylabel("mean response (mean task lengths)", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6 if len(series) > 3 else 7)
    for ax in axes[len(models):]:
        ax.set_visible(False)
    fig.suptitle(title or "Simulator against closed-form queueing models (95% CI over seeds)")
    return fig
