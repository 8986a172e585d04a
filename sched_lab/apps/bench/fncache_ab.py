"""What the function cache buys, paired (issue 15): the same cluster, cache on and off in alternation.

A by-value task function (defined in `__main__`; `--mode module`: imported, pickled by reference, to
check that module functions lose nothing) runs on one started sched-lab cluster (2 engines,
the defaults: hwm=1, SQLite). Each round measures, with the client's function cache on and then off
(off = every call pickled whole, the path before issue 15; the order alternates round by round):
a burst of no-op `apply_async` (tasks/s and CPU µs per task of the whole process tree), sequential
`apply_sync` round trips (median ms), and the client's own time to pack one call (µs). Pairing on one
cluster, seconds apart, keeps a shared machine's drifting load out of the ratio; figures are medians
over rounds, ratio = on / off.

    python benchmarks/bench_fncache.py [--rounds 7] [--burst 2000] [--roundtrips 200] [--mode by-value|module] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import timeit
from typing import Any

from .live import time_burst, time_round_trips
from .live_peers import task_functions
from .script import counts_refused, own_lab_dir, paired_parser, run_meta


def _round(view: Any, fns: Any, burst: int, roundtrips: int) -> dict[str, float]:
    rts = time_round_trips(view.apply_sync, fns.noop, roundtrips)
    dt, cpu = time_burst(view.apply_async, lambda ars: [ar.get() for ar in ars], fns.noop, burst)
    pack = view.client.functions
    pack_us = min(timeit.repeat(lambda: pack.pack_call(fns.sleep_s, (0.001,), {}), number=2000, repeat=3)) / 2000 * 1e6
    return {"rt_median_ms": statistics.median(rts) * 1e3, "burst_per_s": burst / dt,
            "cpu_us_per_task": cpu / burst * 1e6, "pack_us": pack_us}


def measure(rounds: int, burst: int, roundtrips: int, mode: str = "by-value") -> dict[str, Any]:
    """{"on": [...], "off": [...]} of per-round figures, and their medians."""
    from real_cluster import Cluster
    from real_cluster.fncache import FunctionCache
    fns = task_functions(mode)
    cluster = Cluster(n=2, profile="bench-fncache", db="sqlite")
    rows: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    try:
        client = cluster.start()
        view = client.load_balanced_view()
        caches = {"on": client.functions, "off": FunctionCache(max_bytes=0)}
        for i in range(rounds):
            for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):
                client.functions = caches[mode]
                rows[mode].append(_round(view, fns, burst, roundtrips))
            print(f"[bench] round {i + 1}/{rounds} done", file=sys.stderr, flush=True)
        client.functions = caches["on"]
        stats = client.function_stats()            # per engine, and the cache-on client's counters
    finally:
        cluster.stop()
    medians = {m: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for m, rs in rows.items()}
    return {"rounds": rows, "median": medians, "function_stats": {str(k): v for k, v in stats.items()}}


LABELS = (("rt_median_ms", "apply_sync round trip, median (ms)", "{:.3f}"),
          ("burst_per_s", "no-op tasks/s, async burst", "{:,.0f}"),
          ("cpu_us_per_task", "CPU per no-op task, whole process tree (µs)", "{:,.0f}"),
          ("pack_us", "client: pack one call of the task function (µs)", "{:.1f}"))


def render(result: dict[str, Any], meta: dict[str, Any]) -> str:
    on, off = result["median"]["on"], result["median"]["off"]
    what = "by-value task functions" if meta.get("mode", "by-value") == "by-value" else "task functions imported from a module"
    out = [f"Function cache on vs off, {what}, one sched-lab cluster (2 engines, hwm=1, sqlite); "
           f"medians of {meta['rounds']} paired rounds (burst {meta['burst']}, {meta['roundtrips']} round trips); "
           f"load average {meta['loadavg_before']:.1f} before, {meta['loadavg_after']:.1f} after; "
           f"`{meta['command']}` on {meta['date']}.", "",
           "| what | cache on | cache off (before issue 15) | ratio on/off |", "|---|---:|---:|---:|"]
    for key, label, fmt in LABELS:
        ratio = f"{on[key] / off[key]:.2f}" if off[key] else "n/a"     # (CPU in clock ticks: a short run may take none)
        out.append(f"| {label} | {fmt.format(on[key])} | {fmt.format(off[key])} | {ratio} |")
    return "\n".join(out) + "\n"


COUNTS = {"rounds": (7, "paired rounds (median taken)"), "burst": (2000, "no-op tasks per burst"),
          "roundtrips": (200, "sequential apply_sync per round")}


def main(argv: list[str] | None = None) -> int:
    args = paired_parser("bench_fncache", __doc__ or "", COUNTS).parse_args(argv)
    if counts_refused("bench_fncache", args, COUNTS):
        return 2
    with own_lab_dir("bench-fncache-"):
        load_before = os.getloadavg()[0]
        result = measure(args.rounds, args.burst, args.roundtrips, args.mode)
    meta = run_meta("bench_fncache.py", argv, load_before, mode=args.mode, rounds=args.rounds, burst=args.burst,
                    roundtrips=args.roundtrips)
    print(json.dumps({"meta": meta, **result}, indent=1) if args.json else render(result, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
