"""What a caller reading its own answers buys, paired (issue 15): one cluster, two clients, caller reads on and off.

One started sched-lab cluster (2 engines, the defaults: hwm=1, SQLite) and two clients of it: one as built (a
waiting caller reads its answers itself: real_cluster/client_link.py) and one with `SCHED_LAB_CALLER_READS=0`
(every answer read by the reader thread and handed to the caller, the path before). Blocks alternate between
them, in turn order; each block times `--roundtrips` sequential `apply_sync` of a no-op (median µs) and a burst of
`--burst` no-op `apply_async` waited for with `get` (tasks/s). Figures are medians over blocks, and the median of
the per-block ratios (on / off): pairing seconds apart keeps a shared machine's drifting load out of the ratio.

    python benchmarks/bench_caller_reads.py [--blocks 12] [--roundtrips 400] [--burst 2000]
                                            [--mode by-value|module] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from .live import time_round_trips
from .live_peers import task_functions
from .script import counts_refused, own_lab_dir, paired_parser, run_meta

VARIANTS = ("on", "off")


def _block(view: Any, fns: Any, roundtrips: int, burst: int) -> dict[str, float]:
    rt = statistics.median(time_round_trips(view.apply_sync, fns.noop, roundtrips)) * 1e6
    t = time.perf_counter()
    for ar in [view.apply_async(fns.noop) for _ in range(burst)]:
        ar.get()
    return {"rt_median_us": rt, "burst_per_s": burst / (time.perf_counter() - t)}


def measure(blocks: int, roundtrips: int, burst: int, mode: str) -> dict[str, Any]:
    from real_cluster import Client, Cluster
    from real_cluster.profile import CLIENT_FILE
    fns = task_functions(mode)
    cluster = Cluster(n=2, profile="bench-caller-reads", db="sqlite")
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    clients: list[Any] = []
    try:
        clients.append(cluster.start())
        os.environ["SCHED_LAB_CALLER_READS"] = "0"
        try:
            clients.append(Client(cluster.dir / "security" / CLIENT_FILE, timeout=10))
        finally:
            del os.environ["SCHED_LAB_CALLER_READS"]
        if not clients[0]._link.caller_reads or clients[1]._link.caller_reads:
            raise RuntimeError("caller reads are not on in one client and off in the other (TLS?)")
        views = {v: c.load_balanced_view() for v, c in zip(VARIANTS, clients)}
        for v in VARIANTS:                  # warm both (workers, function caches)
            _block(views[v], fns, 100, 200)
        for i in range(blocks):
            for v in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):
                rows[v].append(_block(views[v], fns, roundtrips, burst))
            print(f"[bench] block {i + 1}/{blocks} done", file=sys.stderr, flush=True)
        reads = clients[0]._link.reads
    finally:
        for c in clients[1:]:
            c.close()
        cluster.stop()
    keys = rows["on"][0].keys()
    medians = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in rows.items()}
    ratios = {k: statistics.median(a[k] / b[k] for a, b in zip(rows["on"], rows["off"])) for k in keys}
    return {"blocks": rows, "median": medians, "ratio_per_block_median": ratios,
            "reads_on_client": {"reader_thread": reads[0], "callers": reads[1]}}


def render(result: dict[str, Any], meta: dict[str, Any]) -> str:
    on, off, ratio = result["median"]["on"], result["median"]["off"], result["ratio_per_block_median"]
    out = [f"Caller reads on vs off ({meta['mode']} task functions), one sched-lab cluster (2 engines, hwm=1, sqlite); "
           f"medians of {meta['blocks']} alternating blocks ({meta['roundtrips']} round trips, a burst of "
           f"{meta['burst']}); load average {meta['loadavg_before']:.1f} before, {meta['loadavg_after']:.1f} after; "
           f"`{meta['command']}` on {meta['date']}.", "",
           "| what | caller reads (on) | reader thread (off) | ratio on/off, median of blocks |",
           "|---|---:|---:|---:|",
           f"| apply_sync round trip, median (µs) | {on['rt_median_us']:.0f} | {off['rt_median_us']:.0f} | "
           f"{ratio['rt_median_us']:.3f} |",
           f"| no-op burst, waited for with get (tasks/s) | {on['burst_per_s']:,.0f} | {off['burst_per_s']:,.0f} | "
           f"{ratio['burst_per_s']:.3f} |", "",
           f"Reads of the socket on the client with caller reads: {result['reads_on_client']}."]
    return "\n".join(out) + "\n"


COUNTS = {"blocks": (12, "alternating blocks per variant (medians taken)"),
          "roundtrips": (400, "sequential apply_sync per block"), "burst": (2000, "no-op tasks per block's burst")}


def main(argv: list[str] | None = None) -> int:
    args = paired_parser("bench_caller_reads", __doc__ or "", COUNTS).parse_args(argv)
    if counts_refused("bench_caller_reads", args, COUNTS):
        return 2
    load_before = os.getloadavg()[0]
    with own_lab_dir("bench-caller-reads-"):
        result = measure(args.blocks, args.roundtrips, args.burst, args.mode)
    meta = run_meta("bench_caller_reads.py", argv, load_before, mode=args.mode, blocks=args.blocks,
                    roundtrips=args.roundtrips, burst=args.burst)
    print(json.dumps({"meta": meta, **result}, indent=1) if args.json else render(result, meta))
    return 0
