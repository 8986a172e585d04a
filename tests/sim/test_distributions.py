"""Task-length distributions: parsing, validation, mean normalisation and SCV against the anchors (§4)."""

import math

import numpy as np
import pytest

from sched_lab.sim.distributions import DIST_NAMES, Dist, parse_dist


@pytest.mark.parametrize("text,scv", [
    ("exp", 1.0), ("const", 0.0), ("erlang4", 0.25), ("h2:c2=10", 10.0), ("lognormal:sigma=1.5", 8.488),
    ("weibull:k=0.5", 5.0), ("bimodal:p=0.1,ratio=100", 7.424), ("bpareto:a=2.5,k=1,p=1e6", 0.798),
    ("bpareto:a=1.5,p=1e6", 332.667),
])
def test_scv_matches_anchor_table(text, scv):
    assert parse_dist(text).scv == pytest.approx(scv, rel=1e-3)


@pytest.mark.parametrize("text", ["exp", "const", "erlang4", "h2:c2=10", "lognormal:sigma=1.0", "weibull:k=2",
                                  "bimodal:p=0.1,ratio=100", "erlang:k=3"])
def test_samples_have_mean_one_and_the_stated_scv(text):
    d = parse_dist(text)
    x = d.sample(np.random.default_rng(5), 400_000)
    assert x.min() >= 0
    assert x.mean() == pytest.approx(1.0, rel=0.02)
    assert x.var() / x.mean() ** 2 == pytest.approx(d.scv, rel=0.1, abs=0.01)


def test_bounded_pareto_is_normalised_and_bounded():
    d = parse_dist("bpareto:a=2.5,k=1,p=100")
    x = d.sample(np.random.default_rng(2), 400_000)
    raw_mean = 2.5 / 1.5 * (1 - 100 ** -1.5) / (1 - 100 ** -2.5)
    assert x.mean() == pytest.approx(1.0, rel=0.02)
    assert x.min() >= 1 / raw_mean * (1 - 1e-12) and x.max() <= 100 / raw_mean * (1 + 1e-12)


def test_mean_parameter_scales():
    d = parse_dist("lognormal:sigma=1,mean=0.01")
    assert d.mean == 0.01 and d.scv == pytest.approx(math.e - 1)
    assert d.sample(np.random.default_rng(1), 200_000).mean() == pytest.approx(0.01, rel=0.03)
    assert str(d) == "lognormal:sigma=1,mean=0.01"


def test_same_generator_state_gives_same_draws():
    d = parse_dist("h2:c2=4")
    assert np.array_equal(d.sample(np.random.default_rng(3), 100), d.sample(np.random.default_rng(3), 100))


@pytest.mark.parametrize("text,match", [
    ("gamma", "unknown distribution 'gamma'.*allowed: exp"), ("h2:c2", "malformed parameter"),
    ("h2:c2=abc", "malformed parameter"), ("exp:sigma=1", "takes no parameter 'sigma'"),
    ("h2:c2=0.5", "invalid parameters"), ("bimodal:p=1.5", "invalid parameters"), ("exp:mean=-1", "mean"),
    ("bpareto:k=5,p=2", "invalid parameters"),
])
def test_bad_strings_say_what_is_allowed(text, match):
    with pytest.raises(ValueError, match=match):
        parse_dist(text)


def test_every_name_parses_with_defaults():
    for name in DIST_NAMES:
        assert isinstance(parse_dist(name), Dist)
