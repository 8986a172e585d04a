"""Frames on the wire, a sans-IO frame decoder, and the HMAC challenge-response.

How this works. A frame is a length-prefixed unit:

    !I  body length (bytes after these 4)
    !HB header length, number of payload buffers
    !I  x n  buffer lengths
    header   compact JSON object (always has "t", the message type), or a binary header that starts
             with a NUL byte (messages.py packs the hottest messages so; returned here as raw bytes)
    buffers  opaque bytes (pickled functions/results: never looked at by the controller)

`FrameDecoder` turns received bytes into `(header, buffers)` pairs and raises only
`ProtocolError` (oversized, truncated header, bad JSON, too many buffers); it never unpickles.

Authentication (mutual, fresh nonces, so a replayed session fails):

    server -> peer   {"t": "hello", "nonce": Ns}
    peer   -> server {"t": "auth", "role": R, "nonce": Np, "mac": HMAC(key, "peer|R|Ns|Np")}
    server -> peer   {"t": "welcome", "mac": HMAC(key, "server|R|Np|Ns")}

Until the server has checked the peer's mac, frames are limited to `HANDSHAKE_LIMITS` (small,
header only); nothing a peer sends is unpickled by anyone before both sides are proven.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import struct
from dataclasses import dataclass
from typing import Any

from .error import AuthenticationError, ProtocolError

PROTOCOL_VERSION = 1
UNIX_SOCKET_NAME = "controller.sock"    # the controller's Unix-domain socket, beside the connection files (0600)
_SUN_PATH_MAX = 107                     # bytes of a Unix-domain socket's path (Linux sun_path, less its NUL)


def unix_address(path: str, use: Any) -> Any:
    """`use(address)` (a socket's bind or connect) for the Unix-domain socket at `path`, also when `path` is longer
    than a socket address holds (a profile deep in a long directory): then through `/proc/self/fd/N/<name>`, N the
    directory opened for the call (Linux), so a local worker still gets its direct link over this socket."""
    if len(os.fsencode(path)) <= _SUN_PATH_MAX or not os.path.isdir("/proc/self/fd"):
        return use(path)
    fd = os.open(os.path.dirname(path) or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        return use(f"/proc/self/fd/{fd}/{os.path.basename(path)}")
    finally:
        os.close(fd)


def let_go(sock: Any) -> None:
    """Close this process's descriptor of `sock` and nothing else (no shutdown: another process holding the same
    connection, the one this process forked from, keeps it); the socket object is closed for this process."""
    fd = sock.detach()
    if fd >= 0:
        os.close(fd)


_PREFIX = struct.Struct("!I")
_HEAD = struct.Struct("!HB")
_LEN = struct.Struct("!I")
_json_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=True).encode
_json_decode = json.JSONDecoder().decode


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits a decoder enforces (bytes); a frame beyond them is the peer's protocol error."""

    max_frame: int = 256 * 1024 * 1024
    max_header: int = 60 * 1024
    max_buffers: int = 64

    def __post_init__(self) -> None:
        if self.max_frame <= 0 or self.max_header <= 0 or self.max_buffers < 0:
            raise ValueError("limits must be positive")
        if self.max_header > 0xFFFF or self.max_buffers > 0xFF:
            raise ValueError("max_header must fit 16 bits and max_buffers 8 bits")


DEFAULT_LIMITS = Limits()
RESULT_LIMITS = Limits(max_header=0xFFFF)     # clients: a result header is an engine's (<= DEFAULT) + ~1.5 KiB
HANDSHAKE_LIMITS = Limits(max_frame=2048, max_header=2000, max_buffers=0)


_HEAD0 = struct.Struct("!IHB")          # prefix and fixed header of a frame without buffers ...
_HEAD1 = struct.Struct("!IHBI")         # ... and of one with one buffer (most messages): one pack each


def encode_frame(header: dict[str, Any] | bytes, buffers: tuple[bytes, ...] | list[bytes] = ()) -> bytes:
    """One frame as bytes (a bytes header must be a binary one). Raises ValueError beyond what the format holds."""
    head = header if type(header) is bytes else _json_encode(header).encode()
    n_head, n_bufs = len(head), len(buffers)
    if n_head > 0xFFFF or n_bufs > 0xFF:
        raise ValueError("header too large or too many buffers for one frame")
    if n_bufs == 0:
        return _HEAD0.pack(3 + n_head, n_head, 0) + head
    if n_bufs == 1:
        buf = buffers[0]
        return b"".join((_HEAD1.pack(7 + n_head + len(buf), n_head, 1, len(buf)), head, buf))
    lens = b"".join(_LEN.pack(len(b)) for b in buffers)
    body_len = _HEAD.size + len(lens) + n_head + sum(len(b) for b in buffers)
    return b"".join((_PREFIX.pack(body_len), _HEAD.pack(n_head, n_bufs), lens, head, *buffers))


RECV_CHUNK = 256 * 1024        # bytes one blocking-socket read takes at most (into a reused buffer, see recv_into)


def recv_into(sock: Any, scratch: bytearray, flags: int = 0) -> memoryview:
    """One `recv` into the caller's reusable `scratch` buffer; the bytes read, as a view (empty at EOF).

    A fresh `recv(1 MiB)` costs an mmap, an mremap and a munmap per call (strace of a worker: three of
    its five syscalls per no-op task, bench_live.py); reading into one buffer costs none.
    """
    n = sock.recv_into(scratch, len(scratch), flags)
    return memoryview(scratch)[:n]


class FrameDecoder:
    """Sans-IO decoder: `feed(data)` returns the complete frames so far as `(header, buffers)` pairs.

    Raises `ProtocolError` (and only that) for anything that is not a valid frame within `limits`;
    after an error the decoder is unusable and the connection should be closed.
    """

    __slots__ = ("limits", "_buf", "_broken")

    def __init__(self, limits: Limits = DEFAULT_LIMITS):
        self.limits = limits
        self._buf = bytearray()
        self._broken = False

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[dict[str, Any] | bytes, list[bytes]]]:
        if self._broken:
            raise ProtocolError("decoder already failed on this connection")
        if not self._buf and len(data) >= 12:
            # Most reads are exactly one frame with a binary header and one buffer (a task, its answer): checked
            # and cut here in one unpack, the same pair as below (~90 bytecodes instead of ~205). Anything else,
            # valid or not, takes the general path, whose checks and errors are the reference.
            body_len, head_len, nbufs, length = _HEAD1.unpack_from(data)
            limits = self.limits
            if nbufs == 1 and len(data) == 4 + body_len and 7 + head_len + length == body_len and data[11] == 0 \
                    and 0 < head_len <= limits.max_header and body_len <= limits.max_frame and limits.max_buffers:
                return [(bytes(data[11:11 + head_len]), [bytes(data[11 + head_len:])])]
        if self._buf:
            buf: Any = self._buf
            buf += data
        else:                   # nothing held: parse the read itself and keep only a partial frame's bytes
            buf = data          # (no copy of every read into the buffer and out again: bench_cpu_split.py)
        frames: list[tuple[dict[str, Any] | bytes, list[bytes]]] = []
        pos = 0
        n = len(buf)
        max_frame = self.limits.max_frame
        try:
            while n - pos >= 4:
                (body_len,) = _PREFIX.unpack_from(buf, pos)
                if body_len > max_frame:
                    raise ProtocolError(f"frame of {body_len} bytes exceeds the limit of {max_frame}")
                if body_len < _HEAD.size:
                    raise ProtocolError(f"frame of {body_len} bytes is shorter than its fixed header")
                end = pos + 4 + body_len
                if end > n:
                    break
                frames.append(self._parse(buf, pos + 4, end))
                pos = end
        except ProtocolError:
            self._broken = True
            raise
        if buf is self._buf:
            if pos:
                del buf[:pos]
        elif pos < n:
            self._buf += buf[pos:]
        return frames

    def _parse(self, buf: Any, start: int, end: int) -> tuple[dict[str, Any] | bytes, list[bytes]]:
        head_len, nbufs = _HEAD.unpack_from(buf, start)
        if head_len > self.limits.max_header:
            raise ProtocolError(f"header of {head_len} bytes exceeds the limit of {self.limits.max_header}")
        if nbufs > self.limits.max_buffers:
            raise ProtocolError(f"{nbufs} buffers exceed the limit of {self.limits.max_buffers}")
        pos = start + _HEAD.size
        if nbufs == 1:                      # most messages: one payload or result
            if pos + 4 > end:
                raise ProtocolError("frame truncated inside its buffer lengths")
            (length,) = _LEN.unpack_from(buf, pos)
            pos += 4
            if pos + head_len + length != end:
                raise ProtocolError("frame lengths do not add up to its body length")
            lens = (length,)
        else:
            lens = []
            for _ in range(nbufs):
                if pos + 4 > end:
                    raise ProtocolError("frame truncated inside its buffer lengths")
                lens.append(_LEN.unpack_from(buf, pos)[0])
                pos += 4
            if pos + head_len + sum(lens) != end:
                raise ProtocolError("frame lengths do not add up to its body length")
        header: dict[str, Any] | bytes
        if head_len and buf[pos] == 0:      # binary header: messages.from_wire checks it
            header = bytes(buf[pos:pos + head_len])
        else:
            try:
                header = _json_decode(bytes(buf[pos:pos + head_len]).decode())
            except (UnicodeDecodeError, ValueError) as exc:
                raise ProtocolError(f"frame header is not JSON: {exc}") from None
            if not isinstance(header, dict) or not isinstance(header.get("t"), str):
                raise ProtocolError("frame header must be a JSON object with a string 't'")
        pos += head_len
        buffers = []
        for length in lens:
            buffers.append(bytes(buf[pos:pos + length]))
            pos += length
        return header, buffers


# ------------------------------------------------------------------------------ authentication

def new_key() -> str:
    """A fresh random cluster key (hex, 256 bits)."""
    return secrets.token_hex(32)


def new_nonce() -> str:
    """A fresh random challenge (hex, 128 bits)."""
    return secrets.token_hex(16)


def _mac(key: str, *parts: str) -> str:
    return hmac.new(key.encode(), "|".join(parts).encode(), hashlib.sha256).hexdigest()


def peer_proof(key: str, role: str, server_nonce: str, peer_nonce: str) -> str:
    """The mac a connecting peer sends to prove it knows `key`."""
    return _mac(key, "peer", role, server_nonce, peer_nonce)


def server_proof(key: str, role: str, server_nonce: str, peer_nonce: str) -> str:
    """The mac the server answers with to prove it knows `key` too."""
    return _mac(key, "server", role, peer_nonce, server_nonce)


def check_proof(expected: str, given: Any) -> None:
    """Raise AuthenticationError unless `given` equals `expected` (constant-time compare)."""
    if not isinstance(given, str) or not hmac.compare_digest(expected, given):
        raise AuthenticationError("HMAC proof does not match the cluster key")


ROLES = ("engine", "client")
