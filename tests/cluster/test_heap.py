"""real_cluster.heap: the controller's large freed buffers go back to the kernel (glibc's mmap
threshold pinned), observed through glibc's own accounting in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")

_PROBE = r"""
import ctypes, json, sys
from real_cluster.heap import pin_mmap_threshold
class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
pinned = pin_mmap_threshold() if sys.argv[1] == "pin" else None
first = bytearray(4 << 20)
del first                                   # a free of a larger mmapped chunk: glibc raises the threshold to it
before = libc.mallinfo2().hblkhd             # what else is mmapped now: only the change counts
second = bytearray(1 << 20)
print(json.dumps({"pinned": pinned, "mmapped": libc.mallinfo2().hblkhd - before}))
"""


def _without_malloc_settings(environ: dict[str, str]) -> dict[str, str]:
    """The environment minus glibc's malloc settings: any of them turns the dynamic threshold off, and Dask's
    `distributed`, imported by earlier tests, sets MALLOC_TRIM_THRESHOLD_ in this very process."""
    return {k: v for k, v in environ.items() if not (k.startswith("MALLOC_") or k == "GLIBC_TUNABLES")}


def _probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=60,
                         env=_without_malloc_settings(os.environ) | env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_pinned_threshold_keeps_serving_large_buffers_by_mmap():
    plain, pinned = _probe("plain"), _probe("pin")
    assert plain["mmapped"] < 1 << 20              # without it the second 1 MiB buffer came from the heap
    assert pinned["pinned"] is True and pinned["mmapped"] >= 1 << 20   # with it, by mmap: munmapped when freed


def test_an_operators_own_threshold_stands():
    assert _probe("pin", MALLOC_MMAP_THRESHOLD_="4194304")["pinned"] is False
