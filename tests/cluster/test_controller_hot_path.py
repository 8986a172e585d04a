"""The controller's per-task shortcuts (bench_cpu_split.py) change nothing observable: frames encoded straight from
values (the client's Submit too) are byte for byte the messages' own, the frame decoder parsing a reused read buffer
in place returns what it did, the task database's cheaper rounding equals round(ts, 6), its identity adapters store
what sqlite3 stores anyway, a success's row carries its dispatch count whether or not the count shared its commit,
the core's record rows land as records, and a success kept for get_result as a tuple answers as the TaskResult it
stands for."""

from __future__ import annotations

import random
import sqlite3

import pytest
from _wait import wait_until
from hypothesis import given, settings
from hypothesis import strategies as st

from real_cluster import protocol as proto
from real_cluster.hub_requests import RequestHandler
from real_cluster.messages import (
    RESULT_HEADS, RunTask, Submit, TaskDone, TaskResult, Took, done_ok_frame, from_wire, result_ok, result_ok_frame,
    run_frame, submit_frame, to_wire, took_frame, NO_FLAGS,
)
from real_cluster.error import InvalidField
from real_cluster.task_table import RecordRows, TaskTable, spec_for
from real_cluster.taskdb import TaskDB, _us, install_fast_adapters
from sched_lab.core import Outcome, TaskSpec

pytestmark = pytest.mark.timeout(60)

_times = st.floats(min_value=0.0, max_value=4e9, allow_nan=False)


def _frame(msg: object) -> bytes:
    return proto.encode_frame(*to_wire(msg))


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300, alphabet=st.characters(blacklist_categories=("Cs",))),
       st.integers(min_value=0, max_value=2**32 - 1), st.binary(max_size=2000))
def test_run_frame_is_the_run_task_message_byte_for_byte(task_id, attempt, payload):
    frame = run_frame(task_id, attempt, payload)
    assert frame == _frame(RunTask(task_id=task_id, attempt=attempt, payload=payload))
    (header, buffers), = proto.FrameDecoder().feed(frame)
    assert from_wire(header, buffers) == RunTask(task_id=task_id, attempt=attempt, payload=payload)


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300, alphabet=st.characters(blacklist_categories=("Cs",))),
       st.integers(min_value=-2**31, max_value=2**31 - 1), _times, _times, _times, _times, st.binary(max_size=2000))
def test_result_ok_frame_is_the_task_result_message_byte_for_byte(task_id, eid, t1, t2, t3, t4, result):
    msg = result_ok(task_id, eid, t1, t2, t3, t4, result)
    assert msg == TaskResult(task_id=task_id, status="ok", engine_id=eid, submitted_at=t1, started_at=t2,
                             completed_at=t3, received_at=t4, result=result)
    frame = result_ok_frame(task_id, eid, t1, t2, t3, t4, result)
    assert frame == _frame(msg)
    (header, buffers), = proto.FrameDecoder(proto.RESULT_LIMITS).feed(frame)
    assert from_wire(header, buffers) == msg


def test_an_idle_result_frame_is_the_same_task_result_under_its_own_code():
    """`idle=True` (the controller had no other task in flight) changes the header's code only: the client decodes
    the same TaskResult, and its decoder tells the two apart by RESULT_HEADS."""
    busy = result_ok_frame("t1", 3, 1.0, 2.0, 3.0, 4.0, b"r")
    idle = result_ok_frame("t1", 3, 1.0, 2.0, 3.0, 4.0, b"r", idle=True)
    assert busy == _frame(result_ok("t1", 3, 1.0, 2.0, 3.0, 4.0, b"r")) and idle != busy
    decoded = [proto.FrameDecoder(proto.RESULT_LIMITS).feed(f)[0] for f in (busy, idle)]
    assert [h[:2] for h, _ in decoded] == list(RESULT_HEADS)
    assert from_wire(*decoded[0]) == from_wire(*decoded[1]) == result_ok("t1", 3, 1.0, 2.0, 3.0, 4.0, b"r")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300, alphabet=st.characters(blacklist_categories=("Cs",))), _times,
       st.binary(max_size=2000))
def test_submit_frame_is_the_submit_message_byte_for_byte(task_id, submitted_at, payload):
    msg = Submit(task_id=task_id, flags=NO_FLAGS, submitted_at=submitted_at, payload=payload)
    frame = submit_frame(task_id, submitted_at, payload)    # (a client's usual task: encoded without the message)
    assert frame == _frame(msg)
    (header, buffers), = proto.FrameDecoder().feed(frame)
    assert from_wire(header, buffers) == msg


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=300, alphabet=st.characters(blacklist_categories=("Cs",))),
       st.integers(min_value=0, max_value=2**32 - 1), _times, _times, st.binary(max_size=2000))
def test_done_ok_frame_is_the_task_done_message_byte_for_byte(task_id, attempt, started, completed, result):
    msg = TaskDone(task_id=task_id, attempt=attempt, status="ok", started_at=started, completed_at=completed,
                   result=result)
    frame = done_ok_frame(task_id, attempt, started, completed, result)    # (a worker's usual answer)
    assert frame == _frame(msg)
    (header, buffers), = proto.FrameDecoder().feed(frame)
    assert from_wire(header, buffers) == msg


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=256, alphabet=st.characters(blacklist_categories=("Cs",))),
       st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=2**63 - 1))
def test_took_frame_is_the_took_message_byte_for_byte(task_id, attempt, seq):
    msg = Took(task_id=task_id, attempt=attempt, seq=seq)
    frame = took_frame(task_id, attempt, seq)      # (a pulling worker's report of a take, with its answer)
    assert frame == _frame(msg)
    assert frame[7:9] == b"\x00\x07"                # the binary header, not JSON
    (header, buffers), = proto.FrameDecoder().feed(frame)
    assert from_wire(header, buffers) == msg


def test_a_binary_took_with_a_bad_id_or_stage_number_is_refused_as_the_json_one_is():
    json_frame = proto.encode_frame({"t": "took", "task_id": "t", "attempt": 1, "seq": 0})
    for frame, field in ((took_frame("t", 1, 0), "seq"), (took_frame("t", 1, -5), "seq"),
                         (took_frame("", 1, 3), "task_id"), (took_frame("x" * 257, 1, 3), "task_id"),
                         (json_frame, "seq")):
        (header, buffers), = proto.FrameDecoder().feed(frame)
        with pytest.raises(InvalidField) as err:
            from_wire(header, buffers)
        assert err.value.field == field, frame
    (header, buffers), = proto.FrameDecoder().feed(                 # a worker of before still sends JSON: read
        proto.encode_frame({"t": "took", "task_id": "t", "attempt": 1, "seq": 3}))
    assert from_wire(header, buffers) == Took(task_id="t", attempt=1, seq=3)
    (header, buffers), = proto.FrameDecoder().feed(took_frame("t", 1, 3))
    with pytest.raises(proto.ProtocolError, match="buffers"):        # a binary Took carries no buffer
        from_wire(header, [b"x"])


def test_frame_encoders_refuse_what_the_binary_header_cannot_hold():
    with pytest.raises(ValueError):
        run_frame("t", 2**32, b"")
    with pytest.raises(ValueError):
        run_frame("t", True, b"")
    with pytest.raises(ValueError):
        result_ok_frame("t", 2**31, 1.0, 1.0, 1.0, 1.0, b"")


def test_the_decoder_parses_a_reused_read_buffer_without_keeping_it():
    """A Link reads into one buffer and hands the decoder a view of it: a partial frame must be copied, so the
    next read overwriting the buffer cannot change it."""
    msgs = [Submit(task_id=f"t{i}", flags=NO_FLAGS, submitted_at=1.5, payload=bytes([i]) * (i * 37 % 500))
            for i in range(200)]
    data = b"".join(_frame(m) for m in msgs)
    rnd = random.Random(7)
    scratch = bytearray(4096)
    dec = proto.FrameDecoder()
    out = []
    pos = 0
    while pos < len(data):
        n = min(rnd.choice([1, 5, 100, 1000, 4096]), len(data) - pos)
        scratch[:n] = data[pos:pos + n]
        out.extend(from_wire(h, b) for h, b in dec.feed(memoryview(scratch)[:n]))
        scratch[:] = b"\xff" * len(scratch)         # the next read overwrites it
        pos += n
    assert out == msgs and dec.buffered == 0


def test_microsecond_rounding_equals_round_to_six_digits():
    rnd = random.Random(11)
    samples = [rnd.uniform(2**30, 2**33) for _ in range(200_000)]
    samples += [2**30 + j / 2**22 for j in range(0, 2**22, 997)]           # every spacing, ties included
    samples += [rnd.uniform(-1e4, 1e4) for _ in range(20_000)] + [0.0, 100.0000005, 1e12 + 0.5e-6]
    assert all(_us(x) == round(x, 6) for x in samples)
    assert _us(None) is None


def test_identity_adapters_store_what_sqlite_stores_and_keep_a_users_adapter(tmp_path):
    install_fast_adapters()
    install_fast_adapters()                                    # twice: harmless
    db = sqlite3.connect(str(tmp_path / "a.db"))
    db.execute("CREATE TABLE t (a, b)")
    db.execute("INSERT INTO t VALUES (?, ?)", (None, b"\x00bytes"))
    assert db.execute("SELECT typeof(a), typeof(b), b FROM t").fetchall() == [("null", "blob", b"\x00bytes")]
    db.close()
    key = (bytes, sqlite3.PrepareProtocol)
    mine = sqlite3.adapters[key]
    try:
        sqlite3.register_adapter(bytes, lambda b: b.hex())
        install_fast_adapters()
        assert sqlite3.adapters[key] is not mine                # someone else's adapter is kept
    finally:
        sqlite3.register_adapter(bytes, mine)


@pytest.mark.parametrize("same_commit", [True, False])
def test_a_success_carries_its_dispatch_count_whether_or_not_it_shares_the_commit(tmp_path, same_commit):
    db = TaskDB(str(tmp_path / "tasks.db"))
    db.add_task("a", "c", {"label": None}, 1.7e9, b"p")
    db.add_task("b", "c", {"label": None}, 1.7e9, b"p")
    db.set_attempts("a", 1)
    db.set_attempts("b", 1)
    if not same_commit:
        assert db.wait_committed()
    db.set_attempts("a", 2)                 # a retry ...
    db.finish_task("a", "ok", 0, 1.7e9, 1.7e9, 1.7e9, b"r", attempts=2)    # ... that succeeded
    assert db.wait_committed()
    rows = {r["msg_id"]: r for r in db.query({}, keys=["status", "attempts", "result"])}
    assert (rows["a"]["status"], rows["a"]["attempts"], rows["a"]["result"]) == ("ok", 2, b"r")
    assert (rows["b"]["status"], rows["b"]["attempts"]) == ("pending", 1)       # still out: its count stays
    db.close()


@pytest.mark.parametrize("where", ["file", "memory"])
def test_record_rows_land_as_records(tmp_path, where):
    sink = RecordRows()
    sink.add("t0", 0, 1, 100.0, 100.5, 101.0, 102.0, Outcome.OK, None, 0, 0, "lru", "even")
    sink.add(7, 1, None, 100.0, None, None, 103.0, Outcome.ERROR, "TaskTimeout", 3, None, "lru", None)
    assert len(sink) == 2
    db = TaskDB(str(tmp_path / "tasks.db") if where == "file" else ":memory:")
    db.add_record_rows(sink.drain_rows())
    assert len(sink) == 0 and db.add_record_rows([]) == db.queued_seq
    assert db.wait_committed()
    recs = db.records()
    assert [(r.task_id, r.outcome, r.error_name, r.label) for r in recs] == [
        ("t0", Outcome.OK, None, "even"), ("7", Outcome.ERROR, "TaskTimeout", None)]
    db.close()


def test_default_flags_give_the_cores_default_spec():
    assert spec_for("x", NO_FLAGS) == TaskSpec("x")


class _Sent:
    def __init__(self) -> None:
        self.results: list[TaskResult] = []

    def __call__(self, link: object, result: TaskResult) -> None:
        self.results.append(result)


def test_get_result_answers_a_success_kept_as_a_tuple_until_its_row_commits(tmp_path):
    asked: list = []
    db = TaskDB(str(tmp_path / "tasks.db"), schedule=lambda delay_s, f: asked.append(f))    # commits when asked
    wait_until(lambda: db._writer_idle, 10, "the writer thread waiting")   # (else it commits the writes on its own)
    db.add_task("a", "c", {"label": None}, 1.7e9, b"p")
    answer = ("a", 3, 1.7e9, 1.7e9 + 1, 1.7e9 + 2, 1.7e9 + 3, b"res")
    db.finish_task("a", "ok", 3, answer[3], answer[4], answer[5], b"res", answer=answer, attempts=1)
    sent = _Sent()
    handler = RequestHandler(TaskTable(), {}, None, db, feed=lambda e: None, save_records=lambda: None,  # type: ignore
                             stop=lambda: None, send_result=sent)
    assert db.unsaved_answer("a") == answer and db.query({"msg_id": "a"}, ["status"]) == []     # not committed
    assert handler.op_get_result(object(), ["a"]) == {"pending": [], "done": ["a"]}  # type: ignore[arg-type]
    assert sent.results == [result_ok(*answer)]
    db.request_commit()
    for commit in asked:
        commit()
    assert db.wait_committed(timeout_s=5) and db.unsaved_answer("a") is None
    db.close()


def test_the_id_filter_never_forgets_an_id_and_rarely_claims_one_it_was_not_given():
    from real_cluster.taskdb_fast import IdFilter
    rng = random.Random(15)
    ids = [f"{rng.getrandbits(80):020x}{i:012x}" for i in range(60_000)]      # the client's shape of task id
    given, others = ids[:30_000], ids[30_000:]
    f = IdFilter()
    for tid in given:
        f.add(tid)
    assert all(tid in f for tid in given)                   # "surely new" is never wrong
    false = sum(tid in f for tid in others)
    assert false < 30                                       # 3 bits of 2**23 at 30,000 ids: ~1e-6 each expected
    assert sum(map(int.bit_count, f._bits)) > 3 * 30_000 * 0.99      # three distinct bits per id, nearly always
