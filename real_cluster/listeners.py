"""The controller's listening sockets: accepting connections (a flood is refused cheaply) and the Unix socket.

A mixin of Controller (it needs `_gate`, `_tls`, `_listener`, `_unix`, `_new_link` and `_gate_logged_at`).
Accepting is done by hand, in batches, so that a source over its handshake cap is told "overloaded" and
closed before asyncio builds anything for it (admission.py decides whom).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import time

from . import protocol as proto
from .admission import HandshakeGate
from .aio_link import HANDSHAKE_TIMEOUT_S, Link
from .messages import Refused, to_wire

log = logging.getLogger("real_cluster.controller")
MAX_UNAUTHENTICATED = 128           # half-open handshakes in total; beyond this the busiest source loses its oldest
MAX_UNAUTHENTICATED_PER_SOURCE = 32  # half-open handshakes per source address; beyond this it is told "overloaded"
LISTEN_BACKLOG = 4096               # accepted-but-not-yet-seen connections the kernel queues (a burst is not dropped)
ACCEPT_BATCH = 512                  # connections accepted per event-loop turn (other work goes between batches)
_OVERLOADED_FRAME = proto.encode_frame(*to_wire(Refused(reason="the controller is overloaded with handshakes; retry",
                                                       retry=True)))


class Listeners:
    """Controller mixin: the TCP listener's and the Unix socket's accepting."""

    _gate: HandshakeGate
    _tls: ssl.SSLContext | None
    _listener: socket.socket | None
    _unix: socket.socket | None
    _gate_logged_at: float

    def _new_link(self) -> Link: ...

    def _resume_accepting(self, listener: socket.socket | None = None) -> None:
        listener = listener or self._listener
        if listener is not None and listener.fileno() >= 0:
            asyncio.get_running_loop().add_reader(listener.fileno(), self._accept_ready, listener)

    def _listen_unix(self, path: str) -> None:
        """Listen on a Unix-domain socket too (only this user may connect; the handshake is the same): a frame
        costs far less than over TCP loopback (bench_live.py: a send was ~78 µs of the controller's CPU)."""
        try:
            os.unlink(path)                     # a stale one (the profile lock says no controller owns it)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            proto.unix_address(path, sock.bind)
            os.chmod(path, 0o600)
            sock.listen(LISTEN_BACKLOG)
        except OSError as exc:
            sock.close()
            log.warning("not listening on %s (workers connect over TCP): %s", path, exc)
            return
        sock.setblocking(False)
        self._unix = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._accept_ready, sock)

    def _accept_ready(self, listener: socket.socket | None = None) -> None:
        """Accept waiting connections. A source over its handshake cap is told "overloaded" and closed right
        here, before asyncio builds anything for it (so a flood costs little); see admission.py."""
        loop = asyncio.get_running_loop()
        listener = listener or self._listener
        assert listener is not None
        local = listener is self._unix
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:          # out of file descriptors, ...: the connection waits in the queue
                log.error("cannot accept a connection (trying again in 0.1 s): %s", exc)
                loop.remove_reader(listener.fileno())         # no busy loop while it lasts
                loop.call_later(0.1, self._resume_accepting, listener)
                break
            source = addr[0] if isinstance(addr, tuple) else "unix"
            link = None
            if self._gate.held(source) >= MAX_UNAUTHENTICATED_PER_SOURCE:      # the flood's fast path
                self._gate.refused[source] += 1
                ok = False
            else:
                link = self._new_link()
                ok, victim = self._gate.admit(link, source)
                if victim is not None:
                    victim.refuse("the controller is overloaded with handshakes; retry", retry=True)  # type: ignore
            if not ok:
                try:
                    if self._tls is None or local:  # (under TLS a peer could not read it before the TLS handshake)
                        conn.send(_OVERLOADED_FRAME, socket.MSG_DONTWAIT)
                except OSError:
                    pass
                conn.close()
                continue
            task = asyncio.ensure_future(loop.connect_accepted_socket(
                lambda link=link: link, conn, **({} if self._tls is None or local else {
                    "ssl": self._tls, "ssl_handshake_timeout": HANDSHAKE_TIMEOUT_S})))
            task.add_done_callback(lambda t, link=link, conn=conn: t.cancelled() or t.exception() is None or (
                self._gate.done(link), conn.close()))
        now = time.monotonic()
        if now - self._gate_logged_at >= 1.0 and (self._gate.refused or self._gate.evicted):
            refused, evicted = self._gate.take_counts()
            log.warning("handshakes refused as overloaded (more than %d unauthenticated connections per source, "
                        "%d in all): refused %s, evicted %s", MAX_UNAUTHENTICATED_PER_SOURCE, MAX_UNAUTHENTICATED,
                        dict(refused.most_common(5)), dict(evicted.most_common(5)))
            self._gate_logged_at = now
