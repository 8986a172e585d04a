"""What a client's way of waiting buys, paired (issue 15): one cluster, two clients, a client setting on and off.

One started sched-lab cluster (2 engines, the defaults: hwm=1, SQLite) and two clients of it: one as built and one
with the `--toggle` turned off in its environment: `caller-reads` (`SCHED_LAB_CALLER_READS=0`: every answer read
by the reader thread and handed to the caller, the path before a waiting caller read its own answers) or `spin`
(`SCHED_LAB_CLIENT_SPIN_US=0`: a caller waiting for its only task sleeps at once instead of polling first; both
real_cluster/client_link.py). Blocks alternate between them, in turn order; each block times `--roundtrips`
sequential `apply_sync` of a no-op (median µs, and the CPU per round trip of the client process and of the
cluster's) and a burst of `--burst` no-op `apply_async` waited for with `get` (tasks/s). Figures are medians over
blocks, and the median of the per-block ratios (on / off): pairing seconds apart keeps a shared machine's drifting
load out of the ratio.

    python benchmarks/bench_caller_reads.py [--toggle caller-reads|spin] [--blocks 12] [--roundtrips 400]
                                            [--burst 2000] [--mode by-value|module] [--json]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

from .live import descendants_cpu_s, time_round_trips
from .live_peers import task_functions
from .script import counts_refused, own_lab_dir, paired_parser, run_meta

VARIANTS = ("on", "off")
TOGGLES = {"caller-reads": "SCHED_LAB_CALLER_READS", "spin": "SCHED_LAB_CLIENT_SPIN_US"}    # (each: "0" is off)


def _is_on(toggle: str, client: Any) -> bool:
    return client._link.caller_reads if toggle == "caller-reads" else client._link.spin_s > 0


def _block(view: Any, fns: Any, roundtrips: int, burst: int) -> dict[str, float]:
    client0, cluster0 = time.process_time(), sum(descendants_cpu_s().values())
    rt = statistics.median(time_round_trips(view.apply_sync, fns.noop, roundtrips)) * 1e6
    n = roundtrips + 20                     # (time_round_trips' warm-up calls included)
    client_us = (time.process_time() - client0) / n * 1e6
    cluster_us = (sum(descendants_cpu_s().values()) - cluster0) / n * 1e6
    t = time.perf_counter()
    for ar in [view.apply_async(fns.noop) for _ in range(burst)]:
        ar.get()
    return {"rt_median_us": rt, "client_cpu_rt_us": client_us, "cluster_cpu_rt_us": cluster_us,
            "burst_per_s": burst / (time.perf_counter() - t)}


def measure(blocks: int, roundtrips: int, burst: int, mode: str, toggle: str = "caller-reads") -> dict[str, Any]:
    from real_cluster import Client, Cluster
    from real_cluster.profile import CLIENT_FILE
    fns = task_functions(mode)
    cluster = Cluster(n=2, profile="bench-caller-reads", db="sqlite")
    rows: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    clients: list[Any] = []
    try:
        clients.append(cluster.start())
        env = TOGGLES[toggle]
        old = os.environ.pop(env, None)
        os.environ[env] = "0"
        try:
            clients.append(Client(cluster.dir / "security" / CLIENT_FILE, timeout=10))
        finally:
            del os.environ[env]
            if old is not None:
                os.environ[env] = old
        if not _is_on(toggle, clients[0]) or _is_on(toggle, clients[1]):
            raise RuntimeError(f"{toggle} is not on in one client and off in the other (TLS? {env} set? one CPU?)")
        views = {v: c.load_balanced_view() for v, c in zip(VARIANTS, clients)}
        for v in VARIANTS:                  # warm both (workers, function caches)
            _block(views[v], fns, 100, 200)
        for i in range(blocks):
            for v in (VARIANTS if i % 2 == 0 else VARIANTS[::-1]):
                rows[v].append(_block(views[v], fns, roundtrips, burst))
            print(f"[bench] block {i + 1}/{blocks} done", file=sys.stderr, flush=True)
        reads, spins = clients[0]._link.reads, clients[0]._link.spins
    finally:
        for c in clients[1:]:
            c.close()
        cluster.stop()
    keys = rows["on"][0].keys()
    medians = {v: {k: statistics.median(r[k] for r in rs) for k in keys} for v, rs in rows.items()}
    pairs = {k: [a[k] / b[k] for a, b in zip(rows["on"], rows["off"]) if b[k] > 0] for k in keys}
    ratios = {k: statistics.median(r) if r else None for k, r in pairs.items()}     # (CPU comes in clock ticks: a
    # short block may show none)
    return {"blocks": rows, "median": medians, "ratio_per_block_median": ratios,
            "reads_on_client": {"reader_thread": reads[0], "callers": reads[1]},
            "polls_on_client": {"answered": spins[0], "ran_out": spins[1]}}


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render(result: dict[str, Any], meta: dict[str, Any]) -> str:
    on, off, ratio = result["median"]["on"], result["median"]["off"], result["ratio_per_block_median"]
    toggle = meta.get("toggle", "caller-reads")
    out = [f"{toggle} on vs off ({meta['mode']} task functions), one sched-lab cluster (2 engines, hwm=1, sqlite); "
           f"medians of {meta['blocks']} alternating blocks ({meta['roundtrips']} round trips, a burst of "
           f"{meta['burst']}); load average {meta['loadavg_before']:.1f} before, {meta['loadavg_after']:.1f} after; "
           f"`{meta['command']}` on {meta['date']}.", "",
           f"| what | {toggle} on | off ({TOGGLES[toggle]}=0) | ratio on/off, median of blocks |",
           "|---|---:|---:|---:|",
           f"| apply_sync round trip, median (µs) | {on['rt_median_us']:.0f} | {off['rt_median_us']:.0f} | "
           f"{_ratio(ratio['rt_median_us'])} |",
           *(f"| {what} | {on[k]:.0f} | {off[k]:.0f} | {_ratio(ratio[k])} |" for k, what in
             (("client_cpu_rt_us", "CPU per round trip, client (µs)"),
              ("cluster_cpu_rt_us", "CPU per round trip, cluster (µs)")) if k in on),
           f"| no-op burst, waited for with get (tasks/s) | {on['burst_per_s']:,.0f} | {off['burst_per_s']:,.0f} | "
           f"{_ratio(ratio['burst_per_s'])} |", "",
           f"On the client with {toggle} on: reads of the socket {result['reads_on_client']}, its waits' polls "
           f"{result.get('polls_on_client')}."]
    return "\n".join(out) + "\n"


COUNTS = {"blocks": (12, "alternating blocks per variant (medians taken)"),
          "roundtrips": (400, "sequential apply_sync per block"), "burst": (2000, "no-op tasks per block's burst")}


def main(argv: list[str] | None = None) -> int:
    parser = paired_parser("bench_caller_reads", __doc__ or "", COUNTS)
    parser.add_argument("--toggle", choices=tuple(TOGGLES), default="caller-reads",
                        help="the client setting the second client has off (default caller-reads)")
    args = parser.parse_args(argv)
    if counts_refused("bench_caller_reads", args, COUNTS):
        return 2
    load_before = os.getloadavg()[0]
    with own_lab_dir("bench-caller-reads-"):
        result = measure(args.blocks, args.roundtrips, args.burst, args.mode, args.toggle)
    meta = run_meta("bench_caller_reads.py", argv, load_before, mode=args.mode, toggle=args.toggle,
                    blocks=args.blocks, roundtrips=args.roundtrips, burst=args.burst)
    print(json.dumps({"meta": meta, **result}, indent=1) if args.json else render(result, meta))
    return 0
