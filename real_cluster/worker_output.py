"""What a task prints, captured in the worker process: its `sys.stdout`/`sys.stderr` text and what it writes
straight to file descriptors 1 and 2, each bounded (worker.py runs tasks with them; issue 10, bench_worker.py)."""

from __future__ import annotations

import io
import logging
import os
import select
import sys
from typing import Any

OUTPUT_MAX = 1024 * 1024        # characters of captured stdout / stderr per task
log = logging.getLogger("real_cluster.engine")


def cap(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the cut marked with how much was dropped.

    Lone surrogates (which cannot travel as UTF-8) come back as backslash escapes."""
    try:
        text.encode()
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode()
    if len(text) <= limit:
        return text
    kept = max(0, limit - len(f"\n... [truncated: {len(text)} more characters]"))
    return text[:kept] + f"\n... [truncated: {len(text) - kept} more characters]"


class CappedText:
    """A write-only text stream that keeps the first `limit` characters and counts the rest.

    A plain slotted class, registered as an `io.TextIOBase` (isinstance holds): one is made per stream per task,
    and an IOBase subclass costs ~5x as much to make and drop (its finalizer; bench_worker.py)."""

    __slots__ = ("limit", "parts", "kept", "dropped", "closed")
    encoding = "utf-8"
    errors = "strict"
    newlines = None

    def __init__(self, limit: int = OUTPUT_MAX):
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.closed = False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        raise io.UnsupportedOperation("the task's captured output has no file descriptor")

    def _unsupported(self, *args: Any) -> Any:
        raise io.UnsupportedOperation("the task's captured output is write-only")

    read = readline = readlines = seek = tell = truncate = detach = _unsupported

    def __enter__(self) -> CappedText:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def write(self, s: Any) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def text(self) -> str:
        out = cap("".join(self.parts), self.limit)
        if self.dropped:
            out += f"\n... [output truncated: {self.dropped} more characters]\n"
        return out


io.TextIOBase.register(CappedText)


class FdCapture:
    """Captures what a task writes straight to file descriptors 1 and 2 (C code, `os.write`, child processes).

    How this works. `start()` points fds 1 and 2, once for the worker's life, at the write ends of two pipes,
    each sized to OUTPUT_MAX bytes (F_SETPIPE_SZ; the system's pipe-max-size may make it smaller) and set
    non-blocking: the first bytes stay in the pipe, and once it is full further writes fail (EAGAIN) and are
    lost instead of blocking the task, so capture is bounded in memory with no reader thread (a task holding
    the GIL while C code writes cannot deadlock against one). The worker's own `sys.stdout`/`sys.stderr` move to
    duplicates of the original fds, so what it prints between tasks goes where it always went. `take()`, at the
    end of each task, flushes C stdio and asks the kernel once (one poll of both pipes) whether anything was
    written; only then does it drain (a pipe found full, within two pages, is reported as truncated). So a task
    that writes nothing to fds 1/2 costs one poll, not the dup/dup2/close/read round of redirecting per task
    (bench_worker.py: 13 -> 4 syscalls per no-op task). What reaches the pipes while the worker is idle (a child
    a task left behind, an actor thread's C output) is passed on to the original fds (`forward`, from the
    worker's selector); written while another task runs, it is that task's output. Without pipes (not POSIX)
    it captures nothing.
    """

    def __init__(self, limit: int = OUTPUT_MAX):
        self.pipes: list[tuple[int, int, int, int]] = []      # (fd, read end, write end, capacity)
        self.saved: list[int] = []                             # the original fds 1 and 2, while started
        self._streams: tuple[Any, Any] | None = None           # sys.stdout / sys.stderr before start()
        self._poll: Any = None
        self._fflush: Any = None
        try:
            import ctypes
            self._fflush = ctypes.CDLL(None).fflush
        except (OSError, AttributeError):
            pass
        for fd in (1, 2):
            try:
                r, w = os.pipe()
            except (OSError, AttributeError):
                self.pipes.clear()
                return
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            size = 65536
            try:
                import fcntl
                size = fcntl.fcntl(w, 1031, limit)                # F_SETPIPE_SZ (Linux); returns the size set
            except (OSError, ImportError):
                try:
                    import fcntl
                    size = fcntl.fcntl(w, 1032)                    # F_GETPIPE_SZ
                except (OSError, ImportError):
                    pass
            self.pipes.append((fd, r, w, size))
        if hasattr(select, "poll"):
            self._poll = select.poll()
            for _, r, _, _ in self.pipes:
                self._poll.register(r, select.POLLIN)

    @property
    def read_ends(self) -> list[int]:
        """The pipes' read ends (for a selector: readable while idle -> `forward`)."""
        return [r for _, r, _, _ in self.pipes]

    def _flush_c(self) -> None:
        if self._fflush is not None:
            self._fflush(None)

    def start(self) -> None:
        """Point fds 1 and 2 at the pipes until `stop()`; sys.stdout/err write to the original fds meanwhile."""
        if self.saved or not self.pipes:
            return
        for stream in (sys.stdout, sys.stderr):
            _flush_quietly(stream)
        self._flush_c()                                 # what C stdio buffered before goes out first
        self.saved = [os.dup(fd) for fd, _, _, _ in self.pipes]
        self._streams = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = (_stream_on(saved, old) for saved, old in zip(self.saved, self._streams))
        for fd, _, w, _ in self.pipes:
            os.dup2(w, fd)

    def stop(self) -> None:
        """Restore fds 1 and 2 and sys.stdout/err (what is left in the pipes goes to the original fds)."""
        if not self.saved:
            return
        self._flush_c()
        self.forward()
        for (fd, _, _, _), old in zip(self.pipes, self.saved):
            os.dup2(old, fd)
        if self._streams is not None:
            for stream in (sys.stdout, sys.stderr):
                _flush_quietly(stream)
            sys.stdout, sys.stderr = self._streams
            self._streams = None
        for old in self.saved:
            os.close(old)
        self.saved = []

    def take(self) -> tuple[str, str]:
        """What was written to fds 1 and 2 since the last `take` (decoded, truncation marked); ("", "") if nothing."""
        if not self.saved:
            return "", ""
        self._flush_c()
        if self._poll is not None and not self._poll.poll(0):
            return "", ""
        texts = []
        for _, r, _, size in self.pipes:
            raw = _drain(r)
            text = raw.decode("utf-8", "backslashreplace")
            if len(raw) > size - _PIPE_SLACK:     # (a pipe fills page by page: "full" is within a page or two)
                text += (f"\n... [output truncated: the pipe of {size} bytes for this file descriptor filled up; "
                         f"what was written after that was dropped]\n")
            texts.append(text)
        return texts[0], texts[1]

    def forward(self) -> None:
        """Pass what the pipes hold on to the original fds (the worker is idle: no task wrote it)."""
        for (_, r, _, _), old in zip(self.pipes, self.saved):
            data = memoryview(_drain(r))
            try:
                while data:
                    data = data[os.write(old, data):]
            except OSError as exc:          # the original stdout is gone or full: nobody to give it to
                log.debug("worker %d: could not pass idle output on: %s", os.getpid(), exc)


def _drain(r: int) -> bytes:
    chunks = []
    while True:
        try:
            data = os.read(r, 1 << 20)
        except BlockingIOError:
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _flush_quietly(stream: Any) -> None:
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):      # closed, or not a stream: nothing to flush
        pass


def _stream_on(fd: int, like: Any) -> Any:
    """A line-buffered text stream on `fd` (not closing it), with `like`'s encoding and errors where it has them."""
    return io.TextIOWrapper(io.FileIO(fd, "w", closefd=False), encoding=getattr(like, "encoding", None) or "utf-8",
                            errors=getattr(like, "errors", None) or "backslashreplace", line_buffering=True,
                            write_through=True)


_PIPE_SLACK = 2 * 4096
