"""The scheduler with schemes from the plugin API: specs, advertised speeds/labels, and scheme failures.

- `TaskScheduler(scheme="powerofd:d=3")` runs the parameterised scheme and records its canonical name;
  unknown names and parameters fail at construction with the choices;
- engines' advertised speed and labels (EngineJoined) reach the law (`fastest`, a user law on labels),
  also for tasks restricted by `targets` (the law over an explicit list);
- a law that raises or returns a non-candidate fails that task with Fail(SchemeError) and a record
  (outcome scheme_error), on submission, from the queue (drain) and with targets; the scheduler keeps
  going: the next task is placed, and every engine stays usable;
- a user law sees the task's label and size_hint.
"""

from __future__ import annotations

import pytest

from sched_lab.core import EngineJoined, Fail, Outcome
from sched_lab.core.scheme_api import SCHEMES, register_scheme

from _core_helpers import Harness, dispatches


@pytest.fixture
def user_schemes():
    names: list[str] = []
    yield names
    for n in names:
        SCHEMES.pop(n, None)


def _register(names, name, law, **kw):
    register_scheme(name, law, **kw)
    names.append(name)


def test_parameterised_spec_and_its_record_name() -> None:
    h = Harness(scheme="powerofd:d=3", hwm=0)
    assert h.s.scheme_name == "powerofd:d=3"
    h.join("a", "b")
    e = h.place("t1")
    h.finish("t1", e)
    assert [r.scheme for r in h.s.records.records] == ["powerofd:d=3"]


@pytest.mark.parametrize("spec,match", [("nope", "allowed: leastload"), ("powerofd:k=1", "parameters: d"),
                                        ("powerofd:d=0", "d >= 1")])
def test_bad_specs_fail_at_construction(spec: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Harness(scheme=spec)


@pytest.mark.parametrize("speed,labels", [(0, ()), (-1.0, ()), (float("inf"), ()), (True, ()), ("2", ()),
                                          (1.0, "gpu"), (1.0, (1,))])
def test_engine_joined_validates_speed_and_labels(speed, labels) -> None:
    with pytest.raises(ValueError):
        EngineJoined(0.0, "e", speed, labels)


def test_engine_joined_normalises_labels() -> None:
    assert EngineJoined(0.0, "e", 2, ["a", "b", "a"]).labels == frozenset({"a", "b"})
    assert EngineJoined(0.0, "e").speed == 1.0 and EngineJoined(0.0, "e").labels == frozenset()


def test_fastest_uses_advertised_speeds_at_hwm1() -> None:
    h = Harness(scheme="fastest", hwm=1)
    for i, speed in enumerate((1.0, 1.0, 4.0, 4.0)):
        h.handle(EngineJoined(0.0, f"e{i}", speed))
    first, second, third = h.place("t1"), h.place("t2"), h.place("t3")
    assert {first, second} == {"e2", "e3"} and third in ("e0", "e1")
    h.finish("t1", first)
    assert h.place("t4") == first                    # a fast engine freed: it is taken again
    # leastload on the same engines ignores speed: the least recently used idle engine
    g = Harness(scheme="leastload", hwm=1)
    for i, speed in enumerate((1.0, 1.0, 4.0, 4.0)):
        g.handle(EngineJoined(0.0, f"e{i}", speed))
    assert g.place("t1") == "e3" and g.place("t2") == "e2" and g.place("t3") == "e1"


def test_fastest_with_targets_uses_the_law_with_speeds() -> None:
    h = Harness(scheme="fastest", hwm=0)
    h.handle(EngineJoined(0.0, "slow", 1.0))
    h.handle(EngineJoined(0.0, "fast", 3.0))
    h.handle(EngineJoined(0.0, "other", 10.0))
    assert h.place("t1", targets=["slow", "fast"]) == "fast"
    assert h.place("t2", targets=["slow", "fast"]) == "fast"      # (1+1)/3 < (0+1)/1
    assert h.place("t3", targets=["slow", "fast"]) == "slow"      # (2+1)/3 = 1 ties (0+1)/1: LRU


def test_a_user_law_sees_labels_task_label_and_size_hint(user_schemes) -> None:
    seen = []

    def by_label(choice):
        seen.append((choice.task.label, choice.task.size_hint))
        for e, labels in zip(choice.candidates, choice.labels):
            if choice.task.label in labels:
                return e
        return choice.candidates[0]
    _register(user_schemes, "bylabel", by_label)
    h = Harness(scheme="bylabel", hwm=0)
    h.handle(EngineJoined(0.0, "cpu", 1.0, frozenset({"cpu"})))
    h.handle(EngineJoined(0.0, "gpu", 1.0, frozenset({"gpu"})))
    assert h.place("t1", label="gpu", size_hint=2.5) == "gpu"
    assert h.place("t2", label="cpu") == "cpu"
    assert seen == [("gpu", 2.5), ("cpu", None)]
    h.lose("gpu")
    assert h.place("t3", label="gpu") == "cpu"                     # labels of a lost engine are gone


def _fails(acts, task_id):
    return [a for a in acts if isinstance(a, Fail) and a.task_id == task_id]


def test_a_law_that_raises_fails_only_that_task(user_schemes) -> None:
    def picky(choice):
        if choice.task.label == "bad":
            raise RuntimeError("no engine for you")
        return choice.candidates[0]
    _register(user_schemes, "picky", picky)
    h = Harness(scheme="picky", hwm=1)
    h.join("a", "b")
    acts = h.submit("t1", label="bad")
    (fail,) = _fails(acts, "t1")
    assert fail.error_name == "SchemeError" and "scheme 'picky' raised RuntimeError: no engine for you" in fail.message
    assert h.s.task_state("t1") == "done"
    assert h.place("t2") in ("a", "b")                             # the scheduler goes on
    rec = [r for r in h.s.records.records if r.task_id == "t1"]
    assert rec[0].outcome == Outcome.SCHEME_ERROR and rec[0].error_name == "SchemeError" and rec[0].engine_id is None


def test_a_law_returning_a_non_candidate_fails_from_the_queue_and_with_targets(user_schemes) -> None:
    def stray(choice):
        return "nowhere" if choice.task.label == "stray" else choice.candidates[0]
    _register(user_schemes, "stray", stray)
    h = Harness(scheme="stray", hwm=1)
    h.join("a")
    ta = h.place("t0")
    assert h.submit("t1", label="stray") == []                      # queued: no engine free
    assert h.submit("t2") == []
    acts = h.finish("t0", ta)                                         # drain: t1 fails, t2 runs
    (fail,) = _fails(acts, "t1")
    assert "returned 'nowhere', which is not a candidate" in fail.message
    assert [d.task_id for d in dispatches(acts)] == ["t2"]
    h.finish("t2", "a")
    acts = h.submit("t3", label="stray", targets=["a"])
    assert _fails(acts, "t3") and h.place("t4", targets=["a"]) == "a"
    assert h.s.waiting_count == 0 and h.s.running_count == 1


def test_a_user_pool_that_strays_fails_the_task_not_the_scheduler(user_schemes) -> None:
    from sched_lab.core.pools import PlainRandomPool

    class Ghost(PlainRandomPool):
        def choose(self, rng, exclude=None, task=None):
            return "ghost" if task is not None and task.label == "ghost" else super().choose(rng, exclude, task)
    _register(user_schemes, "ghostpool", SCHEMES["plainrandom"].law, pool=lambda engines: Ghost(engines))
    h = Harness(scheme="ghostpool", hwm=0)
    h.join("a", "b")
    assert "(pool) returned 'ghost'" in _fails(h.submit("t1", label="ghost"), "t1")[0].message
    assert h.place("t2") in ("a", "b")


def test_unhashable_or_odd_choices_fail_the_task_not_the_scheduler(user_schemes) -> None:
    from sched_lab.core.pools import PlainRandomPool

    class ListPool(PlainRandomPool):
        def choose(self, rng, exclude=None, task=None):
            return ["a"]
    _register(user_schemes, "listlaw", lambda choice: [choice.candidates[0]])
    _register(user_schemes, "listpool", SCHEMES["plainrandom"].law, pool=lambda engines: ListPool(engines))
    for name in ("listlaw", "listpool"):
        h = Harness(scheme=name, hwm=0)
        h.join("a", "b")
        (fail,) = _fails(h.submit("t1"), "t1")
        assert fail.error_name == "SchemeError" and "returned ['" in fail.message
        assert h.s.task_state("t1") == "done"


def test_a_user_pool_raising_in_its_bookkeeping_fails_tasks_not_the_scheduler(user_schemes) -> None:
    from sched_lab.core.pools import PlainRandomPool

    class Fragile(PlainRandomPool):
        def update(self, engine, load, seq):
            if load > 1:
                raise RuntimeError("cannot count past one")
            super().update(engine, load, seq)
    _register(user_schemes, "fragile", SCHEMES["plainrandom"].law, pool=lambda engines: Fragile(engines))
    h = Harness(scheme="fragile", hwm=0)
    h.join("a")
    assert h.place("t1") == "a"                   # load 1: fine
    h.place("t2")                                 # load 2: the pool's update raises (inside the scheduler)
    (fail,) = _fails(h.submit("t3"), "t3")
    assert "raised RuntimeError in update: cannot count past one" in fail.message
    h.finish("t1", "a")                           # the scheduler itself keeps working
    assert h.s.running_count == 1
