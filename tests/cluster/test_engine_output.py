"""What a task hands back can never hurt its engine: huge messages, a raising __str__/__repr__, unpicklable
exceptions and results, a result over the cap (ResultTooLarge), undecodable text; each reaches the client
as a RemoteError with the task's own ename and texts capped at 64 KiB (truncation marked), and the same
worker serves on. stdout/stderr are captured (1 MiB each, truncation marked) into the task database. A large
result over a slow (throttled) link is delivered: liveness is judged on bytes, not whole frames."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from real_cluster import protocol as proto
from real_cluster.error import RemoteError
from real_cluster.messages import TaskDone, TaskResult, from_wire, to_wire
from real_cluster.profile import ENGINE_FILE, read_connection_file
from real_cluster.worker import OUTPUT_MAX, TEXT_MAX, CappedText, cap, describe_exception

pytestmark = pytest.mark.timeout(120)


class BadStr(Exception):
    def __str__(self):
        raise RuntimeError("no str for you")


class BadBoth(Exception):
    def __str__(self):
        raise RuntimeError("no str")

    def __repr__(self):
        raise RuntimeError("no repr")


class Unpicklable(Exception):
    def __init__(self):
        super().__init__("carries a lock")
        self.lock = threading.Lock()


class NoReduce:
    def __reduce__(self):
        raise RuntimeError("refuses to be pickled")


def _raise(kind):
    if kind == "huge":
        raise ValueError("x" * 100_000)
    if kind == "31k":
        raise KeyError("k" * 31_000)
    if kind == "badstr":
        raise BadStr()
    if kind == "badboth":
        raise BadBoth()
    if kind == "unpicklable":
        raise Unpicklable()
    if kind == "surrogate":
        raise ValueError("bad \udc80 text")
    if kind == "deep":
        def down(n):
            return down(n - 1) if n else 1 / 0
        return down(5000)
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, ename, needle", [
    ("huge", "ValueError", "truncated"), ("31k", "KeyError", "kkkk"), ("badstr", "BadStr", "BadStr"),
    ("badboth", "BadBoth", "unprintable BadBoth"), ("unpicklable", "Unpicklable", "carries a lock"),
    ("surrogate", "ValueError", "\\udc80"), ("deep", "RecursionError", ""),
])
def test_hostile_exception_is_reported_and_the_worker_serves_on(view, kind, ename, needle):
    eid = view.client.ids[0]
    with view.temp_flags(targets=eid):
        pid = view.apply_sync(os.getpid)
        with pytest.raises(RemoteError) as info:
            view.apply_sync(_raise, kind)
        assert info.value.ename == ename and needle in info.value.evalue
        assert len(info.value.evalue) <= TEXT_MAX and len(info.value.traceback) <= TEXT_MAX
        assert view.apply_sync(os.getpid) == pid              # the same worker: nothing died


@pytest.mark.parametrize("value, ename", [(threading.Lock, "TypeError"), (NoReduce, "RuntimeError")])
def test_unpicklable_result_is_reported(view, value, ename):
    with pytest.raises(RemoteError) as info:
        view.apply_sync(value)
    assert info.value.ename == ename and "could not be pickled" in info.value.evalue
    assert view.apply_sync(abs, -4) == 4


def test_result_over_the_cap_is_result_too_large_naming_size_and_cap(make_cluster):
    cluster = make_cluster(1, engine_args=["--result-max", "1M"])
    v = cluster.client.load_balanced_view()
    pid = v.apply_sync(os.getpid)
    with pytest.raises(RemoteError) as info:
        v.apply_sync(bytes, 2 * 2**20)
    assert info.value.ename == "ResultTooLarge"
    assert str(2**20) in info.value.evalue and "bytes" in info.value.evalue
    assert v.apply_sync(os.getpid) == pid
    assert len(v.apply_sync(bytes, 2**19)) == 2**19            # under the cap: delivered


def _chatty(n_out, n_err):
    import sys
    print("o" * n_out)
    print("e" * n_err, file=sys.stderr)
    return "done"


def test_stdout_and_stderr_are_captured_bounded_and_stored(rc, view):
    ar = view.apply_async(_chatty, 10, 20)
    assert ar.get(10) == "done"
    big = view.apply_async(_chatty, OUTPUT_MAX + 5000, 3)
    assert big.get(20) == "done"
    rows = {r["msg_id"]: r for r in rc.db_query({"msg_id": {"$in": ar.msg_ids + big.msg_ids}},
                                                ["stdout", "stderr"])}
    small = rows[ar.msg_ids[0]]
    assert small["stdout"] == "o" * 10 + "\n" and small["stderr"] == "e" * 20 + "\n"
    flood = rows[big.msg_ids[0]]
    assert flood["stdout"].startswith("o" * 1000) and "output truncated: 5001 more characters" in flood["stdout"]
    assert len(flood["stdout"]) < OUTPUT_MAX + 200 and flood["stderr"] == "eee\n"
    quiet = view.apply_async(abs, 1)
    quiet.get(10)
    row = rc.db_query({"msg_id": quiet.msg_ids[0]}, ["stdout", "stderr"])[0]
    assert row["stdout"] is None and row["stderr"] is None


# ------------------------------------------------------------------------------- slow link

class ThrottledProxy:
    """A local TCP proxy whose upstream direction (engine -> controller) runs at `rate` bytes/s."""

    def __init__(self, target: tuple[str, int], rate: float):
        self.target, self.rate = target, rate
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.socks: list[socket.socket] = [self.server]
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()
        self.forwarded_up = 0

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            self.socks += [conn, up]
            for args in ((conn, up, self.rate), (up, conn, None)):
                t = threading.Thread(target=self._pump, args=args, daemon=True)
                self.threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket, rate: float | None) -> None:
        chunk = 16384 if rate else 1 << 20
        try:
            while True:
                data = src.recv(chunk)
                if not data:
                    break
                dst.sendall(data)
                if rate:
                    self.forwarded_up += len(data)
                    time.sleep(len(data) / rate)            # the link's speed, not a wait on the code
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        for s in self.socks:
            s.close()
        for t in self.threads:
            t.join(5)


def test_large_result_over_a_slow_link_is_delivered(make_cluster, tmp_path):
    cluster = make_cluster(0, controller_args=["--hb-period", "0.2", "--hb-misses", "5"])    # silence 1 s = lost
    rc = cluster.client
    info = read_connection_file(cluster.dir / "security" / ENGINE_FILE)
    rate = 2_000_000
    proxy = ThrottledProxy((info.host, info.port), rate)
    conn_file = tmp_path / "via-proxy.json"
    conn_file.write_text(json.dumps({**dataclasses.asdict(info), "port": proxy.port}))
    os.chmod(conn_file, 0o600)
    engine = subprocess.Popen([sys.executable, "-m", "real_cluster.engine", "--file", str(conn_file),
                               "--log", str(tmp_path / "engine.log")], stdin=subprocess.DEVNULL)
    try:
        rc.wait_for_engines(1, 30)
        v = rc.load_balanced_view()
        size = 8 * rate                                         # about 8 s on the wire: 8 liveness timeouts
        t0 = time.monotonic()
        ar = v.apply_async(os.urandom, size)
        data = ar.get(120)
        assert len(data) == size and time.monotonic() - t0 > 4  # it really went through the slow link
        assert rc.ids == [0] and v.apply_sync(abs, -7) == 7    # never declared lost meanwhile
        assert [str(r.outcome) for r in rc.records() if r.task_id == ar.msg_ids[0]] == ["ok"]
    finally:
        engine.kill()
        engine.wait(10)
        proxy.close()


# ------------------------------------------------------------------------------------ units

def test_capped_texts_and_exception_descriptions():
    assert cap("abc", 10) == "abc"
    long = cap("y" * 1000, 100)
    assert len(long) <= 100 and long.endswith(f"[truncated: {1000 - long.index(chr(10))} more characters]")
    assert long.startswith("y" * 60)
    out = CappedText(10)
    out.write("0123456789abc")
    out.write("def")
    assert out.text().startswith("0123456789") and "6 more characters" in out.text()
    try:
        raise BadBoth()
    except BadBoth as exc:
        ename, evalue, tb = describe_exception(exc)
    assert ename == "BadBoth" and evalue == "<unprintable BadBoth object>" and "Traceback" in tb


def test_long_texts_travel_in_a_buffer_and_round_trip():
    done = TaskDone(task_id="t", attempt=0, status="error", started_at=1.0, completed_at=2.0, ename="E",
                    evalue="v" * TEXT_MAX, traceback="t" * TEXT_MAX, stdout="o" * OUTPUT_MAX, stderr="\x00" * 9000)
    header, buffers = to_wire(done)
    frame = proto.encode_frame(header, buffers)
    assert isinstance(header, dict) and header.get("xh") == 1
    got = from_wire(*proto.FrameDecoder().feed(frame)[0])
    assert got == done
    res = TaskResult(task_id="t", status="ok", engine_id=0, submitted_at=1.0, started_at=1.0, completed_at=1.0,
                     received_at=1.0, result=b"x", stdout="hi", stderr="")
    assert from_wire(*proto.FrameDecoder().feed(proto.encode_frame(*to_wire(res)))[0]) == res


def test_a_quiet_success_is_framed_without_a_message_and_decodes_as_the_same_task_done():
    from real_cluster.messages import RunTask
    from real_cluster.serialize import pack_call, unpack_result
    from real_cluster.worker import execute, frame_of, run_task
    quiet = RunTask(task_id="t-quiet", attempt=3, payload=pack_call(abs, (-4,), {}))
    ended = run_task(quiet)
    assert type(ended) is tuple                                     # (started_at, completed_at, result)
    want = TaskDone(task_id="t-quiet", attempt=3, status="ok", started_at=ended[0], completed_at=ended[1],
                    result=ended[2])
    assert frame_of(quiet, ended) == proto.encode_frame(*to_wire(want))     # the very bytes of the message
    got = from_wire(*proto.FrameDecoder().feed(frame_of(quiet, ended))[0])
    assert got == want and unpack_result(got.result) == 4
    done = execute(quiet)
    assert done.status == "ok" and unpack_result(done.result) == 4 and done.stdout == ""
    noisy = RunTask(task_id="t-noisy", attempt=0, payload=pack_call(print, ("hi",), {}))
    ended = run_task(noisy)                                         # output: a whole TaskDone carries it
    assert isinstance(ended, TaskDone) and ended.status == "ok" and ended.stdout == "hi\n"
    assert from_wire(*proto.FrameDecoder().feed(frame_of(noisy, ended))[0]) == ended
    failing = RunTask(task_id="t-fail", attempt=0, payload=pack_call(int, ("x",), {}))
    ended = run_task(failing)
    assert isinstance(ended, TaskDone) and ended.status == "error" and ended.ename == "ValueError"
    assert from_wire(*proto.FrameDecoder().feed(frame_of(failing, ended))[0]) == ended


def test_captured_text_streams_look_like_text_streams():
    import io
    out = CappedText()
    assert isinstance(out, io.TextIOBase) and out.writable() and not out.readable() and not out.isatty()
    print("a", "b", file=out, flush=True)
    out.writelines(["c\n", "d"])
    assert out.text() == "a b\nc\nd"
    with pytest.raises(io.UnsupportedOperation):
        out.fileno()
    with pytest.raises(io.UnsupportedOperation):
        out.read()
    with pytest.raises(TypeError):
        out.write(b"bytes")
