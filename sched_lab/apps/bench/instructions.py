"""Instructions per round trip, process by process (issue 15): callgrind counts, which the VM's drift does not move.

How this works. Wall-clock and CPU-time ratios on this VM drift by 1.5-2.5x within a day; the count of
instructions a process executes does not. Each peer's driver (a sequential `apply_sync` / `submit().result()` of a
no-op, the function defined in the driver's `__main__` unless `--module`) runs twice under valgrind's callgrind
with every child process traced (`--trace-children=yes`: the controller, the nanny and the worker, or the pool's
forked workers), once with `--n1` and once with `--n2` round trips; a process's instructions per round trip are the
difference of its two totals over `n2 - n1`, so start-up, warm-up and shutdown cancel out. Before a cluster stops,
the driver has every callgrind process dump its counts (`callgrind_control -d`: a worker stopped by its nanny
writes nothing at exit). The peer is ProcessPoolExecutor(2) (fork), measured the same way in the same run.

Only user-space instructions are counted: the system calls and wake-ups of each hop are not (compare
`bench_cpu_split.py`'s CPU time). The client's poll before it sleeps (client_link.py) is off here: its count
would say how long the client waited, not what it did. The controller's SQLite statements are reported apart from
the rest: under valgrind every round trip is slow, so the 50 ms commits hold fewer rows than at full speed and
their cost per task depends on the timing. Needs `valgrind` (with `callgrind_control`) on PATH; exits 2 with a message otherwise.

    python benchmarks/bench_instructions.py [--n1 300] [--n2 1500] [--module] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

_DRIVER = '''
import os, subprocess, sys
{import_noop}
def main():
    peer, n, pid_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    with open(pid_file, "w") as fh:
        fh.write(str(os.getpid()))
    if peer == "ours":
        from real_cluster.cluster import Cluster
        import real_cluster.cluster as cluster
        cluster.START_TIMEOUT_S = 600
        with Cluster(n=1, profile="bench-instructions-%d" % os.getpid()) as rc:
            view = rc.load_balanced_view()
            for _ in range(n):
                view.apply_sync(noop)
            subprocess.run(["callgrind_control", "-d"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as ex:
            for _ in range(n):
                ex.submit(noop).result()
if __name__ == "__main__":
    main()
'''

_SKIP = "*callgrind_control*,*perl*"     # the driver's own `callgrind_control -d` is not measured


def role_of(cmd: str, pid: int, driver_pid: int, peer: str) -> str:
    """The process role of one callgrind output, from its command line (a pool's workers are forks of the driver)."""
    if peer == "ppe":
        return "parent" if pid == driver_pid else "pool workers"
    if "real_cluster.controller_app" in cmd:
        return "controller"
    if "real_cluster.worker" in cmd:
        return "worker"
    if "real_cluster.engine" in cmd:
        return "nanny"
    return "client" if pid == driver_pid else "other"


def read_totals(path: Path) -> tuple[str, int]:
    """(command line, total instructions) of one callgrind output file (0 when it holds no totals yet)."""
    cmd, total = "", 0
    with open(path, errors="replace") as fh:
        for line in fh:
            if line.startswith("cmd:"):
                cmd = line[4:].strip()
            elif line.startswith("totals:") or (line.startswith("summary:") and not total):
                total = int(line.split()[1])
    return cmd, total


def sqlite_share(path: Path) -> int:
    """Instructions of one callgrind output spent in sqlite3's execute calls (inclusive)."""
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", str(path)], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "_pysqlite_query_execute" in line and not line.split("_pysqlite_query_execute")[1].startswith("'"):
            return int(line.split()[0].replace(",", ""))
    return 0


def measure(peer: str, n: int, driver: Path, out_dir: Path) -> dict[str, int]:
    """Total instructions per role of one run of `driver` with `n` round trips (controller SQLite apart)."""
    run_dir = out_dir / f"{peer}-{n}"
    run_dir.mkdir()
    pid_file = run_dir / "driver.pid"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(Path.cwd()), os.environ.get("PYTHONPATH")])),
               SCHED_LAB_CLIENT_SPIN_US="0")        # a polling wait's count would say how long it waited, not its work
    proc = subprocess.run(["valgrind", "--tool=callgrind", "--trace-children=yes", f"--trace-children-skip={_SKIP}",
                           f"--callgrind-out-file={run_dir}/cg.%p", sys.executable, str(driver), peer, str(n),
                           str(pid_file)], capture_output=True, text=True, env=env, timeout=3600)
    if proc.returncode != 0:
        raise RuntimeError(f"the {peer} driver failed under valgrind (exit {proc.returncode}): {proc.stderr[-2000:]}")
    driver_pid = int(pid_file.read_text())
    totals: dict[str, int] = defaultdict(int)
    for path in run_dir.glob("cg.*"):
        pid = int(path.name.split(".")[1])
        cmd, total = read_totals(path)
        role = role_of(cmd, pid, driver_pid, peer)
        totals[role] += total
        if role == "controller":
            totals["controller: SQLite"] += sqlite_share(path)
    return dict(totals)


def per_round_trip(small: dict[str, int], large: dict[str, int], n1: int, n2: int) -> dict[str, float]:
    """Each role's instructions per round trip: the difference of the two runs' totals over n2 - n1."""
    return {role: (large.get(role, 0) - small.get(role, 0)) / (n2 - n1) for role in sorted(set(small) | set(large))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_instructions", description=__doc__.split("\n")[0])
    ap.add_argument("--n1", type=int, default=300, help="round trips of the first run (default 300)")
    ap.add_argument("--n2", type=int, default=1500, help="round trips of the second run (default 1500)")
    ap.add_argument("--module", action="store_true", help="the no-op imported from a module (pickled by reference)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = ap.parse_args(argv)
    if not 0 < args.n1 < args.n2:
        ap.error("need 0 < --n1 < --n2")
    missing = [tool for tool in ("valgrind", "callgrind_control", "callgrind_annotate") if shutil.which(tool) is None]
    if missing:
        print(f"bench_instructions: {', '.join(missing)} not found on PATH (install valgrind, e.g. "
              "`apt-get install valgrind`)", file=sys.stderr)
        return 2
    import_noop = "from sched_lab.apps.bench.tasks import noop" if args.module else "def noop():\n    return None"
    results: dict[str, Any] = {"n1": args.n1, "n2": args.n2, "by_value": not args.module}
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as tmp:
        driver = Path(tmp) / "driver.py"
        driver.write_text(_DRIVER.format(import_noop=import_noop))
        for peer in ("ours", "ppe"):
            runs = [measure(peer, n, driver, Path(tmp)) for n in (args.n1, args.n2)]
            results[peer] = {role: value for role, value in per_round_trip(runs[0], runs[1], args.n1, args.n2).items()
                             if value or role != "other"}      # (a traced helper with nothing per round trip)
            print(f"[instructions] {peer} measured", file=sys.stderr, flush=True)
    ours, ppe = results["ours"], results["ppe"]
    ours_total = sum(v for k, v in ours.items() if k != "controller: SQLite")
    ppe_total = sum(ppe.values())
    print(f"# instructions per sequential round trip of a no-op ({'module' if args.module else 'by value'}), "
          f"callgrind, ({args.n2} - {args.n1} round trips)")
    for role, value in ours.items():
        print(f"sched-lab {role:20s} {value:>12,.0f}")
    for role, value in ppe.items():
        print(f"ProcessPoolExecutor {role:10s} {value:>12,.0f}")
    without = ours_total - ours.get("controller: SQLite", 0)
    print(f"total: sched-lab {ours_total:,.0f} ({without:,.0f} without the controller's SQLite), "
          f"ProcessPoolExecutor {ppe_total:,.0f}; ratio {ours_total / ppe_total:.2f} ({without / ppe_total:.2f})")
    results["ratio"], results["ratio_without_sqlite"] = ours_total / ppe_total, without / ppe_total
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0
