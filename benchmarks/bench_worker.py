"""CPU per no-op task of one engine worker process alone (issue 15: the worker's share of bench_cpu_split).

Starts `python -m real_cluster.worker` as its nanny does (a socket pair and a TaskSlot page, no controller),
then feeds it no-op RunTask frames and reads its TaskDone answers. Two shapes per round:
`pipelined` keeps `--window` tasks in flight (a burst), `sequential` sends one and waits for its answer
(the round trip). Prints the worker's user+system CPU (from /proc) in µs per task (and the system part of it) and the
client-side round trip; medians over rounds. Only the worker's own CPU is counted, so a loaded host
changes these figures far less than wall time.

    python benchmarks/bench_worker.py [--tasks 20000] [--rounds 5] [--by-value] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from real_cluster import protocol as proto
from real_cluster.fncache import FunctionCache, strip_function
from real_cluster.messages import Heartbeat, RunTask, TaskDone, from_wire, to_wire
from real_cluster.serialize import pack_call
from real_cluster.worker_slot import TaskSlot

BY_VALUE_SOURCE = "def noop():\n    return None\n"


def _cpu_s(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of process `pid`."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(rest[11]) / tick, int(rest[12]) / tick


class Worker:
    """One worker process and our end of its socket pair."""

    def __init__(self) -> None:
        mine, theirs = socket.socketpair()
        self.slot = TaskSlot()
        self.proc = subprocess.Popen([sys.executable, "-m", "real_cluster.worker", "--fd", str(theirs.fileno()),
                                      "--slot-fd", str(self.slot.fd)], stdin=subprocess.DEVNULL,
                                     pass_fds=(theirs.fileno(), self.slot.fd), close_fds=True)
        theirs.close()
        self.sock = mine
        self.decoder = proto.FrameDecoder(proto.DEFAULT_LIMITS)
        self.scratch = bytearray(proto.RECV_CHUNK)
        self.pending: list[Any] = []
        if not isinstance(self.recv(), Heartbeat):
            raise RuntimeError("the worker did not say ready")

    def recv(self) -> Any:
        while not self.pending:
            data = proto.recv_into(self.sock, self.scratch)
            if not data:
                raise RuntimeError("the worker closed its pipe")
            self.pending.extend(from_wire(h, b) for h, b in self.decoder.feed(data))
        return self.pending.pop(0)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _payloads(by_value: bool) -> tuple[bytes, bytes]:
    """(first payload, later ones): by value, later calls name the function by digest alone (as the
    controller sends them to an engine that has it, fncache.py)."""
    if not by_value:
        from sched_lab.apps.bench.tasks import noop
        return pack_call(noop, (), {}), pack_call(noop, (), {})
    ns: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(BY_VALUE_SOURCE, "<__main__ task functions>", "exec"), ns)     # noqa: S102 - a __main__ function
    noop = ns["noop"]
    noop.__module__ = "__main__"
    full = FunctionCache().pack_call(noop, (), {})
    return full, strip_function(full)


def _round(w: Worker, payload: bytes, n: int, window: int, start: int) -> tuple[float, float, float]:
    """(µs of worker CPU per task, of which system, µs of wall per task) for `n` tasks, `window` in flight."""
    frames = [proto.encode_frame(*to_wire(RunTask(task_id=f"t{start + i}", attempt=0, payload=payload)))
              for i in range(n)]
    cpu0, t0 = _cpu_s(w.proc.pid), time.perf_counter()
    sent = done = 0
    while done < n:
        if sent < n and sent - done < window:
            k = min(n, done + window) - sent
            w.sock.sendall(b"".join(frames[sent:sent + k]))
            sent += k
        reply = w.recv()
        if not isinstance(reply, TaskDone) or reply.status != "ok":
            raise RuntimeError(f"unexpected answer {reply!r}")
        done += 1
    wall, cpu1 = time.perf_counter() - t0, _cpu_s(w.proc.pid)
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    return (user + system) / n * 1e6, system / n * 1e6, wall / n * 1e6


def measure(tasks: int, rounds: int, window: int, by_value: bool) -> dict[str, Any]:
    first, payload = _payloads(by_value)
    w = Worker()
    try:
        _round(w, first, 500, window, 0)      # warm: imports, the function cache
        rows: dict[str, list[tuple[float, float, float]]] = {"pipelined": [], "sequential": []}
        base = 500
        for _ in range(rounds):
            rows["pipelined"].append(_round(w, payload, tasks, window, base))
            base += tasks
            rows["sequential"].append(_round(w, payload, max(1, tasks // 4), 1, base))
            base += tasks
    finally:
        w.close()
    return {shape: {"worker_cpu_us_per_task": statistics.median(r[0] for r in runs),
                    "worker_sys_us_per_task": statistics.median(r[1] for r in runs),
                    "wall_us_per_task": statistics.median(r[2] for r in runs)} for shape, runs in rows.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_worker", description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", type=int, default=20_000, help="tasks per pipelined round (a quarter of it sequential)")
    p.add_argument("--rounds", type=int, default=5, help="rounds; medians are printed (default 5)")
    p.add_argument("--window", type=int, default=64, help="tasks in flight in the pipelined shape (default 64)")
    p.add_argument("--by-value", action="store_true", help="the function defined in __main__ (framed, cached)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    if args.tasks < 4 or args.rounds < 1 or args.window < 1:
        p.error("--tasks must be at least 4, --rounds and --window at least 1")
    result = measure(args.tasks, args.rounds, args.window, args.by_value)
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    print(f"{'no-op task':<14}{'worker CPU µs':>16}{'of it system':>14}{'wall µs':>12}")
    for shape, row in result.items():
        print(f"{shape:<14}{row['worker_cpu_us_per_task']:>16.1f}{row['worker_sys_us_per_task']:>14.1f}"
              f"{row['wall_us_per_task']:>12.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
