"""Actor benchmark (issue 14): sched-lab's actors vs Ray's actors, in the same run.

Three figures per peer, each the median of `--runs` runs, ratios ours / Ray's:
- round trip of one actor method call (`h.incr(1)` then wait), sequential: median and p99 ms;
- calls/s to one actor: a burst of async calls, then wait for all;
- calls/s to 8 actors over 2 engines (2 Ray CPUs): the same burst spread round-robin.
The runs are interleaved (ours, Ray, ours, Ray, ...), each starting and stopping its own cluster
(sched-lab: 2 engines, hwm 0 so 8 actors fit; Ray: `ray.init(num_cpus=2)`). Ray is an optional
peer: without it installed the table says "not installed". The actor class lives in this module,
imported by every peer's workers.

    python benchmarks/bench_actors.py [--quick] [--runs 3] [--peers sched-lab,ray] [--json PATH] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any


class BenchCounter:
    """The benchmarked actor: one integer, one method."""

    def __init__(self) -> None:
        self.n = 0

    def incr(self, by: int = 1) -> int:
        self.n += by
        return self.n


@dataclass(frozen=True, slots=True)
class Sizes:
    """How much work each workload does."""

    roundtrips: int = 300
    burst: int = 3000
    actors: int = 8


FULL = Sizes()
QUICK = Sizes(roundtrips=50, burst=400)
METRICS = [("rt_median_ms", "actor call round trip, median", "ms", False),
           ("rt_p99_ms", "actor call round trip, p99", "ms", False),
           ("one_actor_per_s", "calls/s, one actor (async burst)", "calls/s", True),
           ("eight_actors_per_s", "calls/s, 8 actors over 2 engines (async burst)", "calls/s", True)]


class OursPeer:
    name = "sched-lab"

    def __init__(self) -> None:
        self.starts = 0

    def start(self) -> None:
        from real_cluster import Cluster
        self.starts += 1
        self.cluster = Cluster(n=2, profile=f"bench-actors-{os.getpid()}-{self.starts}", hwm=0)
        rc = self.cluster.start()
        rc.wait_for_engines(2, timeout=60)
        self.view = rc.load_balanced_view()

    def stop(self) -> None:
        self.cluster.stop()

    def make(self, n: int) -> list[Any]:
        handles = [self.view.actor(BenchCounter) for _ in range(n)]
        for h in handles:
            h.incr(0).get(60)
        return handles

    @staticmethod
    def call(h: Any) -> Any:
        return h.incr(1)

    @staticmethod
    def wait(futures: list[Any]) -> list[Any]:
        return [f.get(120) for f in futures]


class RayPeer:
    name = "Ray"

    def start(self) -> None:
        import ray
        self.ray = ray
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        self.cls: Any = ray.remote(BenchCounter)

    def stop(self) -> None:
        self.ray.shutdown()

    def make(self, n: int) -> list[Any]:
        handles = [self.cls.remote() for _ in range(n)]
        self.ray.get([h.incr.remote(0) for h in handles])
        return handles

    @staticmethod
    def call(h: Any) -> Any:
        return h.incr.remote(1)

    def wait(self, futures: list[Any]) -> list[Any]:
        return self.ray.get(futures)


def measure(peer: Any, sizes: Sizes) -> dict[str, float]:
    """One run of every workload on a started peer."""
    [one] = peer.make(1)
    times = []
    for _ in range(sizes.roundtrips):
        t0 = time.perf_counter()
        peer.wait([peer.call(one)])
        times.append(time.perf_counter() - t0)
    times.sort()
    out = {"rt_median_ms": 1e3 * statistics.median(times),
           "rt_p99_ms": 1e3 * times[min(len(times) - 1, int(0.99 * len(times)))]}
    t0 = time.perf_counter()
    peer.wait([peer.call(one) for _ in range(sizes.burst)])
    out["one_actor_per_s"] = sizes.burst / (time.perf_counter() - t0)
    many = peer.make(sizes.actors)
    t0 = time.perf_counter()
    peer.wait([peer.call(many[i % len(many)]) for i in range(sizes.burst)])
    out["eight_actors_per_s"] = sizes.burst / (time.perf_counter() - t0)
    return out


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def run(sizes: Sizes, runs: int, with_ray: bool = True) -> dict[str, Any]:
    """Interleaved runs of sched-lab and (if installed and wanted) Ray; medians per figure."""
    ray_state = ("installed" if ray_available() else "not installed") if with_ray else "not run"
    peers: list[Any] = [OursPeer()] + ([RayPeer()] if ray_state == "installed" else [])
    samples: dict[str, list[dict[str, float]]] = {p.name: [] for p in peers}
    for i in range(runs):
        for peer in peers:
            print(f"run {i + 1}/{runs}: {peer.name}", file=sys.stderr)
            peer.start()
            try:
                samples[peer.name].append(measure(peer, sizes))
            finally:
                peer.stop()
    medians = {name: {k: statistics.median(s[k] for s in runs_) for k in runs_[0]} for name, runs_ in samples.items()}
    versions = {"sched-lab": "this tree"}
    if ray_state == "installed":
        import ray
        versions["Ray"] = ray.__version__
    return {"sizes": asdict(sizes), "runs": runs, "medians": medians, "samples": samples, "versions": versions,
            "ray": ray_state, "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def markdown(result: dict[str, Any]) -> str:
    """The table: our figure, Ray's, and the ratio (ours / Ray's)."""
    ours = result["medians"]["sched-lab"]
    ray = result["medians"].get("Ray")
    lines = [f"Actors: sched-lab vs Ray ({result['ray']}{', ' + result['versions']['Ray'] if ray else ''}), "
             f"medians of {result['runs']} interleaved runs, {result['cpus']} CPUs, {result['when']}; "
             f"sizes {result['sizes']}.", "",
             "| what | sched-lab | Ray | ours / Ray |", "|---|---|---|---|"]
    for key, label, unit, _ in METRICS:
        theirs = f"{ray[key]:,.2f}" if ray else result["ray"]
        ratio = f"{ours[key] / ray[key]:.2f}" if ray and ray[key] else "-"
        lines.append(f"| {label} ({unit}) | {ours[key]:,.2f} | {theirs} | {ratio} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """`python benchmarks/bench_actors.py [--quick] [--runs N] [--json PATH] [--markdown PATH]`."""
    parser = argparse.ArgumentParser(prog="bench_actors", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--runs", type=int, default=3, help="interleaved runs per peer (medians reported)")
    parser.add_argument("--peers", default="sched-lab,ray", help="comma-separated: sched-lab (always run), ray")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the whole result as JSON")
    parser.add_argument("--markdown", default=None, metavar="PATH", help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    peers = {p.strip().lower() for p in args.peers.split(",") if p.strip()}
    if not peers <= {"sched-lab", "ray"}:
        parser.error(f"unknown peers {sorted(peers - {'sched-lab', 'ray'})}: choose from sched-lab, ray")
    if "SCHED_LAB_DIR" not in os.environ:
        import tempfile
        os.environ["SCHED_LAB_DIR"] = tempfile.mkdtemp(prefix="bench-actors-")
    result = run(QUICK if args.quick else FULL, args.runs, with_ray="ray" in peers)
    table = markdown(result)
    print(table)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table)
    return 0
