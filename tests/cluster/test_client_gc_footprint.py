"""What a pending AsyncResult costs the client's garbage collector (issue 15: a burst of 20,000 `apply_async` spent
~7-27 µs a task in full collections), and that its lighter condition behaves as threading.Condition does: waits
woken by results, concurrent.futures' wait and as_completed, reentry from the thread that holds it."""

from __future__ import annotations

import gc
import threading
from concurrent.futures import FIRST_COMPLETED, Future, as_completed, wait

import pytest

from real_cluster import asyncresult
from real_cluster.messages import NO_FLAGS
from real_cluster.asyncresult import _LeanCondition

pytestmark = pytest.mark.timeout(120)


def _noop():
    return None


def test_a_pending_apply_async_leaves_at_most_twelve_tracked_objects(make_cluster):
    rc = make_cluster(0).client                 # no engine: every task stays pending
    view = rc.load_balanced_view()
    ars = [view.apply_async(_noop) for _ in range(50)]     # (the function cached, the view's flags made)
    gc.collect()
    gc.disable()
    try:
        before = len(gc.get_objects())
        ars += [view.apply_async(_noop) for _ in range(1000)]
        per_task = (len(gc.get_objects()) - before) / 1000
    finally:
        gc.enable()
    assert per_task <= 12, f"{per_task} GC-tracked objects per pending apply_async (17 before the lean condition)"
    rc.abort(ars)
    assert all(isinstance(ar.exception(30), Exception) for ar in ars)     # each still resolves, to its abort


def test_the_lean_condition_waits_notifies_and_reenters():
    cond = _LeanCondition()
    box: list[int] = []

    def producer() -> None:
        with cond:
            with cond:                          # an RLock: the owner may enter again (set_result inside _part_done)
                box.append(1)
                cond.notify_all()

    with cond:
        t = threading.Thread(target=producer)
        t.start()
        assert cond.wait_for(lambda: box, timeout=30)       # released while waiting, owned again after
        assert cond._is_owned()
    t.join(30)
    assert not cond._is_owned() and cond.acquire(timeout=1)
    cond.release()
    with pytest.raises(RuntimeError):
        cond.notify()                           # not owned: refused as by threading.Condition


def test_results_wake_every_kind_of_waiter(make_cluster):
    rc = make_cluster(1).client
    view = rc.load_balanced_view()
    ars = [view.apply_async(pow, 2, i) for i in range(20)]
    done, _ = wait(ars, timeout=60, return_when=FIRST_COMPLETED)
    assert done
    assert sorted(ar.result(60) for ar in as_completed(ars, timeout=60)) == [2 ** i for i in range(20)]
    late = view.apply_async(pow, 3, 3)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(late.get(60)))    # a thread blocked in wait()
    waiter.start()
    waiter.join(60)
    assert got == [27]


def test_an_async_result_starts_as_a_fresh_future_does_and_works_as_one(make_cluster):
    # AsyncResult sets Future.__init__'s fields itself (not building the Condition Future.__init__ would replace):
    # on this Python that shortcut is taken, and a fresh AsyncResult holds every field of a fresh Future, equal
    rc = make_cluster(0).client                 # but for the condition (no engine: it stays pending)
    assert asyncresult._FUTURE_FIELDS
    ar = rc.load_balanced_view().apply_async(_noop)
    fresh = vars(Future())
    assert {k: getattr(ar, k) for k in fresh if k != "_condition"} == {k: v for k, v in fresh.items()
                                                                    if k != "_condition"}
    assert isinstance(ar._condition, _LeanCondition) and not ar.done() and not ar.running()
    called: list[BaseException | None] = []
    ar.add_done_callback(lambda f: called.append(f.exception()))
    rc.abort([ar])                              # resolved by its abort: state, exception, callbacks, waiters
    assert isinstance(ar.exception(30), Exception) and ar.done() and not ar.cancelled()
    assert called == [ar.exception()]


def test_a_views_default_flags_are_the_one_default_object_and_others_are_not(make_cluster):
    view = make_cluster(0).client.load_balanced_view()
    assert view._flags() is NO_FLAGS and view._flags() is NO_FLAGS  # (submit_task tests it by identity)
    with view.temp_flags(label="x"):
        assert view._flags() is not NO_FLAGS and view._flags().label == "x"
    view.retries = 2
    assert view._flags() is not NO_FLAGS and view._flags() == view._flags() and view._flags().retries == 2
