"""A blocking, authenticated framed connection (engines use it from plain threads).

Same wire and handshake as `aio_link.Link` (peer side only). `send` is thread-safe (a lock around
`sendall`, so the heartbeat thread and the task thread can both write); `recv`/`recv_many` are
meant for one reader thread.
"""

from __future__ import annotations

import select
import socket
import sys
import threading
from typing import Any

from . import protocol as proto
from .error import AuthenticationError, ConnectionFailed, ControllerBusy, ProtocolError, Unreachable
from .messages import Auth, Hello, Refused, Welcome, from_wire, to_wire

_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0x40)


def _raise_if_refused(msg: Any) -> None:
    if isinstance(msg, Refused):
        if msg.retry:
            raise ControllerBusy(f"the controller is overloaded: {msg.reason}")
        raise AuthenticationError(f"the controller refused our key ({msg.reason})")


class SyncLink:
    """A connected, authenticated socket. Raises ConnectionFailed / ProtocolError / AuthenticationError."""

    def __init__(self, sock: socket.socket, limits: proto.Limits = proto.DEFAULT_LIMITS):
        self.sock = sock
        self._decoder = proto.FrameDecoder(proto.HANDSHAKE_LIMITS)
        self._limits = limits
        self._pending: list[Any] = []
        self._poll: Any = None            # a select.poll of the socket, for reads that must not wait
        self._lock = threading.Lock()
        self._scratch = bytearray(proto.RECV_CHUNK)
        self._tls = is_tls(sock)

    @classmethod
    def connect(cls, host: str, port: int, key: str, role: str, timeout_s: float = 5.0,
                tls_fingerprint: str | None = None, unix_path: str | None = None) -> SyncLink:
        """Connect and run the handshake; the returned link is proven both ways.

        With `unix_path` (no TLS), connect to the controller's Unix-domain socket instead of host:port.
        Raises ControllerBusy when the controller answers "overloaded, retry", AuthenticationError for a
        wrong key, ConnectionFailed when it cannot be reached or closes the connection.
        """
        try:
            if unix_path is not None and tls_fingerprint is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(timeout_s)
                    proto.unix_address(unix_path, sock.connect)
                except OSError:
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((host, port), timeout=timeout_s)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise Unreachable(f"cannot connect to {unix_path or f'{host}:{port}'}: {exc}") from None
        if tls_fingerprint is not None:     # TLS, accepting only the pinned certificate (tls.py)
            from . import tls               # (here: ssl costs a worker ~8 ms to import, and its link is never TLS)
            try:
                sock = tls.client_context().wrap_socket(sock)
                tls.check_fingerprint(sock.getpeercert(binary_form=True), tls_fingerprint)
            except (OSError, AuthenticationError) as exc:
                sock.close()
                if isinstance(exc, AuthenticationError):
                    raise
                raise Unreachable(f"TLS with {host}:{port} failed: {exc}") from None
        link = cls(sock)
        try:
            hello = link.recv()
            _raise_if_refused(hello)
            if not isinstance(hello, Hello):
                raise AuthenticationError(f"expected hello, got {type(hello).__name__}")
            if hello.version != proto.PROTOCOL_VERSION:
                raise ProtocolError(f"controller speaks protocol {hello.version}, we speak {proto.PROTOCOL_VERSION}")
            nonce = proto.new_nonce()
            link._write(to_wire(Auth(role=role, nonce=nonce, mac=proto.peer_proof(key, role, hello.nonce, nonce))))
            welcome = link.recv()
            _raise_if_refused(welcome)
            if not isinstance(welcome, Welcome):
                raise AuthenticationError(f"expected welcome, got {type(welcome).__name__}")
            proto.check_proof(proto.server_proof(key, role, hello.nonce, nonce), welcome.mac)
        except BaseException:
            sock.close()
            raise
        link._decoder.limits = link._limits
        sock.settimeout(None)
        return link

    def _write(self, wire: tuple[dict, list[bytes]]) -> None:
        self.send_frame(proto.encode_frame(*wire))

    def send_frame(self, data: bytes) -> None:
        """Send one frame already encoded (`protocol.encode_frame`; thread-safe)."""
        try:
            with self._lock:
                self.sock.sendall(data)
        except OSError as exc:
            raise ConnectionFailed(f"send failed: {exc}") from None

    def send(self, msg: Any) -> None:
        """Send one message (thread-safe)."""
        self._write(to_wire(msg))

    def send_many(self, msgs: list[Any]) -> None:
        """Send several messages in one write, so that the peer reads them together (thread-safe)."""
        if msgs:
            self.send_frame(b"".join(proto.encode_frame(*to_wire(m)) for m in msgs))

    def recv(self) -> Any:
        """The next message (blocking). Raises ConnectionFailed when the peer closes."""
        while not self._pending:
            self._read(0)
        return self._pending.pop(0)

    def recv_many(self, block: bool = True, ready: bool = False) -> list[Any]:
        """Every message received so far; when `block`, waits for at least one (else may return []). `ready`: the
        caller's poller has just said the socket is readable (no poll of our own first).

        One read returns as many frames as have arrived, so a burst costs one syscall, not one per
        message (bench_live.py: the engine side of the no-op burst). Raises like `recv`.
        """
        if block:
            while not self._pending:        # a read may end inside a frame
                self._read(0)
        elif not self._pending:
            self._read(_DONTWAIT, ready)
        out, self._pending = self._pending, []
        return out

    def _read(self, flags: int, ready: bool = False) -> None:
        try:
            # Not waiting: poll first, unless the caller's poller just did (an empty recv raises, ~2.5x the cost: a
            # worker checks its link before every queued task, worker.py). TLS takes no recv flags, and may hold
            # decrypted bytes the socket does not show.
            if flags:
                tls = self._tls
                if not ready and not (tls and self.sock.pending()) and not self._readable():
                    return
                if tls:
                    flags = 0
            data = proto.recv_into(self.sock, self._scratch, flags)
        except BlockingIOError:
            return
        except socket.timeout:      # only the handshake has a timeout: the controller is there but slow to answer
            raise ControllerBusy("the controller accepted the connection but did not answer the handshake in time") \
                from None
        except (OSError, ValueError) as exc:       # (ValueError: a closed socket has no descriptor to poll)
            raise ConnectionFailed(f"receive failed: {exc}") from None
        if not data:
            raise ConnectionFailed("controller closed the connection")
        self._pending.extend(from_wire(h, b) for h, b in self._decoder.feed(data))

    def _readable(self, timeout_ms: int | None = 0) -> bool:
        """Whether the socket has bytes (or its end) within `timeout_ms` (None: waits until it does). One reader at
        a time: a poll object must not be polled from two threads at once."""
        if self._poll is None:
            self._poll = select.poll()
            self._poll.register(self.sock, select.POLLIN)
        return bool(self._poll.poll(timeout_ms))

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self._poll = None
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def is_tls(sock: socket.socket) -> bool:
    """Whether `sock` is an ssl.SSLSocket (without importing ssl: a process that never did has none)."""
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(sock, ssl.SSLSocket)
