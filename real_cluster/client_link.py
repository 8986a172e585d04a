"""The client's connection: a blocking socket written by the calling thread, read by one reader thread.

How this works. A submission is encoded and written (`sendall`, under a lock) by the thread that
submits, so a task leaves the client without waking any other thread; one daemon reader thread
blocks in `recv`, decodes every frame a read brings and hands each message to `on_message`, which
resolves the waiting futures there. A task's round trip thus costs one thread hand-off (the reader
waking the waiting thread), where an event loop in between cost two plus its own wake-ups
(bench_cpu_split.py and bench_live.py: the client's CPU per task and the apply_sync round trip).

The handshake is `SyncLink.connect`'s (the same HMAC challenge-response the engines use): nothing
the controller sends is unpickled before both sides are proven; results are decoded under
`proto.RESULT_LIMITS`. Over TLS one SSL object must not read and write at once, so there the
reader waits for the socket to be readable outside the lock and reads under it, and writers wait
for writability outside it and hand the SSL object one record at a time (a writer blocked on a
controller that waits for us to read must not lock the reader out).
`close` only shuts the socket down; the reader thread closes it when it ends (no descriptor reuse
race) and then calls `on_close(reason)` once.

A process forked from the client's (os.fork, a multiprocessing child) finds its copies of the connections closed:
what it sent would interleave with the parent's bytes on one socket, and its close (an explicit one, or a `with`
block or the garbage collector as it exits) would shut the parent's connection down. Its descriptors are closed at
the fork (`forked`, called by the client's at-fork handler: client.py), nothing else: the parent's connection is
untouched, and a call in the child raises ConnectionFailed saying it needs a Client of its own.
"""

from __future__ import annotations

import logging
import os
import random
import select
import socket
import ssl
import threading
import time
from typing import Any, Callable, cast

from . import protocol as proto
from .error import ConnectionFailed, ProtocolError, Unreachable
from .sync_link import SyncLink

log = logging.getLogger("real_cluster.client")

_JITTER = random.Random()      # spreads the retries of many clients refused at once
TLS_CHUNK = 16 * 1024           # bytes one TLS write takes at most (one record)


class ClientLink(SyncLink):
    """An authenticated client connection. `start(on_message, on_close)` starts the reader thread;
    `send_frame` may be called from any thread. Raises like SyncLink (ConnectionFailed, ...)."""

    def __init__(self, sock: socket.socket, limits: proto.Limits = proto.RESULT_LIMITS):
        super().__init__(sock, limits)
        self.closed = False
        self._close_reason: str | None = None
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()      # TLS: a whole frame per writer (`_lock`: the SSL object)
        self._owner = os.getpid()

    def forked(self) -> None:
        """In a process forked from the owner's: this copy is closed, its descriptor only (module doc; the client
        calls it at the fork: client.py)."""
        self.closed = True
        self._close_reason = (f"the connection belongs to process {self._owner}, which this process forked from: "
                              "create a Client of its own here")
        self._reader = None                     # (not in this process)
        try:
            proto.let_go(self.sock)
        except OSError:
            pass

    @property
    def close_reason(self) -> str | None:
        """Why this connection is closed (None while it is open)."""
        return self._close_reason

    @classmethod
    def open(cls, host: str, port: int, key: str, timeout: float, tls_fingerprint: str | None = None,
             unix_path: str | None = None) -> ClientLink:
        """Connect and authenticate as a client. "Overloaded" answers and handshakes cut short are retried with
        backoff until `timeout`; with `unix_path` (and no TLS) the Unix-domain socket is tried first, then TCP.
        Raises AuthenticationError (wrong key), ControllerBusy or ConnectionFailed."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            left = max(0.01, deadline - time.monotonic())
            try:
                link = cls.connect(host, port, key, "client", timeout_s=left, tls_fingerprint=tls_fingerprint,
                                   unix_path=unix_path if tls_fingerprint is None else None)
                return cast(ClientLink, link)
            except ConnectionFailed as exc:              # ControllerBusy too
                if isinstance(exc, Unreachable):     # a refused address or failed TLS: retrying will not help
                    if unix_path is not None and tls_fingerprint is None:
                        unix_path = None                  # no Unix socket after all: TCP, at once
                        continue
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(max(0.0, min(delay * (0.5 + _JITTER.random()), deadline - time.monotonic())))
            delay = min(delay * 2, 1.0)

    # ------------------------------------------------------------------------------ writing
    def send_frame(self, frame: bytes) -> None:
        """Write one encoded frame now (thread-safe). Raises ConnectionFailed if the connection is gone."""
        if self.closed:
            raise ConnectionFailed(f"not connected to the controller ({self._close_reason or 'closed'})")
        try:
            if self._tls:
                self._send_tls(frame)
            else:
                with self._lock:
                    self.sock.sendall(frame)
        except OSError as exc:
            self._shutdown(f"send failed: {exc}")
            raise ConnectionFailed(f"send failed: {exc}") from None

    def _send_tls(self, frame: bytes) -> None:
        """Write a frame over TLS, one record at a time, holding the SSL object only while it takes bytes: a
        controller that stops reading us until we read its results must never find the reader locked out."""
        view = memoryview(frame)
        with self._send_lock:                   # one frame at a time, whole
            while view:
                select.select([], [self.sock], [])
                with self._lock:
                    self.sock.setblocking(False)
                    try:
                        n = self.sock.send(view[:TLS_CHUNK])
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                        n = 0                   # not now: the same bytes again once writable
                    finally:
                        self.sock.setblocking(True)
                view = view[n:]

    # ------------------------------------------------------------------------------ reading
    def start(self, on_message: Callable[[Any], None], on_close: Callable[[str], None]) -> None:
        """Start the reader thread: `on_message(msg)` for each message, `on_close(reason)` once at the end."""
        self._reader = threading.Thread(target=self._read_loop, args=(on_message, on_close),
                                        name="real_cluster-client-reader", daemon=True)
        self._reader.start()

    def _next_messages(self) -> list[Any]:
        if not self._tls:
            return self.recv_many()
        while True:                         # TLS: never read while a writer is inside the SSL object
            with self._lock:
                msgs = self.recv_many(block=False)      # reads only what is buffered or readable now
                buffered = self.sock.pending()
            if msgs:
                return msgs
            if not buffered:
                select.select([self.sock], [], [])

    def _read_loop(self, on_message: Callable[[Any], None], on_close: Callable[[str], None]) -> None:
        reason = "connection closed"
        try:
            while True:
                for msg in self._next_messages():
                    on_message(msg)
        except ConnectionFailed as exc:
            reason = str(exc)
        except ProtocolError as exc:
            log.warning("closing the connection to the controller: %s: %s", type(exc).__name__, exc)
            reason = f"{type(exc).__name__}: {exc}"
        except (OSError, ValueError) as exc:        # the socket was shut down under select
            reason = f"connection lost: {exc!r}"
        except Exception as exc:   # a bug while handling one message must not leave waiters hanging
            log.exception("error handling a message from the controller; closing the connection")
            reason = f"internal error: {exc!r}"
        finally:
            self.closed = True
            if self._close_reason is not None:
                reason = self._close_reason
            super().close()
            on_close(reason)

    # ---------------------------------------------------------------------------- closing
    def _shutdown(self, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = reason
        self.closed = True
        try:        # wakes the reader, which closes the socket. Over TLS the kernel socket's own shutdown: the
            # SSLSocket's drops its SSL object, and a reader still to read would take the ciphertext left in the
            # kernel's buffer for frames ("frame of 386073344 bytes": a TLS record header read as a length)
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self, reason: str = "client closed", timeout: float = 5.0) -> None:  # type: ignore[override]
        """Close the connection (idempotent); waits up to `timeout` s for the reader thread to end."""
        self._shutdown(reason)
        reader = self._reader
        if reader is None:
            super().close()
        elif reader is not threading.current_thread():
            reader.join(timeout)
