"""Which staged task each pulling worker holds, in memory the controller shares with them (pulling.py, worker.py).

How this works. Workers that pull take staged tasks from one datagram socket; the kernel hands each datagram to one
of them. A worker reports what it took (Took) with its next answer, but it can die in between, and the controller
must then know which staged task died with it, without waiting on anyone. So each pulling worker has an entry here,
written around every take: `begin` (a take is under way, nothing claimed) before its `recv`, and `claimed(seq)` (the
datagram's stage number) right after; the entry names the last task the worker took. The controller reads entries
(`state`) when a worker goes: one that died between `begin` and `claimed` may hold a datagram nobody can name, and
the controller waits until no live worker is in that window or has a take it has not reported yet, to tell which
staged tasks are the dead one's (pulling.py). Stage numbers grow, and a worker reports its takes in order, so an
entry naming a later one than the worker's last Took read means a Took on its way. Each entry is guarded by a
sequence number (odd while written), so a reader never sees half of one.
"""

from __future__ import annotations

import mmap
import os
import struct

ENTRIES = 4096                       # entry 0: the controller's flag; then one per pulling worker (indices are reused)
STAGE_FRAME_MAX = 128 * 1024         # a task whose frame is larger is never staged (a datagram must fit the buffer)
_ENTRY = struct.Struct("=IIQ")       # seq, pulling, claim
_SEQ = struct.Struct("=I")
TABLE_BYTES = ENTRIES * _ENTRY.size


class PullTable:
    """The shared entries. The controller makes one (`PullTable()`) and passes `fd` to workers (`PullTable(fd)`)."""

    def __init__(self, fd: int | None = None):
        if fd is None:
            fd = os.memfd_create("sched-lab-pull", os.MFD_CLOEXEC)
            os.ftruncate(fd, TABLE_BYTES)
        self.fd = fd
        self._map = mmap.mmap(fd, TABLE_BYTES)
        self._last = 0                       # (a worker's) the stage number of the last task it took

    def close(self) -> None:
        try:
            self._map.close()
        except (BufferError, ValueError):
            pass
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # ------------------------------------------------------------------------------- worker
    def staging(self) -> bool:
        """Whether the controller has tasks staged (entry 0's first byte): no take is tried while it has none."""
        return self._map[0] != 0

    def begin(self, index: int) -> None:
        """A take is under way (the entry still names the last task taken)."""
        self._write(index, 1, self._last)

    def claimed(self, index: int, seq: int) -> None:
        """The take is over: it got stage number `seq` (0: nothing; the entry keeps naming the last one taken)."""
        if seq:
            self._last = seq
        self._write(index, 0, self._last)

    def _write(self, index: int, pulling: int, claim: int) -> None:
        m, at = self._map, index * _ENTRY.size
        seq = _SEQ.unpack_from(m, at)[0]
        _SEQ.pack_into(m, at, seq + 1)                     # odd: being written
        _ENTRY.pack_into(m, at, seq + 1, pulling, claim)
        _SEQ.pack_into(m, at, seq + 2)

    # --------------------------------------------------------------------------- controller
    def state(self, index: int) -> tuple[bool, int] | None:
        """(pulling, claim) of an entry; None if it could not be read whole (its worker stopped mid-write)."""
        m, at = self._map, index * _ENTRY.size
        for _ in range(10000):
            seq, pulling, claim = _ENTRY.unpack_from(m, at)
            if seq & 1 or _SEQ.unpack_from(m, at)[0] != seq:
                continue
            return bool(pulling), claim
        return None

    def set_staging(self, on: bool) -> None:
        """Controller: say whether tasks are staged (entry 0 is no worker's)."""
        self._map[0] = 1 if on else 0

    def reset(self, index: int) -> None:
        """Controller: a fresh entry for a new worker (nothing under way, nothing claimed)."""
        _ENTRY.pack_into(self._map, index * _ENTRY.size, 0, 0, 0)
