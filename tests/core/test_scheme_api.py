"""The scheme plugin API (DESIGN §3.1): registering, specs with parameters, loading user modules, check_scheme.

- register_scheme puts a Scheme in SCHEMES; the built-ins are registered the same way (law + pool);
- `NAME[:key=value,...]` specs: parameters converted to the default's type; unknown names and
  parameters fail listing the choices;
- a law that raises or returns a non-candidate becomes SchemeFailure naming the scheme and the value;
- check_scheme passes every built-in (powerofd with d=3 too) and catches broken pools and laws
  (it has power); its chi-square tail matches scipy's;
- load_scheme_module imports a file once, and names a missing one.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from random import Random

import pytest
from scipy import stats

import sched_lab
from sched_lab.core.model import TaskSpec
from sched_lab.core.pools import PlainRandomPool
from sched_lab.core.scheme_api import (
    SCHEMES, Choice, EngineDirectory, SchemeFailure, load_scheme_module, parse_scheme, register_scheme,
)
from sched_lab.core.scheme_checks import chi2_sf, two_sample_chi2
from sched_lab.testing import check_scheme

BUILTINS = ("leastload", "lru", "plainrandom", "twobin", "weighted", "powerofd", "jiq", "fastest")


@pytest.fixture
def user_schemes() -> Iterator[list[str]]:
    """Names registered by a test are removed afterwards (the registry is process-wide)."""
    names: list[str] = []
    yield names
    for n in names:
        SCHEMES.pop(n, None)


def _register(names: list[str], name: str, law, **kw) -> None:
    register_scheme(name, law, **kw)
    names.append(name)


def _choice(loads, speeds=None, rng=None) -> Choice:
    n = len(loads)
    return Choice(tuple(f"e{i}" for i in range(n)), tuple(loads), tuple(speeds or (1.0,) * n),
                  (frozenset(),) * n, TaskSpec("t"), rng or Random(0))


# ----------------------------------------------------------------------------------- registry

def test_builtins_are_registered_like_user_schemes() -> None:
    for name in BUILTINS:
        scheme = SCHEMES[name]
        assert scheme.name == name and callable(scheme.law) and scheme.pool_factory is not None
        assert scheme.summary
    assert sched_lab.register_scheme is register_scheme
    assert set(sched_lab.ORIGINAL_SCHEMES) < set(BUILTINS)


def test_builtin_names_cannot_be_replaced() -> None:
    with pytest.raises(ValueError, match="built-in"):
        register_scheme("leastload", lambda c: c.candidates[0])


def test_register_a_law_and_use_it_through_a_spec(user_schemes) -> None:
    def lastone(choice, k=1):
        return choice.candidates[-k]
    _register(user_schemes, "lastone", lastone, params={"k": 1}, summary="the k-th most recently used")
    bound = parse_scheme("lastone:k=2")
    assert bound.label == "lastone:k=2" and bound.params == {"k": 2}
    assert bound.choose_among(["a", "b", "c"], [0, 0, 0], EngineDirectory(), None, Random(0)) == "b"
    pool = bound.new_pool(EngineDirectory())           # no fast pool: the law over the explicit list
    for seq, e in enumerate("xyz"):
        pool.add(e, 0, seq)
    assert pool.choose(Random(0), None, None) == "y"
    assert pool.choose(Random(0), {"y"}, None) == "x"


def test_bad_names_and_parameters_fail_with_the_choices() -> None:
    with pytest.raises(ValueError, match="unknown scheme 'nope'; allowed: leastload, lru"):
        parse_scheme("nope")
    with pytest.raises(ValueError, match=r"no parameter 'k' \(parameters: d\)"):
        parse_scheme("powerofd:k=3")
    with pytest.raises(ValueError, match=r"no parameter 'd' \(parameters: none\)"):
        parse_scheme("leastload:d=3")
    with pytest.raises(ValueError, match="not a valid int"):
        parse_scheme("powerofd:d=three")
    with pytest.raises(ValueError, match="key=value"):
        parse_scheme("powerofd:d")
    with pytest.raises(ValueError, match="d >= 1"):
        parse_scheme("powerofd:d=0").new_pool(EngineDirectory())
    with pytest.raises(ValueError, match="scheme name"):
        register_scheme("a:b", lambda c: c.candidates[0])


def test_parameters_are_converted_to_the_default_type(user_schemes) -> None:
    _register(user_schemes, "typed", lambda c, **kw: c.candidates[0],
              params={"n": 1, "x": 0.5, "flag": False, "name": "a"})
    p = parse_scheme("typed: n=3, x=2, flag=yes, name=b ").params
    assert p == {"n": 3, "x": 2.0, "flag": True, "name": "b"}
    assert type(p["x"]) is float


def test_a_law_that_raises_or_returns_a_non_candidate_is_a_scheme_failure(user_schemes) -> None:
    _register(user_schemes, "boom", lambda c: 1 / 0)
    _register(user_schemes, "stray", lambda c: "nowhere")
    with pytest.raises(SchemeFailure, match="scheme 'boom' raised ZeroDivisionError"):
        parse_scheme("boom").choose_among(["a"], [0], EngineDirectory(), None, Random(0))
    with pytest.raises(SchemeFailure, match="scheme 'stray' returned 'nowhere', which is not a candidate"):
        parse_scheme("stray").choose_among(["a", "b"], [0, 0], EngineDirectory(), None, Random(0))


def test_a_user_pool_that_strays_is_a_scheme_failure(user_schemes) -> None:
    class Stray(PlainRandomPool):
        def choose(self, rng, exclude=None, task=None):
            return "ghost"
    _register(user_schemes, "straypool", lambda c: c.candidates[0], pool=lambda engines: Stray())
    pool = parse_scheme("straypool").new_pool(EngineDirectory())
    pool.add("a", 0, 1)
    with pytest.raises(SchemeFailure, match="returned 'ghost'"):
        pool.choose(Random(0))


def test_choice_is_validated() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Choice((), (), (), (), None, Random(0))
    with pytest.raises(ValueError, match="aligned"):
        Choice(("a",), (0, 1), (1.0,), (frozenset(),), None, Random(0))


# ------------------------------------------------------------------------------ the new laws

def test_fastest_prefers_the_lowest_expected_delay() -> None:
    law = SCHEMES["fastest"].law
    assert law(_choice([0, 0, 0], [1.0, 4.0, 4.0])) == "e1"         # idle: the fastest, LRU among equals
    assert law(_choice([0, 3], [1.0, 4.0])) == "e0"                  # (0+1)/1 = 1 < (3+1)/4 = 1 -> tie -> LRU
    assert law(_choice([1, 3], [1.0, 4.0])) == "e1"                  # 2 > 1
    assert law(_choice([2, 0, 1])) == "e1"                           # equal speeds: leastload


def test_jiq_takes_an_idle_engine_if_any() -> None:
    law = SCHEMES["jiq"].law
    rng = Random(3)
    picks = {law(_choice([2, 0, 1, 0], rng=rng)) for _ in range(200)}
    assert picks == {"e1", "e3"}
    picks = {law(_choice([2, 1, 1], rng=rng)) for _ in range(200)}
    assert picks == {"e0", "e1", "e2"}


def test_powerofd_d1_is_uniform_and_large_d_is_leastload() -> None:
    law = SCHEMES["powerofd"].law
    rng = Random(5)
    assert {law(_choice([0, 9, 9], rng=rng), d=1) for _ in range(200)} == {"e0", "e1", "e2"}
    assert {law(_choice([3, 0, 3], rng=rng), d=60) for _ in range(200)} == {"e1"}


# ------------------------------------------------------------------------------ check_scheme

@pytest.mark.parametrize("spec", [*BUILTINS, "powerofd:d=3", "powerofd:d=1"])
def test_check_scheme_passes_every_builtin(spec: str) -> None:
    report = check_scheme(spec, states=40, draws=3000)
    assert report.startswith(f"check_scheme({spec!r})") and "same seed, same choices" in report


def test_check_scheme_catches_a_pool_that_differs_from_a_deterministic_law(user_schemes) -> None:
    from sched_lab.core.pools import LRUPool
    _register(user_schemes, "wrongpool", SCHEMES["leastload"].law, pool=lambda engines: LRUPool())
    with pytest.raises(AssertionError, match="differs from the"):
        check_scheme("wrongpool")


def test_check_scheme_catches_a_pool_with_the_wrong_distribution(user_schemes) -> None:
    from sched_lab.core.pools import TwoBinPool
    _register(user_schemes, "wrongdist", SCHEMES["plainrandom"].law, pool=lambda engines: TwoBinPool())
    with pytest.raises(AssertionError, match="not distributed like the law"):
        check_scheme("wrongdist")


def test_check_scheme_catches_a_law_returning_a_non_candidate(user_schemes) -> None:
    _register(user_schemes, "badlaw", lambda c: c.candidates[0] if len(c.candidates) < 5 else "x")
    with pytest.raises(AssertionError, match="the law broke a rule.*'x'"):
        check_scheme("badlaw")


def test_check_scheme_catches_a_law_using_unseeded_randomness(user_schemes) -> None:
    unseeded = random.Random()                       # not the injected generator
    _register(user_schemes, "unseeded", lambda c: c.candidates[unseeded.randrange(len(c.candidates))])
    with pytest.raises(AssertionError, match="not deterministic under a seed"):
        check_scheme("unseeded")


def test_check_scheme_catches_a_pool_that_keeps_full_engines(user_schemes) -> None:
    """Only running it inside a scheduler shows this one: the pool ignores `discard` (lost or full engines).
    The scheduler does not crash on it: the pick is refused and that task fails with SchemeError."""
    from sched_lab.core.pools import LeastLoadPool

    class Sticky(LeastLoadPool):
        def discard(self, engine):
            pass
    _register(user_schemes, "sticky", SCHEMES["leastload"].law, pool=lambda engines: Sticky())
    with pytest.raises(AssertionError, match=r"in a scheduler at hwm=0: task .* failed: scheme 'sticky' \(pool\) "
                                             r"returned 'e\d+', which is not a candidate"):
        check_scheme("sticky")


def test_check_scheme_on_a_law_without_pool(user_schemes) -> None:
    _register(user_schemes, "idlefirst", lambda c: c.candidates[min(range(len(c.loads)), key=c.loads.__getitem__)])
    assert "no pool" in check_scheme("idlefirst")


@pytest.mark.parametrize("x,df", [(0.5, 1), (3.841, 1), (10.0, 3), (2.0, 7), (30.0, 12), (200.0, 150), (1e-3, 2)])
def test_chi2_tail_matches_scipy(x: float, df: int) -> None:
    assert chi2_sf(x, df) == pytest.approx(stats.chi2.sf(x, df), rel=1e-9, abs=1e-14)


def test_two_sample_chi2_pools_sparse_cells_and_detects_a_difference() -> None:
    same = two_sample_chi2({"a": 500, "b": 500, "c": 3}, {"a": 490, "b": 510, "c": 3})
    assert same[2] > 0.5
    differ = two_sample_chi2({"a": 700, "b": 300}, {"a": 500, "b": 500})
    assert differ[2] < 1e-10


# ---------------------------------------------------------------------------- user modules

def test_load_scheme_module_from_a_file_once(tmp_path, user_schemes) -> None:
    f = tmp_path / "my_scheme.py"
    f.write_text("from sched_lab import register_scheme\nCALLS = []\nCALLS.append(1)\n"
                 "register_scheme('fromfile', lambda c: c.candidates[0])\n")
    user_schemes.append("fromfile")
    m1 = load_scheme_module(str(f))
    m2 = load_scheme_module(str(f))
    assert m1 is m2 and m1.CALLS == [1] and "fromfile" in SCHEMES
    with pytest.raises(ValueError, match="not found"):
        load_scheme_module(str(tmp_path / "missing.py"))
    with pytest.raises(ValueError, match="not found"):
        load_scheme_module("no_such_module_xyz")


def test_a_broken_module_is_a_clear_error_and_registers_nothing(tmp_path) -> None:
    f = tmp_path / "broken_scheme.py"
    f.write_text("from sched_lab import register_scheme\nregister_scheme('halfway', lambda c: c.candidates[0])\n"
                 "raise RuntimeError('oops')\n")
    try:
        with pytest.raises(ValueError, match="broken_scheme.py' failed to import: RuntimeError: oops"):
            load_scheme_module(str(f))
        assert "halfway" not in SCHEMES
        f.write_text("def law(choice:\n")
        with pytest.raises(ValueError, match="failed to import: SyntaxError"):
            load_scheme_module(str(f))
    finally:
        SCHEMES.pop("halfway", None)


@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_index_reference_is_the_law(name: str) -> None:
    """The built-ins' plain index functions (the benchmark's peer) decide exactly as their laws."""
    scheme = SCHEMES[name]
    rnd = random.Random(7)
    for seed in range(200):
        loads = [rnd.choice((0, 0, 1, 2, 3)) for _ in range(rnd.randint(1, 9))]
        n = len(loads)
        choice = Choice(tuple(range(n)), tuple(loads), (1.0,) * n, (frozenset(),) * n, None, Random(seed))
        assert scheme.reference(loads, Random(seed)) == scheme.law(choice, **scheme.params), (name, loads, seed)
