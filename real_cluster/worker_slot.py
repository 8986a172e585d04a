"""What an engine's worker is running, in a page of memory it shares with its nanny (no syscall per task).

How this works. A task sent straight to the worker over its own connection (worker.py, "direct link")
never passes through the nanny, yet the nanny must still know what runs: to stop it at its time limit,
on abort, above the memory limit, and to report it when the worker dies. The worker writes the task's
id, attempt, time limit and start times here when it starts one and clears them when it ends; the nanny
reads them whenever it needs to (its watchdog, a CancelTask, the worker's death). Writes are guarded by
a sequence number (a seqlock: odd while the worker writes), so the nanny never reads half a record.
The nanny sets `nanny_waiting` when it holds a task for the worker while a direct one runs; the worker
then wakes it (a Heartbeat on the pipe) as soon as that task ends (bench_live.py: round trip, burst).
"""

from __future__ import annotations

import math
import mmap
import os
import struct
import tempfile
from dataclasses import dataclass

SLOT_BYTES = 4096
_HEAD = struct.Struct("=IBBHIddd")     # seq, busy, nanny_waiting, id length, attempt, limit, wall, mono
_SEQ = struct.Struct("=I")
_SEQ_BUSY = struct.Struct("=IB")       # seq and busy, written together
_TAIL = struct.Struct("=HIddd")        # from offset 6: everything after busy and nanny_waiting
_WAITING_AT = 5
_ID_MAX = SLOT_BYTES - _HEAD.size
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class Running:
    """The task a worker runs: its id and attempt, its time limit (None: none), when it started (wall, monotonic)."""

    task_id: str
    attempt: int
    time_limit_s: float | None
    started_at: float
    started_mono: float

    def __post_init__(self) -> None:
        if self.attempt < 0 or self.started_mono < 0:
            raise ValueError("attempt and started_mono must not be negative")


class TaskSlot:
    """The shared page. The nanny makes one (`TaskSlot()`) and passes `fd` to its worker (`TaskSlot(fd=...)`)."""

    def __init__(self, fd: int | None = None):
        if fd is None:
            if hasattr(os, "memfd_create"):
                fd = os.memfd_create("sched-lab-slot", os.MFD_CLOEXEC)
            else:                                   # not Linux: an unlinked temporary file
                fd = os.dup(tempfile.TemporaryFile().fileno())
            os.ftruncate(fd, SLOT_BYTES)
        self.fd = fd
        self._map = mmap.mmap(fd, SLOT_BYTES)
        self._seq = _SEQ.unpack_from(self._map, 0)[0]

    # ------------------------------------------------------------------------------- worker
    def started(self, task_id: str, attempt: int, time_limit_s: float | None, started_at: float,
                started_mono: float) -> None:
        """The worker starts this task (ids longer than the slot holds are cut: the nanny only compares them)."""
        raw = task_id.encode()
        if len(raw) > _ID_MAX:
            raw = raw[:_ID_MAX]
        m = self._map
        seq = self._seq + 1
        _SEQ_BUSY.pack_into(m, 0, seq, 1)                          # odd: being written (and busy)
        _TAIL.pack_into(m, 6, len(raw), attempt, _NAN if time_limit_s is None else time_limit_s, started_at,
                        started_mono)                              # (nanny_waiting, byte 5, is the nanny's)
        m[_HEAD.size:_HEAD.size + len(raw)] = raw
        self._seq = seq + 1
        _SEQ.pack_into(m, 0, seq + 1)

    def ended(self) -> bool:
        """The task ended (its answer is sent); True if the nanny asked to be woken (the flag is cleared).

        No sequence bump: only `busy` changes, and a reader that still sees it set reads the whole record of a task
        that was running a moment before (as if it had read just before this call)."""
        m = self._map
        m[4] = 0
        if m[_WAITING_AT]:
            m[_WAITING_AT] = 0
            return True
        return False

    def nanny_waits(self) -> bool:
        """Whether the nanny holds a task for this worker (it asked to be woken): a staged one is not taken then."""
        return self._map[_WAITING_AT] != 0

    # -------------------------------------------------------------------------------- nanny
    def running(self) -> Running | None:
        """The task the worker runs now, or None (a consistent snapshot)."""
        m = self._map
        for _ in range(10000):
            seq, busy, _w, n, attempt, limit, wall, mono = _HEAD.unpack_from(m, 0)
            if seq & 1:
                continue
            raw = bytes(m[_HEAD.size:_HEAD.size + n]) if busy else b""
            if _SEQ.unpack_from(m, 0)[0] != seq:
                continue
            if not busy:
                return None
            return Running(raw.decode(errors="replace"), attempt, None if math.isnan(limit) else limit, wall, mono)
        return None                                 # a worker stopped mid-write (SIGSTOP): nothing readable

    def ask_wakeup(self) -> None:
        """Nanny: have the worker send a Heartbeat on the pipe when its current task ends."""
        self._map[_WAITING_AT] = 1

    def reset(self) -> None:
        """Nanny, for a fresh worker: nothing runs."""
        self._map[:_HEAD.size] = bytes(_HEAD.size)
        self._seq = 0

    def close_fd(self) -> None:
        """Close the file descriptor (the mapping stays readable: a dead worker's slot says what it ran)."""
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = -1
