"""What the machine allows (issue 15): bare message relays beside ProcessPoolExecutor and sched-lab, one run.

How this works. Issue 15 asks for a round trip within 1.2x of ProcessPoolExecutor's and 1 ms tasks at 0.88
efficiency with hwm=1 and durable answers. This measures the floor of each shape that could carry a task,
with no work in it at all: forked processes passing fixed 64-byte messages over Unix socket pairs, each
process a blocking epoll loop (the cheapest a Python process can wait), nothing parsed or pickled.
  direct, 2 hops       the client sends to a worker and reads its answer (what a pool's shape allows)
  relay, 4 hops        client -> relay -> worker -> relay -> client: a controller that does nothing
  relay on uvloop      the same relay as an asyncio Protocol on uvloop (the controller's loop, no work)
  relay + commit       the blocking relay committing one SQLite row (WAL, synchronous=NORMAL) before each
                       answer it forwards: the cheapest durable answer
  relay, pull          the relay at hwm=1 still, but while no worker is idle it puts the head of its queue
  relay + commit, pull (up to one task a worker) in a datagram socket the workers share: a worker that answers
                       takes its next task from there before it sleeps, so the relay is off its path between
                       two tasks (each answer says whether it took one; see `_Staging`)
Each is timed on sequential round trips of a no-op, on `--sleep-tasks` tasks that sleep 1 ms and on a burst of
`--burst` no-op tasks, each batch sent at once to 2 workers that take one at a time (hwm=1: the relay, or the
direct client, hands a worker its next task when its answer arrives). A burst is timed for its rate and for the
CPU of the whole process tree a task. ProcessPoolExecutor(2) and a 2-engine sched-lab cluster (hwm=1, SQLite,
module functions) run the same workloads in the same run; runs are interleaved and each figure is the median
over `--runs` runs of that run's median (round trip), efficiency (n x measured sleep / 2 / makespan), rate or
CPU a task.

    python benchmarks/bench_floor.py [--runs 3] [--round-trips 2000] [--sleep-tasks 2000] [--burst 10000]
                                     [--no-ours] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import select
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import deque
from typing import Any, Callable

from .live import measured_sleep_s, tree_cpu_s
from .live_peers import Ours, Peer, Pool, task_functions

MSG = 64
NOOP, SLEEP, QUIT = b"n" * MSG, b"s" * MSG, b"q" * MSG
TOOK, IDLE = b"t", b"i"         # the last byte of a pulling worker's answer: it took its next task, or not


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = sock.recv(n - len(data))
        if not more:
            raise ConnectionError("peer closed")
        data += more
    return data


def _worker(sock: socket.socket, shared: socket.socket | None = None) -> None:
    """Answer each message with itself, after sleeping 1 ms for a SLEEP; stop at QUIT or EOF. With `shared` (the
    datagram socket pulling workers share), take the next task from it (without waiting) before answering: the
    answer's last byte says which (TOOK, IDLE), and a worker that took one runs it before it waits again."""
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN)
    if shared is not None:
        shared.setblocking(False)
    taken = None
    while True:
        if taken is None:
            ep.poll()
            try:
                msg = _recv_exact(sock, MSG)
            except ConnectionError:
                return
            if msg == QUIT:
                return
        else:
            msg = taken
        if msg == SLEEP:
            time.sleep(0.001)
        if shared is None:
            sock.sendall(msg)
            continue
        try:
            taken = shared.recv(MSG)
        except BlockingIOError:
            taken = None
        sock.sendall(msg[:-1] + (IDLE if taken is None else TOOK))


class _Dispatch:
    """hwm=1 hand-out to workers: a queue of task messages, the idle workers, one task per worker at a time."""

    def __init__(self, workers: list[Any], send: Callable[[Any, bytes], None]):
        self.queue: deque[bytes] = deque()
        self.idle = list(workers)
        self.send = send

    def add(self, data: bytes) -> None:
        self.queue.extend(data[i:i + MSG] for i in range(0, len(data), MSG))
        self.pump()

    def done(self, worker: Any) -> None:
        self.idle.append(worker)
        self.pump()

    def pump(self) -> None:
        while self.queue and self.idle:
            self.send(self.idle.pop(), self.queue.popleft())


class _Staging(_Dispatch):
    """`_Dispatch` that also stages: while no worker is idle, up to `depth` queued tasks wait in the shared datagram
    socket (`stage` writes it, `unstage` reads it) for the first worker that answers. A task is on at most one worker
    at a time still; a staged one is on none. When a worker goes idle with tasks staged, the relay reads them back
    to the head of its queue (a worker that took one meanwhile says so in its answer), so none waits on an idle
    worker."""

    def __init__(self, workers: list[Any], send: Callable[[Any, bytes], None], stage: socket.socket,
                 unstage: socket.socket, depth: int):
        super().__init__(workers, send)
        self.stage, self.unstage, self.depth, self.staged = stage, unstage, depth, 0
        unstage.setblocking(False)

    def answered(self, worker: Any, answer: bytes) -> None:
        if answer[-1:] == TOOK:
            self.staged -= 1
            self.pump()
            return
        back = []
        while len(back) < self.staged:
            try:
                back.append(self.unstage.recv(MSG))
            except BlockingIOError:
                break
        self.staged -= len(back)
        self.queue.extendleft(reversed(back))
        self.done(worker)

    def pump(self) -> None:
        super().pump()
        while self.queue and not self.idle and self.staged < self.depth:
            self.stage.send(self.queue.popleft())
            self.staged += 1


def _relay(client: socket.socket, workers: list[socket.socket], db_path: str | None,
           shared: tuple[socket.socket, socket.socket] | None = None) -> None:
    """The blocking relay: epoll over the client and the workers; with `db_path`, one commit per answer; with
    `shared` (its write end, read end), staging for pulling workers."""
    db = None
    if db_path is not None:
        db = sqlite3.connect(db_path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, status TEXT)")
    by_fd = {w.fileno(): w for w in workers}
    ep = select.epoll()
    for s in (client, *workers):
        ep.register(s.fileno(), select.EPOLLIN)
    send = lambda w, m: w.sendall(m)                                        # noqa: E731
    hand_out = _Dispatch(workers, send) if shared is None else _Staging(workers, send, *shared, len(workers))
    buf, n = b"", 0
    while True:
        for fd, _ in ep.poll():
            if fd == client.fileno():
                data = client.recv(1 << 16)
                if not data:
                    return
                buf += data
                whole = len(buf) - len(buf) % MSG
                if QUIT in buf[:whole]:
                    for w in workers:
                        w.sendall(QUIT)
                    return
                hand_out.add(buf[:whole])
                buf = buf[whole:]
            else:
                w = by_fd[fd]
                answer = _recv_exact(w, MSG)
                if db is not None:
                    n += 1
                    db.execute("BEGIN IMMEDIATE")
                    db.execute("INSERT INTO t VALUES (?, 'ok')", (n,))
                    db.execute("COMMIT")
                client.sendall(answer)
                if shared is None:
                    hand_out.done(w)
                else:
                    hand_out.answered(w, answer)


def _relay_uvloop(client: socket.socket, workers: list[socket.socket]) -> None:
    """The same relay as asyncio Protocols on uvloop when installed (else asyncio's own loop)."""
    try:
        import uvloop
        loop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    done = loop.create_future()

    class Side(asyncio.Protocol):
        def __init__(self, on_data: Callable[[Any, bytes], None]):
            self.on_data, self.buf, self.transport = on_data, b"", None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            whole = len(self.buf) - len(self.buf) % MSG
            if whole:
                chunk, self.buf = self.buf[:whole], self.buf[whole:]
                self.on_data(self, chunk)

        def connection_lost(self, exc: Any) -> None:
            if not done.done():
                done.set_result(None)

    async def main() -> None:
        front = Side(lambda side, data: from_client(data))
        backs = [Side(lambda side, data: from_worker(side, data)) for _ in workers]
        hand_out = _Dispatch(backs, lambda side, m: side.transport.write(m))

        def from_client(data: bytes) -> None:
            if QUIT in data:
                for b in backs:
                    b.transport.write(QUIT)
                if not done.done():
                    done.set_result(None)
                return
            hand_out.add(data)

        def from_worker(side: Any, data: bytes) -> None:
            front.transport.write(data)
            hand_out.done(side)

        for back, w in zip(backs, workers):
            await loop.connect_accepted_socket(lambda b=back: b, w)
        await loop.connect_accepted_socket(lambda: front, client)
        await done

    loop.run_until_complete(main())


def _spawn(target: Callable, *args: Any) -> multiprocessing.process.BaseProcess:
    proc = multiprocessing.get_context("fork").Process(target=target, args=args, daemon=True)
    proc.start()
    return proc


class Shape:
    """One topology of forked processes; `client` is this process's socket (to the relay, or to worker 0)."""

    def __init__(self, kind: str, tmp: str):
        self.kind = kind
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self.workers: list[socket.socket] = []          # direct: this process's ends to each worker
        pairs = [socket.socketpair() for _ in range(2)]
        pull = kind.endswith("-pull")
        shared = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) if pull else None
        for mine, theirs in pairs:
            self.procs.append(_spawn(_worker, theirs, shared[1] if shared else None))
            theirs.close()
        if kind == "direct":
            self.workers = [mine for mine, _ in pairs]
            self.client = self.workers[0]
            return
        client, relay_end = socket.socketpair()
        relay_workers = [mine for mine, _ in pairs]
        if kind == "relay-uvloop":
            self.procs.append(_spawn(_relay_uvloop, relay_end, relay_workers))
        else:
            db = os.path.join(tmp, f"floor-{len(os.listdir(tmp))}.db") if "commit" in kind else None
            self.procs.append(_spawn(_relay, relay_end, relay_workers, db, shared))
        relay_end.close()
        for s in shared or ():
            s.close()
        for s in relay_workers:
            s.close()
        self.client = client

    def round_trip(self) -> float:
        t = time.perf_counter()
        self.client.sendall(NOOP)
        _recv_exact(self.client, MSG)
        return time.perf_counter() - t

    def sleep_batch(self, n: int, task: bytes = SLEEP) -> float:
        """Seconds for n 1 ms tasks (or n `task`s) on 2 workers, one task per worker at a time."""
        self.answers = b""
        t = time.perf_counter()
        if self.kind != "direct":          # sent by a thread: a burst's answers come while its tasks still go out
            sender = threading.Thread(target=self.client.sendall, args=(task * n,), daemon=True)
            sender.start()
            self.answers = _recv_exact(self.client, MSG * n)
            sender.join(60)
            return time.perf_counter() - t
        ep = select.epoll()
        for w in self.workers:
            ep.register(w.fileno(), select.EPOLLIN)
        by_fd = {w.fileno(): w for w in self.workers}
        hand_out = _Dispatch(self.workers, lambda w, m: w.sendall(m))
        hand_out.add(task * n)
        left, answers = n, []
        while left:
            for fd, _ in ep.poll():
                answers.append(_recv_exact(by_fd[fd], MSG))
                left -= 1
                hand_out.done(by_fd[fd])
        self.answers = b"".join(answers)
        ep.close()
        return time.perf_counter() - t

    def burst(self, n: int) -> float:
        """Seconds for n no-op tasks sent at once (the answers are kept in `answers`)."""
        return self.sleep_batch(n, NOOP)

    def close(self) -> None:
        try:
            for s in (self.workers or [self.client]):
                s.sendall(QUIT)
        except OSError:
            pass
        for p in self.procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        for s in {self.client, *self.workers}:
            s.close()


class PeerShape:
    """A peer of bench_live.py (live_peers.py: ProcessPoolExecutor, or sched-lab at hwm=1 on SQLite) on the same two
    workloads, with the module task functions; `start` and `close` are the peer's start and stop."""

    def __init__(self, peer: Peer):
        self.peer, self.kind = peer, peer.name
        self.fns = task_functions("module")

    def start(self) -> None:
        self.peer.start()

    def round_trip(self) -> float:
        t = time.perf_counter()
        self.peer.apply_sync(self.fns.noop)
        return time.perf_counter() - t

    def sleep_batch(self, n: int) -> float:
        t = time.perf_counter()
        self.peer.wait_all([self.peer.apply_async(self.fns.sleep_s, 0.001) for _ in range(n)])
        return time.perf_counter() - t

    def burst(self, n: int) -> float:
        t = time.perf_counter()
        self.peer.wait_all([self.peer.apply_async(self.fns.noop) for _ in range(n)])
        return time.perf_counter() - t

    def close(self) -> None:
        self.peer.stop()


KINDS = ("direct", "relay", "relay-uvloop", "relay-commit", "relay-pull", "relay-commit-pull")
LABELS = {"direct": "direct, 2 hops", "relay": "relay, 4 hops", "relay-uvloop": "relay on uvloop, 4 hops",
          "relay-commit": "relay + commit, 4 hops", "relay-pull": "relay, pull", "relay-commit-pull":
          "relay + commit, pull", "ProcessPoolExecutor": "ProcessPoolExecutor(2)",
          "sched-lab": "sched-lab (hwm=1, SQLite)"}


def one_run(names: list[str], peers: dict[str, Peer], round_trips: int, sleep_tasks: int, burst: int,
            tmp: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    sleep = measured_sleep_s()
    for name in names:
        shape: Any = PeerShape(peers[name]) if name in peers else Shape(name, tmp)
        try:
            if name in peers:
                shape.start()
            for _ in range(50):                     # warm up
                shape.round_trip()
            rts = [shape.round_trip() for _ in range(round_trips)]
            makespan = shape.sleep_batch(sleep_tasks)
            cpu = tree_cpu_s()
            burst_s = shape.burst(burst)
            cpu = tree_cpu_s() - cpu
        finally:
            shape.close()
        out[name] = {"round_trip_us": statistics.median(rts) * 1e6,
                     "efficiency_1ms": sleep_tasks * sleep / 2 / makespan, "measured_sleep_us": sleep * 1e6,
                     "burst_per_s": burst / burst_s, "cpu_per_burst_task_us": cpu / burst * 1e6}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--round-trips", type=int, default=2000)
    p.add_argument("--sleep-tasks", type=int, default=2000)
    p.add_argument("--burst", type=int, default=10000, help="no-op tasks in the burst (default 10000)")
    p.add_argument("--no-ours", action="store_true", help="leave out the sched-lab cluster")
    p.add_argument("--json", metavar="FILE", help="also write every run's figures to FILE")
    args = p.parse_args(argv)
    if args.runs < 1 or args.round_trips < 1 or args.sleep_tasks < 2 or args.burst < 2:
        p.error("--runs and --round-trips must be >= 1, --sleep-tasks and --burst >= 2")
    peers = {p.name: p for p in [Pool()] + ([] if args.no_ours else [Ours("sqlite", 1)])}  # one each: its own
    names = ["ProcessPoolExecutor", *KINDS] + ([] if args.no_ours else ["sched-lab"])      # profile per start
    runs = []
    with tempfile.TemporaryDirectory(prefix="sched-lab-floor-") as tmp:
        os.environ["SCHED_LAB_DIR"] = tmp                       # the cluster's profiles go with the directory
        for r in range(args.runs):
            order = names if r % 2 == 0 else names[::-1]        # interleaved: drift touches every shape alike
            runs.append(one_run(order, peers, args.round_trips, args.sleep_tasks, args.burst, tmp))
            print(f"[floor] run {r + 1}/{args.runs} done", file=sys.stderr, flush=True)
    keys = ("round_trip_us", "efficiency_1ms", "burst_per_s", "cpu_per_burst_task_us")
    med = {n: {k: statistics.median(run[n][k] for run in runs) for k in keys} for n in names}
    ratios = {k: {n: statistics.median(run[n][k] / run["ProcessPoolExecutor"][k] for run in runs) for n in names}
              for k in ("round_trip_us", "burst_per_s", "cpu_per_burst_task_us")}
    print(f"# bench_floor: 2 workers, {args.round_trips} round trips, {args.sleep_tasks} tasks of 1 ms, a burst of "
          f"{args.burst} no-ops, medians of {args.runs} runs (/ PPE: median of per-run ratios); load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"{'shape':28} {'round trip µs':>14} {'/ PPE':>6} {'1 ms efficiency':>16} {'burst tasks/s':>14} "
          f"{'/ PPE':>6} {'CPU µs a task':>14} {'/ PPE':>6}")
    for n in names:
        m = med[n]
        print(f"{LABELS[n]:28} {m['round_trip_us']:14.1f} {ratios['round_trip_us'][n]:6.2f} "
              f"{m['efficiency_1ms']:16.3f} {m['burst_per_s']:14,.0f} {ratios['burst_per_s'][n]:6.2f} "
              f"{m['cpu_per_burst_task_us']:14.1f} {ratios['cpu_per_burst_task_us'][n]:6.2f}")
    print("issue 15's goals: round trip <= 1.20 x PPE, 1 ms efficiency >= 0.88, burst >= 1.0 x PPE, "
          "CPU a task <= 1.3 x PPE")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "runs": runs, "median": med, "ratio_to_ppe": ratios["round_trip_us"],
                       "ratios_to_ppe": ratios}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
