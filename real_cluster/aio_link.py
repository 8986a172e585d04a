"""An authenticated, framed asyncio connection with batched writes (used by the controller and clients).

How this works. `Link` is an `asyncio.BufferedProtocol`: the transport reads into one buffer per
connection (a plain Protocol gets a fresh 256 KiB bytes object per read: an mmap, an mremap and a
munmap each time, per strace of the controller in bench_live.py). Until the HMAC handshake (see protocol.py) has
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
from .error import AuthenticationError, ControllerBusy, InvalidField, ProtocolError
from .memory_guard import FrameBudget
from .tls import check_fingerprint
from .messages import Auth, Hello, Refused, Welcome, from_wire, to_wire

HANDSHAKE_TIMEOUT_S = 5.0
BATCH_DELAY_S = 0.002       # `send_batched`: the longest a message waits for company (bench_live.py, burst)
BATCH_MAX_FRAMES = 256      # ... or until this many are queued
READ_BUFFER_BYTES = 256 * 1024      # what one read takes at most (limit_reads lowers it per connection)
SLICE_BUDGET_S = 0.0003     # a sliced link's messages are handled for at most this long per loop turn (see _handle)


class Link(asyncio.BufferedProtocol):
    """One connection. Server side: `Link(keys, server=True, ...)`; peer side: `Link(key, role=..., ...)`.

    A server's `key` is a dict role -> key (each role proves its own key; one str serves every role).
    A server refuses a peer with a `Refused` frame before closing: `retry=False` for a wrong key
    (`refuse(reason, retry=True)` is the owner's "overloaded, retry").
    With a `budget`, the bytes this connection holds in an unfinished frame count against one cap shared
    by every connection; the connection that pushes the total past it is closed. A peer given
    `tls_fingerprint` (its transport is TLS) closes at once unless the server's certificate has it.
    On the peer side a `Refused` ends the handshake with ControllerBusy or AuthenticationError, kept
    in `close_error` (None when the connection simply closed).

    `on_ready(link)` runs once authenticated, `on_message(link, msg)` per message afterwards,
    `on_close(link, reason)` once when the connection ends (also if it never authenticated).
    `on_invalid(link, error)`, once authenticated, gets a message with one bad header field (InvalidField)
    and returns True if it answered it (the connection then stays); otherwise the connection closes.
    """

    def __init__(self, key: str | dict[str, str], *, server: bool, role: str | None = None,
                 on_message: Callable[[Link, Any], None], on_ready: Callable[[Link], None] | None = None,
                 on_close: Callable[[Link, str], None] | None = None, log: logging.Logger | None = None,
                 limits: proto.Limits = proto.DEFAULT_LIMITS,
                 on_invalid: Callable[[Link, InvalidField], bool] | None = None,
                 budget: FrameBudget | None = None, tls_fingerprint: str | None = None):
        self.key = key
        self.server = server
        self.role = role
        self.peer = "?"
        self.authenticated = False
        self.sent_proof = False
        self.closed = False
        self.peer_ended: str | None = None           # how the peer ended it: "closed" (EOF) or "lost" (an error)
        self.transport: asyncio.Transport | None = None
        self.state: Any = None                      # whatever the owner wants to attach (engine/client record)
        self._on_message = on_message
        self._on_ready = on_ready
        self._on_close = on_close
        self._on_invalid = on_invalid
        self.close_error: Exception | None = None
        self.refused = False                        # server side: closed by `refuse`
        self._log = log or logging.getLogger("real_cluster.link")
        self._limits = limits
        self._decoder = proto.FrameDecoder(proto.HANDSHAKE_LIMITS)
        self._nonce = proto.new_nonce()
        self._server_nonce: str | None = None
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._budget = budget
        self._tls_fingerprint = tls_fingerprint
        self._held = 0                              # bytes of an unfinished frame counted in `budget`
        self._flush_scheduled = False
        self._later: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._close_reason = "connection closed"
        self.last_activity = time.monotonic()        # any bytes arriving refresh it (liveness: progress, not frames)
        self._rbuf = memoryview(bytearray(READ_BUFFER_BYTES))
        self._sliced = False                        # limit_reads: a full slice read yields to the other connections
        self._yielded = False                       # reading paused until the next loop turn (see buffer_updated)
        self.reads_held = False                     # reading paused by the owner (memory caps): a yield leaves it so
        self._stash: list[Any] | None = None        # a sliced link's frames not handled yet: read paused until done
        self._stash_at = 0
        self._loop: asyncio.AbstractEventLoop | None = None     # (get_running_loop costs a getpid per call)

    # -------------------------------------------------------------------- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._loop = asyncio.get_running_loop()
        if self.closed:             # closed by its owner before the connection was set up (e.g. a flood)
            transport.close()
            return
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else (str(peer or "") or "a local socket")
        if self._tls_fingerprint is not None:        # peer side over TLS: is it the pinned certificate?
            ssl_object = transport.get_extra_info("ssl_object")
            try:
                check_fingerprint(ssl_object.getpeercert(binary_form=True) if ssl_object else None,
                                  self._tls_fingerprint)
            except AuthenticationError as exc:
                self.close_error = exc
                self._log.warning("closing the connection to %s: %s", self.peer, exc)
                self.close(str(exc))
                return
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

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rbuf[:nbytes])
        if self._sliced and nbytes == len(self._rbuf) and not self.closed:
            self._yield_reads()

    def _yield_reads(self) -> None:
        """A sliced connection filled its read buffer: stop reading it until the next loop turn, so the others' bytes
        go first. asyncio reads a socket once per turn anyway; uvloop (libuv) reads up to 32 buffers in a row per
        wake-up, and a client's burst would hold up the engines' replies (test_controller_loop.py)."""
        transport = self.transport
        if transport is None or self._yielded or not transport.is_reading():
            return
        transport.pause_reading()
        self._read_next_turn()

    def _read_next_turn(self) -> None:
        """Reading (paused) resumes at the next loop turn, not in this one's poll."""
        self._yielded = True
        (self._loop or asyncio.get_running_loop()).call_soon(self._end_yield)

    def _end_yield(self) -> None:
        self._yielded = False
        self._resume()

    def _resume(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed and not transport.is_closing() and not self.reads_held \
                and not self._yielded and self._stash is None:
            transport.resume_reading()

    def release_reads(self) -> None:
        """The owner's pause (`reads_held`) ends: read again, once this link's own pause (a yield, frames not yet
        handled) has ended too."""
        self.reads_held = False
        self._resume()

    def eof_received(self) -> bool | None:
        return None                 # close the transport (as a plain Protocol's default does)

    def data_received(self, data: bytes | memoryview) -> None:
        self.last_activity = time.monotonic()
        if self.closed:
            return
        try:
            try:
                frames = self._decoder.feed(data)
            finally:
                if self._budget is not None and self._decoder.buffered != self._held:
                    self._budget.held += self._decoder.buffered - self._held
                    self._held = self._decoder.buffered
                    if self._held and self._budget.held > self._budget.cap:
                        raise ProtocolError(f"unfinished frames of all connections exceed {self._budget.cap} bytes")
            if frames:
                self._handle(frames, 0)
        except (ProtocolError, ControllerBusy) as exc:
            self._failed(exc)
        except Exception as exc:  # a bug while handling one peer must not take the process down
            self._crashed(exc)

    def _handle(self, frames: list[Any], i: int, budget: bool = True) -> None:
        """Handle `frames[i:]`. A sliced link stops once it has spent SLICE_BUDGET_S in one loop turn: the rest wait,
        reading paused, for the next turn, so an engine's report read meanwhile goes between (a client's burst of
        submissions, each ~40 µs, held up 1 ms tasks' next dispatch by 2-4 ms a slice: bench_live.py, 1 ms tasks)."""
        deadline = time.perf_counter() + SLICE_BUDGET_S if self._sliced and budget else None
        n = len(frames)
        while i < n:
            if self.closed:
                return
            header, buffers = frames[i]
            i += 1
            try:
                msg = from_wire(header, buffers)
            except InvalidField as exc:     # the frame was whole: the next one can still be read
                if self.authenticated and self._on_invalid is not None and self._on_invalid(self, exc):
                    self._log.warning("refused a message from %s %s: %s", self.role, self.peer, exc)
                    continue
                raise
            if self.authenticated:
                self._on_message(self, msg)
            else:
                self._handshake(msg)
            if deadline is not None and i < n and time.perf_counter() > deadline:
                self._stash, self._stash_at = frames, i
                transport = self.transport
                if transport is not None and transport.is_reading():
                    transport.pause_reading()
                (self._loop or asyncio.get_running_loop()).call_soon(self._handle_stash)
                return

    def _handle_stash(self) -> None:
        frames, i = self._stash, self._stash_at
        self._stash = None
        if frames is None or self.closed:
            return
        try:
            self._handle(frames, i)
        except (ProtocolError, ControllerBusy) as exc:
            self._failed(exc)
        except Exception as exc:  # a bug while handling one peer must not take the process down
            self._crashed(exc)
        if self._stash is None and not self.closed:     # the slice is done (resumed now, uvloop would read and handle
            self._read_next_turn()                      # the next one in this same turn)

    def _failed(self, exc: ProtocolError | ControllerBusy) -> None:
        self.close_error = exc
        if self.server and not self.authenticated and isinstance(exc, AuthenticationError):
            self._send_raw(to_wire(Refused(reason="wrong key for this role", retry=False)))
        if not isinstance(exc, ControllerBusy):
            self._log.warning("closing %s connection from %s: %s: %s", self.role or "unauthenticated",
                              self.peer, type(exc).__name__, exc)
        self.close(f"{type(exc).__name__}: {exc}")

    def _crashed(self, exc: Exception) -> None:
        self._log.exception("error handling a message from %s; closing that connection", self.peer)
        self.close(f"internal error: {exc!r}")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._stash is not None and not self.closed:     # received whole before the end: handled, as they would
            frames, i, self._stash = self._stash, self._stash_at, None      # have been without the budget
            try:
                self._handle(frames, i, budget=False)
            except Exception as err:        # (the connection is ending anyway)
                self._log.warning("a message from %s received before its connection ended failed: %r", self.peer, err)
        if not self.closed:
            self.peer_ended = "lost" if exc else "closed"
        reason = self._close_reason if self.closed else (f"connection lost: {exc}" if exc else "peer closed")
        self.closed = True
        if self._timer:
            self._timer.cancel()
        if self._budget is not None:
            self._budget.held -= self._held
            self._held = 0
        self._decoder = proto.FrameDecoder(self._decoder.limits)    # what it held is garbage now
        if self._on_close:
            callback, self._on_close = self._on_close, None
            callback(self, reason)

    # ------------------------------------------------------------------------ handshake
    def _handshake(self, msg: Any) -> None:
        if self.server:
            if not isinstance(msg, Auth) or msg.role not in proto.ROLES:
                raise AuthenticationError(f"expected an auth message, got {type(msg).__name__}")
            key = self.key if isinstance(self.key, str) else self.key[msg.role]
            proto.check_proof(proto.peer_proof(key, msg.role, self._nonce, msg.nonce), msg.mac)
            self.role = msg.role
            self._send_raw(to_wire(Welcome(mac=proto.server_proof(key, msg.role, self._nonce, msg.nonce))))
            self._become_ready()
        elif isinstance(msg, Refused):
            if msg.retry:
                raise ControllerBusy(f"the controller is overloaded: {msg.reason}")
            raise AuthenticationError(f"the controller refused our key ({msg.reason})")
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

    def refuse(self, reason: str, retry: bool) -> None:
        """Server side, before authentication: tell the peer why (a `Refused` frame), then close."""
        if self.closed or self.authenticated:
            return
        self.refused = True
        self._send_raw(to_wire(Refused(reason=reason, retry=retry)))
        self.close(reason)

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
        """Read at most `max_bytes` per event-loop turn and handle its messages for at most SLICE_BUDGET_S per turn,
        so one busy peer cannot hold up the others (the owner pauses such a link's reading only with `reads_held`
        set, and resumes it with `release_reads`: see _yield_reads and _handle)."""
        self._rbuf = memoryview(bytearray(max_bytes))
        self._sliced = True

    def send_batched(self, msg: Any) -> None:
        """Queue a message that may wait up to BATCH_DELAY_S for others, so that they share one write."""
        if not self.authenticated or self.closed:
            return
        self.send_frame_batched(proto.encode_frame(*to_wire(msg)))

    def send_result_frame(self, frame: bytes, batched: bool = False) -> None:
        """Queue an encoded task result (`batched`: as `send_batched` does). The controller's GatedLink holds
        it for the database first; here it simply goes."""
        if batched:
            self.send_frame_batched(frame)
        else:
            self.send_encoded(frame)

    def send_frame_batched(self, frame: bytes) -> None:
        """`send_batched` for an already encoded frame."""
        if not self.authenticated or self.closed:
            return
        self._out.append(frame)
        self._out_bytes += len(frame)
        if self._flush_scheduled:
            return
        if len(self._out) >= BATCH_MAX_FRAMES:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self.flush)
        elif self._later is None:
            self._later = (self._loop or asyncio.get_running_loop()).call_later(BATCH_DELAY_S, self.flush)

    def _send_raw(self, wire: tuple[dict, list[bytes]]) -> None:
        frame = proto.encode_frame(*wire)
        self._out.append(frame)
        self._out_bytes += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self.flush)

    def send_encoded(self, frame: bytes) -> None:
        """Queue an already encoded frame (used by the client's thread-safe submit path)."""
        if self.closed:
            return
        self._out.append(frame)
        self._out_bytes += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            (self._loop or asyncio.get_running_loop()).call_soon(self.flush)

    def queue_frame(self, frame: bytes) -> None:
        """Queue an encoded frame without scheduling its write: the caller calls `flush` in this loop turn."""
        if self.closed:
            return
        self._out.append(frame)
        self._out_bytes += len(frame)

    def flush(self) -> None:
        """Write everything queued, now."""
        self._flush_scheduled = False
        if self._later is not None:
            self._later.cancel()
            self._later = None
        if not self._out or self.transport is None or self.transport.is_closing():
            self._out.clear()
            self._out_bytes = 0
            return
        data = self._out[0] if len(self._out) == 1 else b"".join(self._out)
        self._out = []
        self._out_bytes = 0
        self.transport.write(data)

    def write_backlog(self) -> int:
        """Bytes queued to this peer that the kernel has not taken yet (ours and the transport's buffer)."""
        size = self._out_bytes
        if self.transport is not None:
            size += self.transport.get_write_buffer_size()
        return size

    @property
    def partial_bytes(self) -> int:
        """Bytes received of a frame not yet complete."""
        return self._decoder.buffered

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
