"""What issue 10 left: the whole error text kept in the task database (column error_full, up to 1 MiB
characters; clients still get 64 KiB), and output written straight to file descriptors 1 and 2 (os.write,
C stdio through ctypes, a child process) captured per task, bounded (1 MiB per fd, truncation marked), with
nothing left over for the next task. Real engines on the shared cluster; units for FdCapture."""

from __future__ import annotations

import os
import sys

import pytest

from real_cluster.error import RemoteError
from real_cluster.worker import ERROR_TEXT_MAX, OUTPUT_MAX, TEXT_MAX, FdCapture, describe_exception_full

pytestmark = pytest.mark.timeout(120)


def _raise_long(n):
    raise ValueError("<" + "x" * n + ">")


def test_the_whole_error_text_is_kept_in_the_database_up_to_its_cap(rc, view):
    with pytest.raises(RemoteError) as info:
        view.apply_sync(_raise_long, 300_000)
    assert len(info.value.evalue) <= TEXT_MAX and "truncated" in info.value.evalue     # the client: capped
    tid = info.value.task_id if hasattr(info.value, "task_id") else None
    huge = view.apply_async(_raise_long, 3 * ERROR_TEXT_MAX)
    small = view.apply_async(_raise_long, 10)
    for ar in (huge, small):
        with pytest.raises(RemoteError):
            ar.get(30)
    ids = [huge.msg_ids[0], small.msg_ids[0]]
    rows = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": ids}}, ["error_full", "evalue"])}
    full = rows[huge.msg_ids[0]]["error_full"]
    assert full.startswith("Traceback") and "ValueError: <xxxx" in full
    assert len(full) <= ERROR_TEXT_MAX and full.endswith("more characters]")           # capped, and says so
    assert rows[small.msg_ids[0]]["error_full"] is None                                # whole already
    assert rows[small.msg_ids[0]]["evalue"] == "<xxxxxxxxxx>"
    last = rc.db_query({"ename": "ValueError", "evalue": {"$ne": "<xxxxxxxxxx>"}}, ["error_full", "submitted"])
    whole = [r["error_full"] for r in last if r["error_full"] and "x" * 300_000 + ">" in r["error_full"]]
    assert whole, "the 300,000-character message was not kept whole"
    assert tid is None or any(r["msg_id"] == tid for r in last)
    assert "error_full" not in rc.db_query({"msg_id": ids[0]})[0]                      # only when asked for


def _c_level_output(n_flood):
    import ctypes
    import os
    import subprocess
    libc = ctypes.CDLL(None)
    os.write(1, b"os.write to fd 1\n")
    os.write(2, b"os.write to fd 2\n")
    libc.puts(b"libc puts")
    libc.printf(b"libc printf %d\n", 42)
    print("python print")
    subprocess.run(["echo", "child echo"], check=True)
    if n_flood:
        libc.fputs(b"F" * n_flood, ctypes.c_void_p.in_dll(libc, "stderr"))
    return "done"


def test_output_written_straight_to_fds_1_and_2_is_captured(rc, view):
    eid = view.client.ids[0]
    with view.temp_flags(targets=eid):
        ar = view.apply_async(_c_level_output, 0)
        assert ar.get(30) == "done"
        flood = view.apply_async(_c_level_output, 3 * OUTPUT_MAX)
        assert flood.get(60) == "done"
        after = view.apply_async(_c_level_output, 0)
        assert after.get(30) == "done"
    rows = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": ar.msg_ids + flood.msg_ids + after.msg_ids}},
                                                ["stdout", "stderr"])}
    out, err = rows[ar.msg_ids[0]]["stdout"], rows[ar.msg_ids[0]]["stderr"]
    for line in ("python print", "os.write to fd 1", "libc puts", "libc printf 42", "child echo"):
        assert line + "\n" in out, (line, out)
    assert err == "os.write to fd 2\n"
    assert ar.stdout == out                                                            # the client has it too
    big = rows[flood.msg_ids[0]]["stderr"]
    assert big.startswith("os.write to fd 2\nFFFF") and "output truncated" in big and len(big) <= OUTPUT_MAX + 200
    assert rows[after.msg_ids[0]]["stderr"] == "os.write to fd 2\n"                   # nothing left over
    assert rows[after.msg_ids[0]]["stdout"] == out


def test_fd_capture_unit_takes_per_task_forwards_idle_output_and_restores_the_fds(capfd):
    import ctypes
    capfd.readouterr()
    cap = FdCapture()
    before = os.fstat(1).st_ino, os.fstat(2).st_ino
    stdout_before = sys.stdout
    sys.stdout.flush()
    cap.start()
    try:
        assert cap.take() == ("", "")                       # nothing written: nothing taken
        os.write(1, b"one\n")
        os.write(2, b"two\n")
        ctypes.CDLL(None).printf(b"unflushed C stdio")      # fully buffered on a pipe: take() flushes it
        assert cap.take() == ("one\nunflushed C stdio", "two\n")
        assert cap.take() == ("", "")                       # taken once, nothing left for the next task
        sys.stdout.write("the worker's own print\n")       # not a task's: goes to the original fd 1
        sys.stdout.flush()
        assert cap.take() == ("", "")
        os.write(1, b"written while idle\n")
        cap.forward()                                       # the worker's selector saw it while no task ran
        assert cap.take() == ("", "")
    finally:
        cap.stop()
    assert sys.stdout is stdout_before
    assert (os.fstat(1).st_ino, os.fstat(2).st_ino) == before
    assert cap.take() == ("", "")                           # stopped: captures nothing
    assert capfd.readouterr().out == "the worker's own print\nwritten while idle\n"   # where fd 1 always went


def test_fd_capture_unit_marks_a_full_pipe_truncated():
    cap = FdCapture(limit=65536)
    sys.stdout.flush()
    cap.start()
    try:
        size = cap.pipes[0][3]
        written = 0
        while written < 3 * size:
            try:
                written += os.write(1, b"x" * 4096)
            except BlockingIOError:                         # full: the rest is dropped, the writer never blocks
                break
        out, err = cap.take()
    finally:
        cap.stop()
    assert out.startswith("x" * 4096) and "output truncated" in out and err == ""


def test_full_error_text_unit():
    try:
        raise KeyError("k" * (TEXT_MAX + 10))
    except KeyError as exc:
        ename, evalue, tb, full = describe_exception_full(exc)
    assert ename == "KeyError" and len(evalue) <= TEXT_MAX and "k" * (TEXT_MAX + 10) in full
    try:
        raise KeyError("short")
    except KeyError as exc:
        assert describe_exception_full(exc)[3] is None
