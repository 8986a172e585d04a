"""Task-length (and latency) distributions, normalised to a chosen mean (1 unless `mean=` is given).

A distribution is written `NAME[:key=value,...]`, e.g. `exp`, `const`, `erlang4`, `h2:c2=10`,
`lognormal:sigma=1.5`, `weibull:k=0.5`, `bimodal:p=0.1,ratio=100`, `bpareto:a=1.1,k=1,p=1e10`,
`exp:mean=0.01`. `parse_dist` raises `ValueError` saying what is allowed. Samples are drawn in
numpy blocks from the generator the caller passes (never a module-level random state).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# name -> (allowed parameters with defaults); `mean` is allowed everywhere (default 1).
_PARAMS: dict[str, dict[str, float]] = {
    "exp": {},
    "const": {},
    "erlang4": {},
    "erlang": {"k": 4.0},
    "h2": {"c2": 10.0},
    "lognormal": {"sigma": 1.0},
    "weibull": {"k": 0.5},
    "bimodal": {"p": 0.1, "ratio": 100.0},
    "bpareto": {"a": 1.1, "k": 1.0, "p": 1e10},
}
DIST_NAMES = tuple(_PARAMS)


def _bpareto_raw_moment(a: float, k: float, p: float, m: int) -> float:
    """E[X^m] of the bounded Pareto(a, k, p) before normalisation."""
    c = k**a / (1.0 - (k / p) ** a)
    if math.isclose(a, m):
        return c * a * math.log(p / k)
    return c * a / (m - a) * (p ** (m - a) - k ** (m - a))


@dataclass(frozen=True, slots=True)
class Dist:
    """A positive distribution with mean `mean`: `sample(rng, n)` draws n values, `scv` is Var/mean²."""

    name: str
    params: tuple[tuple[str, float], ...] = ()
    mean: float = 1.0

    def __post_init__(self) -> None:
        if self.name not in _PARAMS:
            raise ValueError(f"unknown distribution {self.name!r}; allowed: {', '.join(DIST_NAMES)}")
        if not (self.mean >= 0 and math.isfinite(self.mean)):
            raise ValueError(f"mean must be a finite number >= 0, got {self.mean!r}")
        allowed = _PARAMS[self.name]
        merged = dict(allowed)
        for key, value in self.params:
            if key not in allowed:
                raise ValueError(f"{self.name} takes no parameter {key!r}; allowed: "
                                 f"{', '.join([*allowed, 'mean']) }")
            merged[key] = float(value)
        object.__setattr__(self, "params", tuple(sorted(merged.items())))
        p = merged
        checks = {
            "erlang": p.get("k", 1) >= 1 and float(p.get("k", 1)).is_integer(),
            "h2": p.get("c2", 1) >= 1,
            "lognormal": p.get("sigma", 1) > 0,
            "weibull": p.get("k", 1) > 0,
            "bimodal": 0 < p.get("p", 0.5) < 1 and p.get("ratio", 1) > 0,
            "bpareto": p.get("a", 1) > 0 and 0 < p.get("k", 1) < p.get("p", 2),
        }
        if not checks.get(self.name, True):
            raise ValueError(f"invalid parameters for {self.name}: {dict(self.params)} "
                             "(erlang k integer >= 1; h2 c2 >= 1; sigma, weibull k > 0; "
                             "bimodal 0 < p < 1, ratio > 0; bpareto a > 0, 0 < k < p)")

    @property
    def _p(self) -> dict[str, float]:
        return dict(self.params)

    @property
    def scv(self) -> float:
        """Squared coefficient of variation (Var[X] / E[X]²), independent of the mean."""
        n, p = self.name, self._p
        if n == "exp":
            return 1.0
        if n == "const":
            return 0.0
        if n in ("erlang4", "erlang"):
            return 1.0 / p.get("k", 4.0)
        if n == "h2":
            return p["c2"]
        if n == "lognormal":
            return math.expm1(p["sigma"] ** 2)
        if n == "weibull":
            k = p["k"]
            return math.gamma(1 + 2 / k) / math.gamma(1 + 1 / k) ** 2 - 1
        if n == "bimodal":
            s = 1.0 / ((1 - p["p"]) + p["p"] * p["ratio"])
            return (1 - p["p"]) * s * s + p["p"] * (p["ratio"] * s) ** 2 - 1
        m1 = _bpareto_raw_moment(p["a"], p["k"], p["p"], 1)
        return _bpareto_raw_moment(p["a"], p["k"], p["p"], 2) / m1**2 - 1

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n draws (float64 array) with mean `self.mean`."""
        name, p, m = self.name, self._p, self.mean
        if m == 0:
            return np.zeros(n)
        if name == "exp":
            return rng.exponential(m, n)
        if name == "const":
            return np.full(n, m)
        if name in ("erlang4", "erlang"):
            k = p.get("k", 4.0)
            return rng.gamma(k, m / k, n)
        if name == "h2":  # balanced means
            p1 = 0.5 * (1 + math.sqrt((p["c2"] - 1) / (p["c2"] + 1)))
            first = rng.random(n) < p1
            x = rng.exponential(1.0, n)
            return np.where(first, x * (m / (2 * p1)), x * (m / (2 * (1 - p1))))
        if name == "lognormal":
            s = p["sigma"]
            return rng.lognormal(math.log(m) - s * s / 2, s, n)
        if name == "weibull":
            k = p["k"]
            return rng.weibull(k, n) * (m / math.gamma(1 + 1 / k))
        if name == "bimodal":
            s = m / ((1 - p["p"]) + p["p"] * p["ratio"])
            return np.where(rng.random(n) < p["p"], s * p["ratio"], s)
        a, k, hi = p["a"], p["k"], p["p"]
        u = rng.random(n)
        raw = k / (1 - u * (1 - (k / hi) ** a)) ** (1 / a)
        return raw * (m / _bpareto_raw_moment(a, k, hi, 1))

    def __str__(self) -> str:
        extra = [f"{k}={v:g}" for k, v in self.params]
        if self.mean != 1.0:
            extra.append(f"mean={self.mean:g}")
        return self.name + (":" + ",".join(extra) if extra else "")


def parse_dist(text: str) -> Dist:
    """`NAME[:key=value,...]` -> Dist; raises ValueError naming the problem and what is allowed."""
    name, _, rest = text.strip().partition(":")
    if name not in _PARAMS:
        raise ValueError(f"unknown distribution {name!r} in {text!r}; allowed: {', '.join(DIST_NAMES)} "
                         "(e.g. h2:c2=10, lognormal:sigma=1.5, exp:mean=0.01)")
    params: list[tuple[str, float]] = []
    mean = 1.0
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not eq or not math.isfinite(number):
            raise ValueError(f"malformed parameter {item!r} in {text!r}: expected key=number")
        if key.strip() == "mean":
            mean = number
        else:
            params.append((key.strip(), number))
    return Dist(name, tuple(params), mean)
