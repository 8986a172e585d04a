"""`sched-lab demo`: the same schemes live on a local cluster and simulated at 100× the scale, in one report.

How this works: one seeded Poisson workload (lognormal sleep tasks, mean 20 ms, per-engine load 0.7)
is drawn by the simulator's own workload code. For each scheme a fresh local cluster (controller +
`engines` engines, in a temporary `$SCHED_LAB_DIR`) replays it in real time — each task sleeps for
its drawn length, submitted at its drawn arrival time — and the controller's TaskRecords are
collected. The simulator then runs the same scheme, hwm and load with 100× the tasks on the same
engines (the distribution the live sample is drawn from) and with 100× the engines and tasks (the
scheme at scale). The report (Markdown, PNG figures, a CSV table) goes to `out_dir`.

Every cluster is stopped in a `finally` (SIGINT is ignored while stopping, SIGTERM is turned into
KeyboardInterrupt), so neither a failure nor Ctrl-C leaves a process behind. Progress goes to stderr.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DemoConfig", "run_demo", "sleep_task"]

SCALE = 100


def sleep_task(seconds: float) -> float:
    """The live task: sleep `seconds` and return it (importable, so engines load it by reference)."""
    import time as _time

    _time.sleep(seconds)
    return seconds


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """What the demo runs: `tasks` live tasks per scheme on `engines` engines at per-engine `load`,
    lengths lognormal(`sigma`) with mean `mean_s` seconds; the simulations use SCALE× tasks (and engines)."""

    out_dir: Path = Path("sched-lab-demo")
    schemes: tuple[str, ...] = ("leastload", "plainrandom")
    engines: int = 4
    tasks: int = 200
    hwm: int = 0
    load: float = 0.7
    mean_s: float = 0.02
    sigma: float = 1.0
    seed: int = 1
    warmup: float = 0.1

    def __post_init__(self) -> None:
        from ..core.options import check_hwm, check_scheme

        if not self.schemes:
            raise ValueError("schemes must name at least one scheme")
        for scheme in self.schemes:
            check_scheme(scheme)
        check_hwm(self.hwm)
        if self.engines < 1 or self.tasks < 10:
            raise ValueError("engines must be >= 1 and tasks >= 10")
        if not 0 < self.load < 1:
            raise ValueError(f"load must be in (0, 1), got {self.load}")
        if not self.mean_s > 0 or not self.sigma > 0:
            raise ValueError("mean and sigma must be > 0")

    def sim_config(self, scheme: str, tasks: int, engines: int) -> Any:
        from ..sim import Dist, SimConfig

        return SimConfig(scheme=scheme, hwm=self.hwm, engines=engines, tasks=tasks, load=self.load,
                         length=Dist("lognormal", (("sigma", self.sigma),), self.mean_s), seed=self.seed,
                         warmup=self.warmup)


def _say(msg: str, t0: float) -> None:
    print(f"[demo {time.perf_counter() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)


@contextmanager
def _temporary_lab_dir() -> Iterator[Path]:
    """A private $SCHED_LAB_DIR for the demo's clusters (removed afterwards, the old value restored)."""
    old = os.environ.get("SCHED_LAB_DIR")
    with tempfile.TemporaryDirectory(prefix="sched-lab-demo-") as tmp:
        os.environ["SCHED_LAB_DIR"] = tmp
        try:
            yield Path(tmp)
        finally:
            if old is None:
                os.environ.pop("SCHED_LAB_DIR", None)
            else:
                os.environ["SCHED_LAB_DIR"] = old


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt (main thread only) so `finally` blocks stop the clusters."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:          # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _stop(cluster: Any) -> None:
    """Stop a cluster without letting a second Ctrl-C interrupt the stopping."""
    try:
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        cluster.stop()
        return
    try:
        cluster.stop()
    finally:
        signal.signal(signal.SIGINT, old)


def run_live(cfg: DemoConfig, scheme: str, workload: Any, say: Callable[[str], None]) -> tuple[list[Any], dict[str, float]]:
    """Replay `workload` in real time on a fresh local cluster under `scheme`; returns (TaskRecords,
    requested seconds by task id). The cluster is stopped whatever happens."""
    from real_cluster import Cluster

    from .replay import replay_live

    cluster = Cluster(n=cfg.engines, profile=f"demo-{scheme}", scheme=scheme, hwm=cfg.hwm, db="memory")
    try:
        say(f"{scheme}: starting a cluster of {cfg.engines} engines (hwm={cfg.hwm})")
        rc = cluster.start()
        view = rc.load_balanced_view()
        view.apply_sync(sleep_task, 0.0)            # warm the engines' import of this module
        say(f"{scheme}: submitting {len(workload)} tasks over {workload.submit_at[-1]:.1f} s")
        t0 = time.perf_counter()
        ars = replay_live(view, workload, sleep_task)
        requested = {ar.msg_ids[0]: work for ar, work in zip(ars, workload.work.tolist())}
        records = [r for r in rc.records() if r.task_id in requested]
        say(f"{scheme}: {len(records)} tasks done in {time.perf_counter() - t0:.1f} s")
        return records, requested
    finally:
        _stop(cluster)
        say(f"{scheme}: cluster stopped")


def run_demo(cfg: DemoConfig, t0: float | None = None) -> dict[str, Any]:
    """Run the live and simulated workloads, write the report; returns {"report", "table", "rows"}."""
    import pandas as pd

    from ..records.summary import summarize, to_dataframe
    from ..records.stats import ks_distance, response_times
    from ..sim import build_workload, run, streams

    t0 = time.perf_counter() if t0 is None else t0
    say = lambda msg: _say(msg, t0)     # noqa: E731
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    live_cfg = cfg.sim_config(cfg.schemes[0], cfg.tasks, cfg.engines)
    workload = build_workload(live_cfg, streams(cfg.seed))
    rows: list[dict[str, Any]] = []
    frames: dict[str, dict[str, Any]] = {}
    overheads: dict[str, float] = {}
    with _sigterm_as_interrupt(), _temporary_lab_dir():
        for scheme in cfg.schemes:
            records, requested = run_live(cfg, scheme, workload, say)
            live_df = to_dataframe(records)
            ran = live_df[live_df["outcome"].astype(str) == "ok"]
            overheads[scheme] = float(((ran["finished_at"] - ran["started_at"])
                                       - ran["task_id"].map(requested)).mean())
            frames[scheme] = {"live": live_df}
            rows.append(_row(scheme, "live", cfg.engines, len(workload), summarize(records, cfg.engines, cfg.warmup)))
    for scheme in cfg.schemes:
        runs = (("sim", cfg.tasks, cfg.engines, workload),                  # the very workload replayed live
                (f"sim, tasks x{SCALE}", cfg.tasks * SCALE, cfg.engines, None),
                (f"sim, engines+tasks x{SCALE}", cfg.tasks * SCALE, cfg.engines * SCALE, None))
        for label, tasks, engines, wl in runs:
            sc = cfg.sim_config(scheme, tasks, engines)
            say(f"{scheme}: simulating {tasks:,} tasks on {engines} engines")
            result = run(sc, wl)
            if engines == cfg.engines:
                frames[scheme][label] = result.dataframe()
            rows.append(_row(scheme, label, engines, result.n_tasks, result.summary()))
    for row in rows:
        if row["driver"] == "live":
            live = response_times(frames[row["scheme"]]["live"], cfg.warmup)
            row["ks_vs_sim"] = float(ks_distance(live, response_times(frames[row["scheme"]]["sim"], cfg.warmup)))
    order = {s: i for i, s in enumerate(cfg.schemes)}
    rows.sort(key=lambda r: order[r["scheme"]])        # stable: live, then the simulations, per scheme
    table = pd.DataFrame(rows)
    table.to_csv(out / "summary.csv", index=False)
    figures = _figures(cfg, frames, out)
    report = out / "report.md"
    report.write_text(_markdown(cfg, table, figures, overheads))
    say(f"report written: {report}")
    return {"report": report, "table": table, "rows": rows, "figures": figures}


def _row(scheme: str, driver: str, engines: int, tasks: int, s: Any) -> dict[str, Any]:
    return {"scheme": scheme, "driver": driver, "engines": engines, "tasks": tasks,
            "mean_ms": 1e3 * s.mean_response, "p50_ms": 1e3 * s.p50_response, "p99_ms": 1e3 * s.p99_response,
            "mean_wait_ms": 1e3 * s.mean_wait, "utilization": s.utilization, "ks_vs_sim": float("nan")}


def _figures(cfg: DemoConfig, frames: dict[str, dict[str, Any]], out: Path) -> list[str]:
    from .plots import response_cdf

    names = []
    for scheme, runs in frames.items():
        fig = response_cdf({f"live ({cfg.tasks} tasks)": runs["live"],
                            f"simulated, the same {cfg.tasks} tasks": runs["sim"],
                            f"simulated, {cfg.tasks * SCALE:,} tasks": runs[f"sim, tasks x{SCALE}"]},
                           title=f"{scheme}, hwm={cfg.hwm}, {cfg.engines} engines, load {cfg.load:g}",
                           unit="ms", scale=1000.0)
        name = f"cdf_{scheme}.png"
        fig.savefig(out / name, dpi=110)
        names.append(name)
    both = {f"{scheme} {kind}": df for scheme, runs in frames.items() for kind, df in runs.items() if kind != "sim"}
    fig = response_cdf(both, title=f"live and simulated, hwm={cfg.hwm}", unit="ms", scale=1000.0)
    fig.savefig(out / "cdf_all.png", dpi=110)
    names.append("cdf_all.png")
    return names


def _markdown(cfg: DemoConfig, table: Any, figures: list[str], overheads: dict[str, float]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return "" if v != v else f"{v:.3f}" if abs(v) < 1 else f"{v:.1f}"
        return f"{v:,}" if isinstance(v, int) else str(v)

    cols = ["scheme", "driver", "engines", "tasks", "mean_ms", "p50_ms", "p99_ms", "mean_wait_ms", "utilization",
            "ks_vs_sim"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(row[c]) for c in cols) + " |" for row in table.to_dict("records")]
    overhead = ", ".join(f"{s} {1e3 * v:.2f} ms" for s, v in overheads.items())
    return f"""# sched-lab demo: live cluster vs simulator

Workload: Poisson arrivals at per-engine load {cfg.load:g}, task lengths lognormal (sigma {cfg.sigma:g}, mean
{cfg.mean_s * 1e3:g} ms; each live task sleeps for its length), seed {cfg.seed}, hwm={cfg.hwm}.
**live**: {cfg.tasks} tasks on a local cluster of {cfg.engines} engines, one fresh cluster per scheme.
**sim**: the simulator replaying the very same {cfg.tasks} tasks (arrival times and lengths) on {cfg.engines} engines.
**sim, tasks x{SCALE}**: the same scheme, engines and load with {SCALE}× the tasks (the steady state the
live sample is drawn from; a {cfg.tasks}-task run starts from empty queues and sees less queueing).
**sim, engines+tasks x{SCALE}**: {SCALE}× the engines and {SCALE}× the tasks (the scheme at scale).
Both drivers make their decisions with the same `sched_lab.core` scheduler.

Response = completion − submission at the controller, in milliseconds, over successful tasks after
the first {cfg.warmup:.0%} (warm-up). `ks_vs_sim`: Kolmogorov–Smirnov distance between the live responses
and the simulated responses of the same tasks (0 = identical; with {cfg.tasks} live tasks, values under
about {1.36 * (1 / (cfg.tasks * (1 - cfg.warmup))) ** 0.5:.2f} are within sampling noise at the 5% level).

{chr(10).join(lines)}

Live time a task spends on its engine beyond its requested sleep (serialisation, the engine's loop,
sleep overshoot), mean: {overhead}. The simulator here charges no network or scheduler
overhead, so live responses run slightly longer; with hwm={cfg.hwm} the scheme's placement, not the
overhead, decides the response times. Random schemes draw their own choices in each driver, so
their live and simulated runs of the same tasks differ by those draws as well.{_busy_warning(cfg, overheads)}

{chr(10).join(f"![{f}]({f})" for f in figures)}

Regenerate: `sched-lab demo --out {cfg.out_dir}`; the per-scheme rows are also in `summary.csv`.
"""


def _busy_warning(cfg: DemoConfig, overheads: dict[str, float]) -> str:
    worst = max(overheads.values(), default=0.0)
    if not worst > 0.1 * cfg.mean_s:
        return ""
    return (f"\n\n**Warning**: live tasks ran {1e3 * worst:.1f} ms longer than requested on average, more than a "
            "tenth of the mean task length: this machine was busy, so the live rows measure CPU contention as much "
            "as the schemes. Run the demo again on a quieter machine.")


def main(args: Any) -> int:
    """`sched-lab demo` (the parsed namespace from extra_cli): exit 0 ok, 1 failed, 2 bad input."""
    t0 = time.perf_counter()
    try:
        cfg = DemoConfig(out_dir=Path(args.out), schemes=tuple(s.strip() for s in args.schemes.split(",") if s.strip()),
                         engines=args.engines, tasks=args.tasks, hwm=args.hwm, load=args.load, seed=args.seed)
    except ValueError as exc:
        print(f"sched-lab demo: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run_demo(cfg, t0)
    except KeyboardInterrupt:
        print("sched-lab demo: interrupted (clusters stopped)", file=sys.stderr)
        return 130
    except Exception as exc:
        print(f"sched-lab demo: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    table = result["table"]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"\nreport: {result['report'].resolve()}  ({time.perf_counter() - t0:.0f} s)")
    return 0
