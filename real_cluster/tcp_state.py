"""Liveness of a peer whose socket we are not reading (the controller pauses engines for disk backpressure).

How this works. While we do not read a connection its frames (heartbeats included) stay in the kernel's
receive buffer, so "no frame for the liveness timeout" says nothing about the peer. The kernel still
knows: `poll` reports a peer that closed or reset the connection (POLLRDHUP/POLLHUP/POLLERR) even with
unread bytes queued, and TCP_INFO's `tcpi_last_data_recv` says when the last data segment arrived,
whether or not we read it. So during a pause:

- closed by the peer (it died: process killed, worker and nanny gone) -> "closed": read it again so its
  last frames and its end are handled as usual (at most one receive buffer of bytes);
- data received within the limit -> "alive";
- nothing received for longer than the limit while unread bytes wait in our buffer -> "alive": the
  silence may be ours (a full receive window stops the peer's heartbeats too); judged after the pause;
- nothing received for longer than the limit and nothing unread -> "silent": we had room, it sent
  nothing (hung, stopped or cut off): lost, as without a pause.

Linux only (TCP_INFO); elsewhere, or for a non-TCP socket, `verdict` returns "unknown" (judged after the pause).
"""

from __future__ import annotations

import fcntl
import select
import socket
import struct
import termios
from typing import Any, Literal

Verdict = Literal["alive", "closed", "silent", "unknown"]
_TCPI_LAST_DATA_RECV = 52          # offset of tcpi_last_data_recv (ms) in struct tcp_info (linux/tcp.h)
_TCP_INFO = getattr(socket, "TCP_INFO", None)
_HANGUP = select.POLLHUP | select.POLLERR | getattr(select, "POLLRDHUP", 0)


def verdict(sock: Any, limit_s: float) -> Verdict:
    """What the kernel says of the peer of `sock` (a socket, or asyncio's wrapper of one; None: "unknown")."""
    if sock is None or _TCP_INFO is None or sock.fileno() < 0:
        return "unknown"
    try:
        poller = select.poll()
        poller.register(sock.fileno(), _HANGUP)
        if poller.poll(0):
            return "closed"
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 104)
        if len(info) < _TCPI_LAST_DATA_RECV + 4:
            return "unknown"
        silent_ms = struct.unpack_from("I", info, _TCPI_LAST_DATA_RECV)[0]
        if silent_ms <= limit_s * 1000:
            return "alive"
        unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return "unknown"
    return "alive" if unread > 0 else "silent"


__all__ = ["verdict", "Verdict"]
