"""The client's connection: a blocking socket written by the calling thread, read by a waiting caller or a reader
thread.

How this works. A submission is encoded and written (`sendall`, under a lock) by the thread that
submits, so a task leaves the client without waking any other thread. A daemon reader thread waits
for the socket, decodes every frame a read brings and hands each message to `on_message`, which
resolves the waiting futures there; an event loop in between cost two hand-offs plus its own wake-ups
(bench_cpu_split.py and bench_live.py: the client's CPU per task and the apply_sync round trip).

A caller that waits for a result reads it itself (`read_until`), when no other caller reads: that saves the
reader thread's hand-off, ~20 % of an apply_sync round trip (`docs/performance-history.md`). One lock,
`_read_lock`, is held by whichever thread takes bytes off the socket and hands out the messages they make, so
they are handed out in order; neither holds it while it waits for the socket. After a caller has read, the reader
thread stays parked for `CALLER_LEASE_S` (the lease; each caller's read renews it), so a loop of `apply_sync` does
not wake it at every result; anything else that waits for a message (a request's reply, an engine list, a
concurrent.futures wait) asks for it at once (`waiting()`). Results nobody waits for (done-callbacks, `ready()`)
can thus come up to one lease late after a caller's read. A caller that is the main thread holds SIGINT's
handler off between a `recv` that took bytes and the hand-out of the messages they make, and raises it after
(Ctrl-C in a notebook would otherwise lose bytes of the stream); its wait for the socket stays interruptible.
Done-callbacks run in the thread that read their result. TLS keeps the reader thread alone, and
`SCHED_LAB_CALLER_READS=0` in the client's environment turns caller reads off.

A caller waiting for the only task out of all this process's clients polls the socket for up to `SPIN_S` before it
sleeps (`read_until(spin=True)`): an `apply_sync` loop then skips a wake-up of the client per round trip, and the
controller the cost of making it (`docs/performance-history.md`: ~0.8 of the round trip, for ~140 µs more of the
client's CPU). The poll backs off as a spinning mutex does: after a poll that ran out, the next wait sleeps at once,
after the next one two, then four, up to `SPIN_BACKOFF_MAX` (a loop of 1 ms tasks polls in one wait of 65); a poll
answered resets that. A wait with other tasks out never polls (a burst's answers come while the controller and the
workers need the cores; several threads' `apply_sync` loops keep them busy too), nor one after an answer that said
the controller had other tasks in flight (another process's client: the controller marks a result frame sent with
none, messages.py `result_ok_frame`), nor a client confined to one CPU (the poll would take the CPU the answer
needs); `SCHED_LAB_CLIENT_SPIN_US` sets the limit (0: off).

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

import _signal
import contextlib
import logging
import os
import random
import select
import socket
import ssl
import threading
import time
from typing import Any, Callable, Iterator, cast

from . import protocol as proto
from .error import ConnectionFailed, ProtocolError, Unreachable
from .messages import RESULT_HEADS
from .sync_link import SyncLink

log = logging.getLogger("real_cluster.client")

_JITTER = random.Random()      # spreads the retries of many clients refused at once
TLS_CHUNK = 16 * 1024           # bytes one TLS write takes at most (one record)
CALLER_LEASE_S = 0.02           # after a caller read its answer, the reader thread leaves the socket to callers so long
SPIN_S = 0.0005                 # a caller waiting for its process's only task out polls this long before it sleeps
SPIN_ENV = "SCHED_LAB_CLIENT_SPIN_US"
SPIN_BACKOFF_MAX = 64           # after polls that ran out, at most this many waits sleep at once before the next poll
_DONTWAIT = getattr(socket, "MSG_DONTWAIT", 0x40)
_SIGINT = 2
_NOT_HELD = contextlib.nullcontext()    # a caller other than the main thread: no KeyboardInterrupt can land there


def spin_limit() -> float:
    """Seconds a caller waiting for its only task polls before it sleeps (module doc): `SPIN_ENV` in microseconds,
    else `SPIN_S`; 0 when this process may run on one CPU only."""
    raw = os.environ.get(SPIN_ENV)
    try:
        limit = SPIN_S if raw is None else max(0.0, float(raw) / 1e6)
    except ValueError:
        log.warning("%s=%r is not a number of microseconds: using %d", SPIN_ENV, raw, int(SPIN_S * 1e6))
        limit = SPIN_S
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return limit if cpus > 1 else 0.0


_BUSY_HEAD, _IDLE_HEAD = RESULT_HEADS


class _ResultDecoder(proto.FrameDecoder):
    """The client's frame decoder, noting whether the last binary result frame said the controller had no other task
    in flight (`idle`; messages.py `result_ok_frame`): a caller polls for its next answer only then (module doc)."""

    __slots__ = ("idle",)

    def __init__(self, limits: proto.Limits) -> None:
        super().__init__(limits)
        self.idle = True

    def feed(self, data: Any) -> list[tuple[dict[str, Any] | bytes, list[bytes]]]:
        frames = super().feed(data)
        for header, _ in reversed(frames):  # the read's last result frame decides (a burst's read: one look)
            if type(header) is bytes:       # (binary; a JSON header comes decoded)
                head = header[:2]
                if head == _IDLE_HEAD or head == _BUSY_HEAD:
                    self.idle = head == _IDLE_HEAD
                    break
        return frames


def _pipe() -> tuple[int, int]:
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    return r, w


class _HeldInterrupt:
    """SIGINT's handler, held off in the main thread while bytes taken off the socket become messages handed out:
    swapped for one that notes the signal, put back after, and the signal raised again if it came (`_signal`'s
    functions: `signal.signal` costs ~3 µs more in its enum conversions)."""

    __slots__ = ("came", "_old")

    def __init__(self) -> None:
        self.came = False
        self._old: Any = None

    def _note(self, signum: int, frame: Any) -> None:
        self.came = True

    def __enter__(self) -> None:
        self.came = False
        self._old = _signal.signal(_SIGINT, self._note)

    def __exit__(self, *exc: Any) -> None:
        _signal.signal(_SIGINT, self._old)
        if self.came:
            _signal.raise_signal(_SIGINT)           # its own handler now, as if it came this moment


class ClientLink(SyncLink):
    """An authenticated client connection. `start(on_message, on_close)` starts the reader thread;
    `send_frame` may be called from any thread. Raises like SyncLink (ConnectionFailed, ...)."""

    def __init__(self, sock: socket.socket, limits: proto.Limits = proto.RESULT_LIMITS):
        super().__init__(sock, limits)
        self._decoder = _ResultDecoder(self._decoder.limits)     # (the handshake's limits until it is done)
        self.closed = False
        self._close_reason: str | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()      # TLS: a whole frame per writer (`_lock`: the SSL object)
        self._owner = os.getpid()
        self.caller_reads = not self._tls and os.environ.get("SCHED_LAB_CALLER_READS", "1") != "0"
        self.reads = [0, 0]                     # reads of the socket: by the reader thread, by callers
        self.parked = False                     # the reader thread leaves the socket to callers now
        self._poke = _pipe() if self.caller_reads else None     # a caller's byte wakes the reader thread to park
        self.spin_s = spin_limit()              # a caller waiting for its only task polls so long (module doc)
        self._spin_skip = 0                     # waits that sleep at once before the next poll (a poll ran out)
        self._spin_backoff = 1                  # ... after the next poll that runs out
        self.spins = [0, 0]                     # polls answered, polls that ran out
        self.busy_waits = 0                     # waits not polled: the last answer said other tasks were in flight
        self._on_message: Callable[[Any], None] | None = None
        self._new_locks()

    def _new_locks(self) -> None:
        self._read_lock = threading.Lock()      # held while taking bytes off the socket and handing out messages
        self._reading = 0                       # the thread holding it (a nested wait in a done-callback reads on)
        self._state = threading.Condition(threading.Lock())     # what follows, and the parked reader's wait
        self._caller = False                    # a caller reads (the reader thread is parked)
        self._waiting = 0                       # threads waiting for the reader thread to read for them
        self._lease_until = 0.0                 # monotonic: the reader thread stays parked until then
        self._poked = False                     # a caller has written to `_poke` since the reader thread last woke

    def forked(self) -> None:
        """In a process forked from the owner's: this copy is closed, its descriptor only (module doc; the client
        calls it at the fork: client.py)."""
        self.closed = True
        self._close_reason = (f"the connection belongs to process {self._owner}, which this process forked from: "
                              "create a Client of its own here")
        self._reader = None                     # (not in this process)
        self._new_locks()                       # (another thread may have held one at the fork)
        self._close_poke()
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
        self._on_message = on_message
        self._reader = threading.Thread(target=self._read_loop, args=(on_message, on_close),
                                        name="real_cluster-client-reader", daemon=True)
        self._reader.start()

    def read_until(self, done: Callable[[], bool], deadline: float | None, spin: bool = False) -> bool:
        """Read and hand out messages in this thread until `done()` or the monotonic `deadline` (None: none). False
        if this thread cannot read now (another caller reads, TLS, closed, not started): wait for the reader thread
        then, inside `waiting()`. A failed connection is closed and answered as the reader thread does it. `spin`:
        the caller waits for the only task out of this process's clients (module doc: it may poll first)."""
        if not self.caller_reads or self.closed or self._on_message is None:
            return False
        held = None
        if threading.current_thread() is threading.main_thread():
            if _signal.getsignal(_SIGINT) is None:      # a handler not set from Python: it cannot be put back
                return False
            held = _HeldInterrupt()
        me = threading.get_ident()
        spin = spin and self.spin_s > 0
        if self._reading == me:             # waiting inside a done-callback of a message this thread hands out
            self._serve(done, deadline, held, spin)
            return True
        with self._state:
            if self._caller:
                return False
            self._caller = True             # the reader thread parks (or stays parked)
            if not self.parked and not self._poked and self._poke is not None:
                self._poked = True          # it waits for the socket: it would wake with us for every answer
                try:
                    os.write(self._poke[1], b"!")
                except OSError:
                    pass
        try:
            left = None if deadline is None else deadline - time.monotonic()
            if not self._read_lock.acquire(timeout=-1 if left is None else max(0.0, left)):
                return True                 # (the reader thread is handing out messages past the deadline)
            self._reading = me
            try:
                self._serve(done, deadline, held, spin)
            except Exception as exc:
                self._shutdown(self._reason(exc))
                return False                # the reader thread closes and answers every waiter
            finally:
                self._reading = 0
                self._read_lock.release()
        finally:
            with self._state:
                self._caller = False
                self._lease_until = time.monotonic() + CALLER_LEASE_S
                if self._waiting:           # others wait for the reader thread: it reads on at once
                    self._lease_until = 0.0
                    self._state.notify()
        return True

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """Around a wait for a message that no caller reads: the reader thread reads meanwhile, lease or not."""
        with self._state:
            self._waiting += 1
            self._state.notify()
        try:
            yield
        finally:
            with self._state:
                self._waiting -= 1

    def _serve(self, done: Callable[[], bool], deadline: float | None, held: _HeldInterrupt | None,
               spin: bool = False) -> None:
        hold = held or _NOT_HELD
        while True:
            if self._pending:               # left by a read whose hand-out a nested wait interrupted
                with hold:
                    self._hand_out()
            if done():
                return
            if spin and self._spin(deadline):
                pass                        # readable now
            elif deadline is None:
                self._readable(None)        # (Ctrl-C here loses nothing: no byte is taken yet)
            else:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if not self._readable(max(1, int(left * 1000 + 0.999))):
                    continue
            with hold:
                self._read(_DONTWAIT, True)
                self._hand_out()
            self.reads[1] += 1

    def _spin(self, deadline: float | None) -> bool:
        """Before a wait for the client's only task sleeps: poll the socket up to `spin_s` (and the deadline), unless
        a poll ran out lately (then this wait sleeps at once: after each poll that runs out, twice as many waits as
        after the last one, up to SPIN_BACKOFF_MAX; a poll answered resets that). Whether the socket is readable."""
        if self._spin_skip:
            self._spin_skip -= 1
            return False
        if not self._decoder.idle:          # (another client's tasks keep the cluster's cores busy)
            self.busy_waits += 1
            return False
        start = time.monotonic()
        end = start + self.spin_s
        by_deadline = deadline is not None and deadline < end      # (then running out says nothing of the answers)
        if by_deadline:
            end = deadline
        readable = self._readable
        if end <= start:
            return readable(0)
        while not readable(0):
            if time.monotonic() >= end:
                if by_deadline:
                    return False
                self._spin_skip = self._spin_backoff
                self._spin_backoff = min(SPIN_BACKOFF_MAX, 2 * self._spin_backoff)
                self.spins[1] += 1
                return False
        self._spin_backoff = 1
        self.spins[0] += 1
        return True

    def _hand_out(self) -> None:
        """Hand out the messages read, oldest first, one at a time (a nested wait hands out the rest in order)."""
        on_message = cast("Callable[[Any], None]", self._on_message)      # (a string: no typing subscription per call)
        pending = self._pending
        while pending:
            on_message(pending.pop(0))

    @staticmethod
    def _reason(exc: Exception) -> str:
        """Why reading ended, as `on_close` gets it (logged unless the connection just went)."""
        if isinstance(exc, ConnectionFailed):
            return str(exc)
        if isinstance(exc, ProtocolError):
            log.warning("closing the connection to the controller: %s: %s", type(exc).__name__, exc)
            return f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (OSError, ValueError)):      # the socket was shut down under select
            return f"connection lost: {exc!r}"
        log.error("error handling a message from the controller; closing the connection", exc_info=exc)
        return f"internal error: {exc!r}"       # (a bug while handling one message must not leave waiters hanging)

    def _park(self) -> None:
        """The reader thread waits while a caller reads, or while the lease runs and nobody waits for it."""
        with self._state:
            while not self.closed:
                if self._caller:            # (its end does not wake us: a loop of apply_sync would at every call)
                    self.parked = True
                    self._state.wait(CALLER_LEASE_S)
                    continue
                left = self._lease_until - time.monotonic()
                if left <= 0 or self._waiting:
                    break
                self.parked = True
                self._state.wait(left)
            self.parked = False

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
            if not self.caller_reads:
                while True:
                    for msg in self._next_messages():
                        on_message(msg)
            poke = cast("tuple[int, int]", self._poke)[0]
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            poller.register(poke, select.POLLIN)
            me = threading.get_ident()
            while True:
                self._park()
                if not self._pending:       # (the handshake's read may have brought the first messages)
                    if any(fd == poke for fd, _ in poller.poll()):    # not holding the lock: a caller may read
                        with self._state:
                            self._poked = False
                            os.read(poke, 64)
                if self._caller and not self.closed:
                    continue
                with self._read_lock:
                    self._reading = me
                    try:
                        if not self._pending:
                            self._read(_DONTWAIT, True)
                            self.reads[0] += 1
                        self._hand_out()
                    finally:
                        self._reading = 0
        except Exception as exc:
            reason = self._reason(exc)
        finally:
            self._shutdown(reason)          # (wakes a caller waiting for the socket: it lets go of the lock)
            reason = cast(str, self._close_reason)
            with self._read_lock:           # no caller polls a descriptor number closed here, maybe reused
                super().close()
                self._close_poke()
            on_close(reason)

    # ---------------------------------------------------------------------------- closing
    def _close_poke(self) -> None:
        with self._state:                   # (a caller writes to it under this lock)
            poke, self._poke = self._poke, None
        for fd in poke or ():
            os.close(fd)

    def _shutdown(self, reason: str) -> None:
        if self._close_reason is None:
            self._close_reason = reason
        self.closed = True
        with self._state:                   # a parked reader thread: it ends the connection
            self._state.notify()
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
            self._close_poke()
        elif reader is not threading.current_thread():
            reader.join(timeout)
