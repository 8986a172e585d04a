"""Live-cluster benchmark (issues 5, 15): sched-lab vs ProcessPoolExecutor, multiprocessing.Pool, ipyparallel, Dask, Ray.

With 2 workers on this host, for every peer: the median and p99 of sequential `apply_sync` no-op
round trips; tasks/s for a burst of no-op `apply_async` (submit all, then wait for all); `map` of
100,000 items at chunksize 1 and 1,000 (items/s); 5,000 tasks sleeping 1 ms (efficiency vs 2 ideal
workers: ideal = n * measured sleep(0.001) / 2); 200 lognormal tasks with mean 10 ms, the same seeded
durations for every peer (makespan / ideal, ideal = max(sum / 2, longest)); and the CPU time of the
whole process tree (this process and every descendant: controller, engines, workers) per no-op task
of the burst (this process and the processes of the peer measured). Each figure is the median of `--runs`
runs; a ratio is the median of the per-run ratios ours / peer's. Each run starts every peer afresh and the
peers take turns workload by workload (see `bench_peers`), so the two figures of a ratio were measured
seconds apart: this machine's speed drifts by tens of % over minutes.

    python benchmarks/bench_live.py [--quick] [--runs 3] [--json] [--markdown] [--peers ppe,mp,ipyparallel,dask,ray]
    python benchmarks/bench_live.py --by-value ...     (both modes: functions imported, and defined in __main__)
    python benchmarks/bench_live.py --from-json RUN.json --markdown      (the table of a saved --json run)
    sched-lab bench ...               (the same)

Task functions are imported from sched_lab.apps.bench.tasks by every peer (module mode); with `--by-value`
every peer also runs them defined in `__main__`, as in a notebook (live_peers.py), each peer started once
per run for both modes (their order alternating run by run), and "sched-lab, no fn cache" (every call
pickled whole: the path before issue 15) joins the by-value table, so its ratio is what the function cache
buys. ipyparallel (`pip install 'sched-lab[peers]'`), Dask (`[dask]`) and Ray (`[ray]`) run when
installed and are named as skipped otherwise; their clusters are started and always stopped here. They are
slow, so their two largest workloads use fewer items (shown in the table); rates stay comparable.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import random
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any, Callable

from .live_peers import MODES, PEER_NAMES, Peer, make_peers, task_functions
from .script import own_lab_dir


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each workload does."""

    roundtrips: int = 200
    burst: int = 5000
    map_items: int = 100_000
    sleep_tasks: int = 5000
    lognormal_tasks: int = 200
    lognormal_mean_s: float = 0.010
    lognormal_sigma: float = 1.0


FULL = Sizes()
QUICK = Sizes(roundtrips=50, burst=500, map_items=5000, sleep_tasks=300, lognormal_tasks=40)

# Issue 15's goals, judged in the same run: (kind, bound). "ratio": sched-lab / ProcessPoolExecutor; "abs": the
# value itself (PPE's own value printed beside it). "≤"/"≥" by higher_is_better.
GOAL_PEER = "ProcessPoolExecutor"
OURS = "sched-lab"
Goal = tuple[str, float]

# (key, label, unit, higher_is_better, goal or None)
METRICS: list[tuple[str, str, str, bool, Goal | None]] = [
    ("rt_median_ms", "apply_sync round trip, median", "ms", False, ("ratio", 1.2)),
    ("rt_p99_ms", "apply_sync round trip, p99", "ms", False, None),
    ("burst_per_s", "no-op tasks/s, async burst", "tasks/s", True, ("ratio", 1.0)),
    ("cpu_us_per_task", "CPU per no-op task, whole process tree", "µs", False, ("ratio", 1.3)),
    ("map_c1_per_s", "map, chunksize 1", "items/s", True, None),
    ("map_c1000_per_s", "map, chunksize 1,000", "items/s", True, None),
    ("sleep_efficiency", "1 ms tasks: efficiency vs 2 ideal workers", "", True, ("abs", 0.88)),
    ("lognormal_ratio", "lognormal tasks (mean 10 ms): makespan / ideal", "", False, ("abs", 1.04)),
]


def judge(goal: Goal, higher: bool, ours: float | None, ppe: float | None, unit: str,
          ratio: float | None = None) -> tuple[str, str]:
    """(goal text, met) of one metric: met is "yes"/"no", or "—" when ProcessPoolExecutor did not run (ratio goals).
    `ratio`: the paired ratio to PPE (median of per-run ratios), else ours / ppe."""
    kind, bound = goal
    sign = "≥" if higher else "≤"
    if kind == "ratio":
        text = f"{sign} {bound:g}× PPE"
        if ours is None or not ppe:
            return text, "—"
        ratio = ours / ppe if ratio is None else ratio
        return text, "yes" if (ratio >= bound if higher else ratio <= bound) else "no"
    text = f"{sign} {bound:g}" + (f" (PPE {_fmt(ppe, unit)})" if ppe is not None else "")
    if ours is None:
        return text, "—"
    return text, "yes" if (ours >= bound if higher else ours <= bound) else "no"


# ------------------------------------------------------------------------------ CPU accounting

def descendants_cpu_s(exclude: frozenset[int] | set[int] = frozenset()) -> dict[int, float]:
    """User+system CPU seconds of each live descendant of this process, by pid (Linux /proc); the processes in
    `exclude` and their descendants are left out."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                data = fh.read()
        except OSError:
            continue
        rest = data[data.rindex(")") + 2:].split()
        pid, ppid = int(entry), int(rest[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = (int(rest[11]) + int(rest[12])) / tick
    out: dict[int, float] = {}
    todo = [pid for pid in children.get(os.getpid(), []) if pid not in exclude]
    while todo:
        pid = todo.pop()
        out[pid] = stats.get(pid, 0.0)
        todo.extend(c for c in children.get(pid, []) if c not in exclude)
    return out


def tree_cpu_s(exclude: frozenset[int] | set[int] = frozenset()) -> float:
    """User+system CPU seconds of this process and all its live descendants but `exclude`'s (Linux /proc)."""
    t = os.times()
    return t.user + t.system + sum(descendants_cpu_s(exclude).values())


# --------------------------------------------------------------------------------- workloads

def measured_sleep_s(nominal: float = 0.001, n: int = 200) -> float:
    """What `time.sleep(nominal)` really takes here (median of n)."""
    out = []
    for _ in range(n):
        t = time.perf_counter()
        time.sleep(nominal)
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def time_round_trips(apply_sync: Callable[[Callable], Any], f: Callable, n: int, warm_up: int = 20) -> list[float]:
    """Seconds of each of `n` sequential `apply_sync(f)` calls (after `warm_up` untimed ones), in call order."""
    for _ in range(warm_up):
        apply_sync(f)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        apply_sync(f)
        out.append(time.perf_counter() - t)
    return out


def time_burst(apply_async: Callable[[Callable], Any], wait_all: Callable[[list], None], f: Callable,
               n: int, exclude: frozenset[int] | set[int] = frozenset()) -> tuple[float, float]:
    """(seconds, CPU seconds of the whole process tree but `exclude`'s) to submit `n` `apply_async(f)` at once and
    wait for all."""
    cpu0, t = tree_cpu_s(exclude), time.perf_counter()
    wait_all([apply_async(f) for _ in range(n)])
    return time.perf_counter() - t, tree_cpu_s(exclude) - cpu0


def sleep_efficiency(apply_async: Callable[..., Any], wait_all: Callable[[list], None], sleep_s: Callable,
                     n: int, sleep_s_real: float) -> float:
    """`n` tasks of `sleep_s(0.001)` submitted at once on 2 workers: the ideal makespan (n x the measured sleep / 2)
    over the real one."""
    t = time.perf_counter()
    wait_all([apply_async(sleep_s, 0.001) for _ in range(n)])
    return (n * sleep_s_real / 2) / (time.perf_counter() - t)


def lognormal_durations(sizes: Sizes, seed: int) -> list[float]:
    """The seeded task lengths (seconds) every peer runs; mean `lognormal_mean_s`."""
    rng = random.Random(seed)
    mu = math.log(sizes.lognormal_mean_s) - sizes.lognormal_sigma ** 2 / 2
    return [rng.lognormvariate(mu, sizes.lognormal_sigma) for _ in range(sizes.lognormal_tasks)]


def _round_trips(peer: Peer, sizes: Sizes, fns: SimpleNamespace, ctx: dict[str, Any]) -> dict[str, float]:
    rts = sorted(time_round_trips(peer.apply_sync, fns.noop, sizes.roundtrips))
    return {"rt_median_ms": statistics.median(rts) * 1e3,
            "rt_p99_ms": rts[min(len(rts) - 1, math.ceil(0.99 * len(rts)) - 1)] * 1e3}


def _burst(peer: Peer, sizes: Sizes, fns: SimpleNamespace, ctx: dict[str, Any]) -> dict[str, float]:
    n = min(sizes.burst, peer.caps.get("burst", sizes.burst))
    dt, cpu = time_burst(peer.apply_async, peer.wait_all, fns.noop, n, ctx.get("exclude", frozenset()))
    return {"burst_per_s": n / dt, "cpu_us_per_task": cpu / n * 1e6, "burst_n": n}


def _maps(peer: Peer, sizes: Sizes, fns: SimpleNamespace, ctx: dict[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for chunksize, key in ((1, "map_c1"), (1000, "map_c1000")):
        n = min(sizes.map_items, peer.caps.get(f"map_items_c{chunksize}", sizes.map_items))
        t = time.perf_counter()
        result = peer.map(fns.ident, range(n), chunksize, fns)
        dt = time.perf_counter() - t
        if len(result) != n or result[-1] != n - 1:
            raise RuntimeError(f"{peer.name}: map returned a wrong result")
        out[f"{key}_per_s"], out[f"{key}_n"] = n / dt, n
    return out


def _sleeps(peer: Peer, sizes: Sizes, fns: SimpleNamespace, ctx: dict[str, Any]) -> dict[str, float]:
    n = min(sizes.sleep_tasks, peer.caps.get("sleep_tasks", sizes.sleep_tasks))
    return {"sleep_efficiency": sleep_efficiency(peer.apply_async, peer.wait_all, fns.sleep_s, n, ctx["sleep_s_real"]),
            "sleep_n": n}


def _lognormal(peer: Peer, sizes: Sizes, fns: SimpleNamespace, ctx: dict[str, Any]) -> dict[str, float]:
    durations = ctx["durations"]
    ideal = max(sum(durations) / 2, max(durations))
    t = time.perf_counter()
    peer.wait_all([peer.apply_async(fns.sleep_s, d) for d in durations])
    return {"lognormal_ratio": (time.perf_counter() - t) / ideal}


# The workloads, in the order each run takes them; every peer of a run takes one before the next begins.
WORKLOADS: list[Callable[[Peer, Sizes, SimpleNamespace, dict[str, Any]], dict[str, float]]] = [
    _round_trips, _burst, _maps, _sleeps, _lognormal]


def bench_peers(peers: list[Peer], sizes: Sizes, runs: int, sleep_s_real: float,
                durations: list[float], modes: tuple[str, ...] = ("module",)) -> dict[str, dict[str, Any]]:
    """Run all workloads `runs` times in each mode, each run on freshly started peers (always stopped).

    Within a run every peer is up at once and the peers take turns workload by workload (ours, theirs, theirs,
    ours, ... in an order alternating workload by workload and run by run), so each figure has its peers' figures
    beside it taken seconds apart, not minutes: this machine's speed drifts by tens of % over minutes. Before
    each turn this process collects its garbage and freezes what is left (gc.freeze), so no peer's retained
    objects are scanned in another's turn; a burst's CPU counts this process and the processes of the peer in
    its turn (others' process trees are left out). Returns {mode: {peer name: {"median": {...}, "runs": [...],
    "ratio": {peer: {...}}}}}: "ratio" (sched-lab's entry) holds, per peer, the median of the per-run ratios
    sched-lab / that peer (paired: the two figures of one run came from the same minute)."""
    fns = {mode: task_functions(mode) for mode in modes}
    ctx: dict[str, Any] = {"sleep_s_real": sleep_s_real, "durations": durations}
    raw: dict[str, dict[str, list[dict[str, float]]]] = {m: {p.name: [] for p in peers if m in p.modes} for m in modes}
    active = [p for p in peers if any(m in p.modes for m in modes)]
    for i in range(runs):
        order = modes if i % 2 == 0 else tuple(reversed(modes))
        started: list[Peer] = []
        owned: dict[str, set[int]] = {}
        rows: dict[tuple[str, str], dict[str, float]] = {}
        try:
            for peer in active:
                before = set(descendants_cpu_s())
                peer.start()            # (a start that fails cleans up after itself: the others are stopped below)
                started.append(peer)
                owned[peer.name] = set(descendants_cpu_s()) - before
            for w, work in enumerate(WORKLOADS):
                for mode in order:
                    turn = [p for p in started if mode in p.modes]
                    for peer in (turn if (i + w) % 2 == 0 else reversed(turn)):
                        ctx["exclude"] = set().union(*(owned[q.name] for q in started if q is not peer))
                        before = set(descendants_cpu_s())
                        gc.collect()
                        gc.freeze()
                        try:
                            rows.setdefault((mode, peer.name), {}).update(work(peer, sizes, fns[mode], ctx))
                        finally:
                            gc.unfreeze()
                        owned[peer.name] |= set(descendants_cpu_s(ctx["exclude"])) - before    # (started on demand)
        finally:
            for peer in started:
                peer.stop()
            gc.collect()        # the next run's clients start without this one's garbage
        for (mode, name), row in rows.items():
            raw[mode][name].append(row)
        print(f"[bench] run {i + 1}/{runs} done ({', '.join(p.name for p in started)})", file=sys.stderr, flush=True)
    return {mode: {name: _summary(name, rows, by_peer) for name, rows in by_peer.items() if rows}
            for mode, by_peer in raw.items()}


def _summary(name: str, rows: list[dict[str, float]], by_peer: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    out: dict[str, Any] = {"median": {k: statistics.median(r[k] for r in rows) for k in rows[0]}, "runs": rows}
    if name == OURS:
        out["ratio"] = {peer: {k: statistics.median(a[k] / b[k] for a, b in zip(rows, theirs) if b.get(k))
                               for k in rows[0] if any(b.get(k) for b in theirs)}
                        for peer, theirs in by_peer.items() if peer != OURS and len(theirs) == len(rows)}
    return out


# -------------------------------------------------------------------------------------- output

def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if unit in ("tasks/s", "items/s"):
        return f"{value:,.0f}"
    if unit == "µs":
        return f"{value:,.0f}"
    return f"{value:.3f}" if unit == "ms" else f"{value:.2f}"


def table_rows(results: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the comparison table (ratios are ours / peer's)."""
    peers = [p for p in results if p != "sched-lab"]
    head = ["what", "sched-lab"]
    for p in peers:
        head += [p, "ratio"]
    head += ["goal", "met"]
    ours = results["sched-lab"]["median"]
    paired = results["sched-lab"].get("ratio", {})      # medians of per-run ratios (older saved runs lack them)
    ppe = results.get(GOAL_PEER, {}).get("median", {})
    rows = []
    for key, label, unit, higher, goal in METRICS:
        name = f"{label} ({unit})" if unit else label
        n_key = {"burst_per_s": "burst_n", "map_c1_per_s": "map_c1_n", "map_c1000_per_s": "map_c1000_n",
                 "sleep_efficiency": "sleep_n"}.get(key)
        row = [name, _fmt(ours.get(key), unit)]
        for p in peers:
            theirs = results[p]["median"].get(key)
            cell = _fmt(theirs, unit)
            if n_key and results[p]["median"].get(n_key, ours.get(n_key)) != ours.get(n_key):
                cell += f" (n={results[p]['median'][n_key]:,.0f})"
            ratio = paired.get(p, {}).get(key, ours[key] / theirs if theirs else None)
            row += [cell, f"{ratio:.2f}" if ratio is not None else "—"]
        row += list(judge(goal, higher, ours.get(key), ppe.get(key), unit,
                          paired.get(GOAL_PEER, {}).get(key))) if goal else ["", ""]
        rows.append(row)
    return head, rows


MODE_TITLES = {"module": "Task functions imported from a module (every peer pickles them by reference)",
               "by-value": "Task functions defined in __main__ (shipped by value, as from a notebook)"}


def render_modes(modes: dict[str, dict[str, Any]], meta: dict[str, Any], markdown: bool) -> str:
    """One table per mode, each under its title."""
    out = []
    for mode, results in modes.items():
        title = MODE_TITLES.get(mode, mode)
        if meta.get("pinned_cpus") and not markdown:
            title += f" ({_pinned(meta)})"
        out.append(f"#### {title}\n\n{render_markdown(results, meta)}" if markdown
                   else f"{title}\n{render_text(results)}\n")
    return "\n".join(out)


def _pinned(meta: dict[str, Any]) -> str:
    return f"pinned to CPU {','.join(map(str, meta['pinned_cpus']))}"


def render_text(results: dict[str, Any]) -> str:
    head, rows = table_rows(results)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *rows]]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def render_markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    head, rows = table_rows(results)
    where = f"{_pinned(meta)} of {meta['cpus']}" if meta.get("pinned_cpus") else f"{meta['cpus']} CPUs"
    out = [f"Live cluster, 2 workers on one host ({where}, Python {meta['python']}, load average "
           f"{meta['loadavg_before']:.1f} before the run, {meta['loadavg_after']:.1f} after); medians of {meta['runs']} "
           f"runs, peers taking turns workload by workload; sched-lab hwm={meta['hwm']}, db={meta['db']}; ratio = "
           f"median of the runs' sched-lab / peer; "
           f"`{meta['command']}` on {meta['date']}.", "",
           "| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- main

def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """The benchmark's options (defined once, in demo_bench_commands, for `sched-lab bench` too)."""
    from ..demo_bench_commands import bench_options
    parser = parser or argparse.ArgumentParser(prog="bench_live", description=__doc__.splitlines()[0])
    bench_options(parser)
    parser.add_argument("--from-json", default=None, help="print the table of a saved --json run instead of running")
    return parser


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed options; returns the exit code."""
    if getattr(args, "from_json", None):
        with open(args.from_json) as fh:
            saved = json.load(fh)
        if "modes" in saved:
            print(render_modes(saved["modes"], saved["meta"], args.markdown))
        else:
            print(render_markdown(saved["results"], saved["meta"]) if args.markdown else render_text(saved["results"]))
        return 0
    sizes = QUICK if args.quick else FULL
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        print("bench: --runs must be >= 1", file=sys.stderr)
        return 2
    wanted = [p for p in (args.peers or ("ppe" if args.quick else ",".join(PEER_NAMES))).split(",") if p]
    unknown = set(wanted) - set(PEER_NAMES)
    if unknown:
        print(f"bench: unknown peers {sorted(unknown)} (choose from {', '.join(PEER_NAMES)})", file=sys.stderr)
        return 2
    cpus = getattr(args, "cpus", None)
    if cpus is not None:
        try:
            os.sched_setaffinity(0, parse_cpus(cpus))   # (inherited by every process the run starts)
        except (ValueError, OSError) as exc:
            print(f"bench: --cpus {cpus!r}: {exc}", file=sys.stderr)
            return 2
    with own_lab_dir("bench-live-"):
        return _run(args, sizes, runs, wanted)


def parse_cpus(text: str) -> set[int]:
    """`0`, `0,1`, `0-3` -> CPU numbers; ValueError naming what is wrong (the machine's own are listed)."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            lo, _, hi = part.strip().partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
    except ValueError:
        raise ValueError("a list of CPU numbers, like 0 or 0,1 or 0-1") from None
    have = os.sched_getaffinity(0)
    if not cpus or not cpus <= have:
        raise ValueError(f"CPUs this process may use: {','.join(map(str, sorted(have)))}")
    return cpus


def _run(args: argparse.Namespace, sizes: Sizes, runs: int, wanted: list[str]) -> int:
    by_value = bool(getattr(args, "by_value", False))
    peers = make_peers(wanted, args.db, args.hwm, by_value)
    load_before = os.getloadavg()[0]
    sleep_s_real = measured_sleep_s()
    durations = lognormal_durations(sizes, args.seed)
    modes = bench_peers(peers, sizes, runs, sleep_s_real, durations, MODES if by_value else ("module",))
    meta = {"command": "sched-lab bench " + " ".join(sys.argv[1:]) if "sched-lab" in sys.argv[0]
            else "python benchmarks/bench_live.py " + " ".join(sys.argv[1:]),
            "runs": runs, "sizes": asdict(sizes), "sleep_0.001_measured_s": sleep_s_real, "cpus": os.cpu_count(),
            "python": sys.version.split()[0], "date": time.strftime("%Y-%m-%d"), "hwm": args.hwm, "db": args.db,
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()[0],
            "start_method": multiprocessing.get_start_method(), "pinned_cpus": sorted(os.sched_getaffinity(0))
            if getattr(args, "cpus", None) is not None else None}
    if by_value:
        if args.json:
            print(json.dumps({"meta": meta, "modes": modes}, indent=1))
        else:
            print(render_modes(modes, meta, args.markdown))
        return 0
    results = modes["module"]
    if args.json:
        print(json.dumps({"meta": meta, "results": results}, indent=1))
    elif args.markdown:
        print(render_markdown(results, meta))
    else:
        print(render_text(results))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
