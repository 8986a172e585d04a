"""An authenticated, framed asyncio connection with batched writes (used by the controller and clients).

How this works. `Link` is an `asyncio.Protocol`. Until the HMAC handshake (see protocol.py) has
succeeded, incoming frames are held to the tiny handshake limits and only handshake messages are
accepted; afterwards every frame is decoded into a message and handed to `on_message`.
Outgoing messages are encoded at once but written in one `transport.write` per event-loop turn,
so a burst of small messages costs one syscall, not one each. Any protocol or authentication
error closes this connection (with a log line) and touches nothing else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

from . import protocol as proto
from .error import AuthenticationError, ProtocolError
from .messages import Auth, Hello, Welcome, from_wire, to_wire

HANDSHAKE_TIMEOUT_S = 5.0
BATCH_DELAY_S = 0.002       # `send_batched`: the longest a message waits for company (bench_live.py, burst)
BATCH_MAX_FRAMES = 256      # ... or until this many are queued


class Link(asyncio.Protocol):
    """One connection. Server side: `Link(key, server=True, ...)`; peer side: `Link(key, role=..., ...)`.

    `on_ready(link)` runs once authenticated, `on_message(link, msg)` per message afterwards,
    `on_close(link, reason)` once when the connection ends (also if it never authenticated).
    """

    def __init__(self, key: str, *, server: bool, role: str | None = None,
                 on_message: Callable[[Link, Any], None], on_ready: Callable[[Link], None] | None = None,
                 on_close: Callable[[Link, str], None] | None = None, log: logging.Logger | None = None,
                 limits: proto.Limits = proto.DEFAULT_LIMITS):
        self.key = key
        self.server = server
        self.role = role
        self.peer = "?"
        self.authenticated = False
        self.sent_proof = False
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self.state: Any = None                      # whatever the owner wants to attach (engine/client record)
        self._on_message = on_message
        self._on_ready = on_ready
        self._on_close = on_close
        self._log = log or logging.getLogger("real_cluster.link")
        self._limits = limits
        self._decoder = proto.FrameDecoder(proto.HANDSHAKE_LIMITS)
        self._nonce = proto.new_nonce()
        self._server_nonce: str | None = None
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._later: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._close_reason = "connection closed"
        self.last_activity = time.monotonic()        # any bytes arriving refresh it (liveness: progress, not frames)

    # -------------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.closed:             # closed by its owner before the connection was set up (e.g. a flood)
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                import socket
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(HANDSHAKE_TIMEOUT_S, self._handshake_timeout)
        if self.server:
            self._send_raw(to_wire(Hello(nonce=self._nonce, version=proto.PROTOCOL_VERSION)))

    def data_received(self, data: bytes) -> None:
        self.last_activity = time.monotonic()
        if self.closed:
            return
        try:
            frames = self._decoder.feed(data)
            for header, buffers in frames:
                if self.closed:
                    return
                msg = from_wire(header, buffers)
                if self.authenticated:
                    self._on_message(self, msg)
                else:
                    self._handshake(msg)
        except ProtocolError as exc:
            self._log.warning("closing %s connection from %s: %s: %s", self.role or "unauthenticated",
                              self.peer, type(exc).__name__, exc)
            self.close(f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # a bug while handling one peer must not take the process down
            self._log.exception("error handling a message from %s; closing that connection", self.peer)
            self.close(f"internal error: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        reason = self._close_reason if self.closed else (f"connection lost: {exc}" if exc else "peer closed")
        self.closed = True
        if self._timer:
            self._timer.cancel()
        if self._on_close:
            callback, self._on_close = self._on_close, None
            callback(self, reason)

    # ------------------------------------------------------------------------ handshake
    def _handshake(self, msg: Any) -> None:
        if self.server:
            if not isinstance(msg, Auth) or msg.role not in proto.ROLES:
                raise AuthenticationError(f"expected an auth message, got {type(msg).__name__}")
            proto.check_proof(proto.peer_proof(self.key, msg.role, self._nonce, msg.nonce), msg.mac)
            self.role = msg.role
            self._send_raw(to_wire(Welcome(mac=proto.server_proof(self.key, msg.role, self._nonce, msg.nonce))))
            self._become_ready()
        elif isinstance(msg, Hello) and self._server_nonce is None:
            if msg.version != proto.PROTOCOL_VERSION:
                raise ProtocolError(f"controller speaks protocol {msg.version}, we speak {proto.PROTOCOL_VERSION}")
            self._server_nonce = msg.nonce
            self.sent_proof = True
            assert self.role is not None
            self._send_raw(to_wire(Auth(role=self.role, nonce=self._nonce,
                                        mac=proto.peer_proof(self.key, self.role, msg.nonce, self._nonce))))
        elif isinstance(msg, Welcome) and self._server_nonce is not None:
            assert self.role is not None
            proto.check_proof(proto.server_proof(self.key, self.role, self._server_nonce, self._nonce), msg.mac)
            self._become_ready()
        else:
            raise AuthenticationError(f"unexpected {type(msg).__name__} during the handshake")

    def _become_ready(self) -> None:
        self.authenticated = True
        self._decoder.limits = self._limits
        if self._timer:
            self._timer.cancel()
            self._timer = None
        if self._on_ready:
            self._on_ready(self)

    def _handshake_timeout(self) -> None:
        if not self.authenticated and not self.closed:
            self._log.warning("closing connection from %s: no handshake within %.0f s", self.peer, HANDSHAKE_TIMEOUT_S)
            self.close("handshake timed out")

    # ---------------------------------------------------------------------------- writing
    def send(self, msg: Any) -> None:
        """Queue one message; all messages queued in this loop turn go out in one write."""
        if not self.authenticated or self.closed:
            return
        self._send_raw(to_wire(msg))

    def limit_reads(self, max_bytes: int) -> None:
        """Read at most `max_bytes` per event-loop turn, so one busy peer cannot hold up the others."""
        if self.transport is not None and hasattr(self.transport, "max_size"):
            self.transport.max_size = max_bytes  # type: ignore[attr-defined]

    def send_batched(self, msg: Any) -> None:
        """Queue a message that may wait up to BATCH_DELAY_S for others, so that they share one write."""
        if not self.authenticated or self.closed:
            return
        self._out.append(proto.encode_frame(*to_wire(msg)))
        if self._flush_scheduled:
            return
        if len(self._out) >= BATCH_MAX_FRAMES:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)
        elif self._later is None:
            self._later = asyncio.get_running_loop().call_later(BATCH_DELAY_S, self.flush)

    def _send_raw(self, wire: tuple[dict, list[bytes]]) -> None:
        self._out.append(proto.encode_frame(*wire))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def send_encoded(self, frame: bytes) -> None:
        """Queue an already encoded frame (used by the client's thread-safe submit path)."""
        if self.closed:
            return
        self._out.append(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write everything queued, now."""
        self._flush_scheduled = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not self._out or self.transport is None or self.transport.is_closing():
            self._out.clear()
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self.transport.write(data)

    def close(self, reason: str = "closed") -> None:
        """Close the connection (queued messages are written first)."""
        if self.closed:
            return
        self._close_reason = reason
        self.closed = True
        if self.transport is not None:
            if self._out:
                self.flush()
            self.transport.close()
