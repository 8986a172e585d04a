"""Where a round trip and the dispatch gap go (issue 15): per-step timestamps of a live cluster, one host.

Starts a real cluster (2 engines, hwm=1, SQLite) with the worker's trace on (`real_cluster.worker.TRACE_ENV`:
each worker appends `task_id event time_ns` lines), wraps the client's own steps in this process, and reads the
controller's `received` stamp from each task's metadata (µs). Every clock is CLOCK_REALTIME of one host.

Round trip (sequential `apply_sync` of a no-op), median µs per part:
  client pack+write   apply_async called -> the Submit's sendall returned
  -> worker wake      sendall returned -> the worker's epoll wait returned (controller inbound + both kernels)
  worker read+decode  wake -> RunTask decoded
  worker pre-call     decoded -> the user function called (slot page, capture, unpack, namespace, deps)
  user function       call -> return
  worker post-call    return -> TaskDone's sendall returned (pack result, output checks, frame, write)
  -> ctl received     worker wrote -> controller's `received` stamp
  ctl -> client read  received -> the client's reader thread has the bytes (recv returned)
  client decode       recv returned -> `_on_result` entered (frame decode, message build)
  client resolve      `_on_result` -> the AsyncResult resolved
  client wake         resolved -> `get()` returned in the waiting thread
Dispatch gap (1 ms sleep tasks, hwm=1, per engine): the worker's TaskDone written -> its next wake, split at the
controller's `received` stamp of the finished task; plus the worker's own decode/pre-call of the next task. Then
the whole gap (return -> next call) by phase, mean and median: while the client is still submitting the tasks (the
controller takes submissions and results in turn, on two cores shared with the submitting client) and after. The
1 ms efficiency of bench_live.py follows the mean, not the median.
No-op burst (`--burst N` tasks submitted at once, hwm=1), split at the moment the client's last `apply_async`
returned: the tasks that ended in each phase, their rate, and each engine's hop (its TaskDone written -> its next
wake: the controller's turnaround with both wake-ups), mean and median. While the client submits, the two cores
are shared by the submitting client, the controller taking submissions and results in turn, and the workers;
after, the rate is what the hop allows. ProcessPoolExecutor (2 workers) runs the same burst after the cluster has
stopped, split the same way by what its client saw done when its last `submit` returned.

    python benchmarks/bench_gap.py [--n 300] [--sleep-tasks 1000] [--burst 5000] [--by-value] [--json]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from typing import Any, Callable

from .script import own_lab_dir
from .live_peers import task_functions

RT_PARTS = [("client pack+write", "c_call", "c_sent"), ("-> worker wake", "c_sent", "w_wake"),
            ("worker read+decode", "w_wake", "w_decoded"), ("worker pre-call", "w_decoded", "w_call"),
            ("user function", "w_call", "w_return"), ("worker post-call", "w_return", "w_sent"),
            ("-> ctl received", "w_sent", "ctl_received"), ("ctl -> client read", "ctl_received", "c_read"),
            ("client decode", "c_read", "c_msg"), ("client resolve", "c_msg", "c_resolved"),
            ("client wake", "c_resolved", "c_back"), ("TOTAL", "c_call", "c_back")]


class _ClientTrace:
    """Wraps the client's steps in this process (the reader thread's recv, `_on_result`, the link's writes)."""

    def __init__(self) -> None:
        self.ev: dict[str, dict[str, int]] = defaultdict(dict)
        self.last_read = 0
        self.current = ""

    def install(self) -> None:
        from real_cluster import client as client_mod
        from real_cluster import client_link, protocol
        tr = self
        orig_recv, orig_send, orig_result = protocol.recv_into, client_link.ClientLink.send_frame, \
            client_mod.Client._on_result

        def recv_into(sock: Any, scratch: bytearray, flags: int = 0) -> memoryview:
            out = orig_recv(sock, scratch, flags)
            tr.last_read = time.time_ns()
            return out

        def send_frame(self: Any, frame: bytes) -> None:
            orig_send(self, frame)
            if tr.current:
                tr.ev[tr.current].setdefault("c_sent", time.time_ns())

        def on_result(self: Any, msg: Any) -> None:
            ev = tr.ev[msg.task_id]
            ev["c_read"], ev["c_msg"] = tr.last_read, time.time_ns()
            orig_result(self, msg)
            ev["c_resolved"] = time.time_ns()

        protocol.recv_into = recv_into
        client_link.ClientLink.send_frame = send_frame
        client_mod.Client._on_result = on_result


def _worker_events(trace_dir: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for path in glob.glob(os.path.join(trace_dir, "worker-*.trace")):
        pid = os.path.basename(path).split("-")[1].split(".")[0]
        with open(path) as fh:
            for line in fh:
                tid, event, ns = line.split()
                out[tid][event] = int(ns)
                out[tid]["pid"] = pid
    return out


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _burst_phases(w: dict[str, dict[str, Any]], ids: list[str], start: int, submitted: int, end: int
                  ) -> dict[str, dict[str, float]]:
    """The burst's tasks and engine hops by phase (before/after `submitted`, ns), from the workers' traces."""
    by_pid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for tid in ids:
        ev = w.get(tid)
        if ev and "w_wake" in ev and "w_sent" in ev:
            by_pid[ev["pid"]].append(ev)
    ended: dict[str, int] = {"while submitting": 0, "after": 0}
    hops: dict[str, list[float]] = {"while submitting": [], "after": []}
    for evs in by_pid.values():
        evs.sort(key=lambda e: e["w_wake"])
        for ev in evs:
            ended["while submitting" if ev["w_sent"] < submitted else "after"] += 1
        for prev, nxt in zip(evs, evs[1:]):
            phase = "while submitting" if prev["w_sent"] < submitted else "after"
            hops[phase].append((nxt["w_wake"] - prev["w_sent"]) / 1e3)
    spans = {"while submitting": (submitted - start) / 1e9, "after": (end - submitted) / 1e9}
    return {k: {"tasks": ended[k], "seconds": spans[k], "tasks_per_s": ended[k] / spans[k] if spans[k] > 0 else 0.0,
                "hops": len(hops[k]), "hop_mean": statistics.mean(hops[k]) if hops[k] else float("nan"),
                "hop_median": _med(hops[k])} for k in ended}


def _timed_burst(submit: Callable[[], Any], done: Callable[[Any], bool], wait: Callable[[Any], Any], n: int
                 ) -> tuple[list[Any], int, int, int, int]:
    """Submit `n` tasks at once and wait for all: (their handles, start, last submission returned, how many were
    done then, end), times in ns."""
    start = time.time_ns()
    handles = [submit() for _ in range(n)]
    submitted = time.time_ns()
    early = sum(map(done, handles))
    for h in handles:
        wait(h)
    return handles, start, submitted, early, time.time_ns()


def _ppe_burst(burst: int, fns: Any) -> dict[str, Any]:
    """ProcessPoolExecutor's burst of `burst` no-op tasks, split at its last `submit` (after a warm-up)."""
    import concurrent.futures as cf
    with cf.ProcessPoolExecutor(2) as pool:
        for f in [pool.submit(fns.noop) for _ in range(min(burst, 1000))]:
            f.result()
        _, *times = _timed_burst(lambda: pool.submit(fns.noop), cf.Future.done, cf.Future.result, burst)
    start, submitted, early, end = times
    return _split(burst, early, start, submitted, end)


def _split(burst: int, early: int, start: int, submitted: int, end: int) -> dict[str, Any]:
    """A burst's tasks done by the last submission's return (as its client saw) and after, with their rates."""
    spans = ((submitted - start) / 1e9, (end - submitted) / 1e9)
    return {"tasks_per_s": burst / ((end - start) / 1e9),
            "while submitting": {"tasks": early, "seconds": spans[0], "tasks_per_s": early / spans[0]},
            "after": {"tasks": burst - early, "seconds": spans[1],
                      "tasks_per_s": (burst - early) / spans[1] if spans[1] > 0 else 0.0}}


def measure(n: int, sleep_tasks: int, mode: str, burst: int = 0) -> dict[str, Any]:
    from real_cluster import Cluster
    trace_dir = tempfile.mkdtemp(prefix="bench-gap-")
    os.environ["SCHED_LAB_TRACE_DIR"] = trace_dir
    ct = _ClientTrace()
    ct.install()
    fns = task_functions(mode)
    cluster = Cluster(n=2, profile=f"bench-gap-{os.getpid()}", hwm=1,    # (the steps of a task sent to its worker:
                      controller_args=["--no-pull"])                      # none is taken from the staging socket)
    client = cluster.start()
    try:
        view = client.load_balanced_view()
        for _ in range(50):
            view.apply_sync(fns.noop)
        rt_ids = []
        for _ in range(n):
            t0 = time.time_ns()
            ct.current = "?"
            ar = view.apply_async(fns.noop)
            tid = ar.msg_ids[0]
            ct.ev[tid]["c_sent"] = ct.ev.pop("?")["c_sent"]
            ct.current = ""
            ar.get()
            ct.ev[tid]["c_back"] = time.time_ns()
            ct.ev[tid]["c_call"] = t0
            rt_ids.append(tid)
        ars = [view.apply_async(fns.sleep_s, 0.001) for _ in range(sleep_tasks)]
        submitted_ns = time.time_ns()
        for ar in ars:
            ar.get()
        sleep_ids = [ar.msg_ids[0] for ar in ars]
        burst_ids: list[str] = []
        if burst:
            ars, burst_start, burst_submitted, burst_early, burst_end = _timed_burst(
                lambda: view.apply_async(fns.noop), lambda ar: ar.ready(), lambda ar: ar.get(), burst)
            burst_ids = [ar.msg_ids[0] for ar in ars]
        received = {tid: client.metadata[tid]["received"].timestamp() for tid in rt_ids + sleep_ids}
    finally:
        cluster.stop()
        del os.environ["SCHED_LAB_TRACE_DIR"]
    w = _worker_events(trace_dir)
    rows: dict[str, list[float]] = defaultdict(list)
    for tid in rt_ids:
        ev = dict(ct.ev[tid], **w.get(tid, {}))
        ev["ctl_received"] = int(received[tid] * 1e9)
        for name, a, b in RT_PARTS:
            if a in ev and b in ev:
                rows[name].append((ev[b] - ev[a]) / 1e3)
    round_trip = {name: _med(rows[name]) for name, _, _ in RT_PARTS}
    gap_rows: dict[str, list[float]] = defaultdict(list)
    by_pid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    phases: dict[str, list[float]] = {"while submitting": [], "after": []}
    for tid in sleep_ids:
        ev = w.get(tid)
        if ev and "w_wake" in ev and "w_sent" in ev:
            by_pid[ev["pid"]].append(dict(ev, ctl_received=int(received[tid] * 1e9)))
    for evs in by_pid.values():
        evs.sort(key=lambda e: e["w_wake"])
        for prev, nxt in zip(evs, evs[1:]):
            gap_rows["worker wrote -> ctl received"].append((prev["ctl_received"] - prev["w_sent"]) / 1e3)
            gap_rows["ctl received -> worker wake"].append((nxt["w_wake"] - prev["ctl_received"]) / 1e3)
            gap_rows["worker read+decode"].append((nxt["w_decoded"] - nxt["w_wake"]) / 1e3)
            gap_rows["worker pre-call"].append((nxt["w_call"] - nxt["w_decoded"]) / 1e3)
            gap_rows["worker post-call (prev)"].append((prev["w_sent"] - prev["w_return"]) / 1e3)
            between = (nxt["w_call"] - prev["w_return"]) / 1e3
            gap_rows["GAP return -> next call"].append(between)
            gap_rows["sleep(1 ms) call"].append((prev["w_return"] - prev["w_call"]) / 1e3)
            phases["while submitting" if prev["w_return"] < submitted_ns else "after"].append(between)
    gap = {k: _med(v) for k, v in gap_rows.items()}
    by_phase = {k: {"n": len(v), "mean": statistics.mean(v), "median": _med(v)} for k, v in phases.items() if v}
    result = {"mode": mode, "n": n, "sleep_tasks": sleep_tasks, "round_trip_us": round_trip, "gap_us": gap,
              "gap_by_phase_us": by_phase, "burst": burst, "loadavg": os.getloadavg()[0]}
    if burst:
        result["burst_by_phase"] = _burst_phases(w, burst_ids, burst_start, burst_submitted, burst_end)
        result["burst_seen"] = _split(burst, burst_early, burst_start, burst_submitted, burst_end)
        result["burst_ppe"] = _ppe_burst(burst, fns)
    return result


def render(result: dict[str, Any]) -> str:
    out = [f"mode {result['mode']}: round trip of a no-op (median µs of {result['n']}), load {result['loadavg']:.1f}"]
    out += [f"  {k:28s} {v:8.1f}" for k, v in result["round_trip_us"].items()]
    out.append(f"dispatch gap, 1 ms tasks at hwm=1 (median µs over {result['sleep_tasks']} tasks)")
    out += [f"  {k:28s} {v:8.1f}" for k, v in result["gap_us"].items()]
    out.append("the gap (return -> next call) by phase, µs")
    out += [f"  {k:28s} mean {v['mean']:7.1f}  median {v['median']:7.1f}  ({v['n']} gaps)"
            for k, v in result["gap_by_phase_us"].items()]
    if result.get("burst"):
        ours, ppe = result["burst_seen"], result["burst_ppe"]
        ratio = ours["tasks_per_s"] / ppe["tasks_per_s"]
        out.append(f"no-op burst of {result['burst']} at hwm=1: {ours['tasks_per_s']:,.0f} tasks/s, "
                   f"ProcessPoolExecutor {ppe['tasks_per_s']:,.0f} (ratio {ratio:.2f}); by phase, as each client saw")
        for k in ("while submitting", "after"):
            a, b = ours[k], ppe[k]
            out.append(f"  {k:18s} ours {a['tasks']:5d} in {a['seconds'] * 1e3:5.0f} ms = {a['tasks_per_s']:6,.0f}/s"
                       f"   PPE {b['tasks']:5d} in {b['seconds'] * 1e3:5.0f} ms = {b['tasks_per_s']:6,.0f}/s")
        out.append("  engine hop (TaskDone written -> next wake), from the workers' traces:")
        out += [f"  {k:18s} mean {v['hop_mean']:6.1f}  median {v['hop_median']:6.1f} µs ({v['hops']} hops)"
                for k, v in result["burst_by_phase"].items()]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_gap", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="sequential round trips")
    parser.add_argument("--sleep-tasks", type=int, default=1000, help="1 ms tasks for the dispatch gap")
    parser.add_argument("--burst", type=int, default=5000, help="no-op tasks submitted at once (0: none)")
    parser.add_argument("--by-value", action="store_true", help="task functions defined in __main__")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.burst < 0:
        parser.error("--burst must be 0 or more")
    with own_lab_dir("bench-gap-"):
        result = measure(args.n, args.sleep_tasks, "by-value" if args.by_value else "module", args.burst)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
