"""A connection flood from another loopback address (a tool for test_admission_live.py and bench_flood.py).

`python flood_peer.py HOST PORT --rate R --seconds S [--source 127.0.0.2] [--hold-ms 200]` opens TCP
connections from `--source` at about R per second, in bursts every 10 ms (so the kernel's queues see
bursts, not one long spike), never sends a byte, and resets each connection (SO_LINGER 0: no TIME_WAIT
left on either side) `--hold-ms` after opening it. It prints one JSON line: attempts, seconds, rate,
and how many attempts failed at once (EADDRNOTAVAIL, EMFILE, ...). It stops on SIGTERM too.
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import socket
import struct
import sys
import time
from collections import deque

IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
_LINGER0 = struct.pack("ii", 1, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--rate", type=float, default=10_000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--source", default="127.0.0.2")
    p.add_argument("--hold-ms", type=float, default=200.0)
    args = p.parse_args(argv)
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    burst_s = 0.01
    per_burst = max(1, int(args.rate * burst_s))
    held: deque = deque()
    attempts = failed = 0
    hold_s = args.hold_ms / 1000
    dest = (args.host, args.port)
    t0 = time.monotonic()
    next_burst = t0
    while not stop and time.monotonic() - t0 < args.seconds:
        now = time.monotonic()
        while held and now - held[0][0] >= hold_s:
            held.popleft()[1].close()
        for _ in range(per_burst):
            attempts += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            except OSError:
                failed += 1
                continue
            try:
                s.setblocking(False)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER0)
                s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
                s.bind((args.source, 0))
                rc = s.connect_ex(dest)
                if rc not in (0, errno.EINPROGRESS):
                    failed += 1
                    s.close()
                    continue
            except OSError:
                failed += 1
                s.close()
                continue
            held.append((now, s))
        next_burst += burst_s
        delay = next_burst - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0:          # far behind: do not try to catch up in one go
            next_burst = time.monotonic()
    elapsed = time.monotonic() - t0
    for _, s in held:
        s.close()
    print(json.dumps({"attempts": attempts, "seconds": round(elapsed, 3), "rate": round(attempts / elapsed),
                      "failed_at_once": failed}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
