"""Closed-form queueing results used to validate the simulator (reference/queueing-anchors.md §1).

Conventions: service rate `mu` per engine (mean task 1/mu), Poisson arrivals at per-engine load
`lam` (so the total arrival rate is lam·n·mu for n engines). Response (sojourn) time T = wait +
service. Every function raises `ValueError` for a load outside [0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["MMcResult", "erlang_c", "mm1_response", "mmc", "mmc_response", "rr_response",
           "supermarket_response", "supermarket_tails", "pk_response", "allen_cunneen_response"]


def _check_load(lam: float) -> None:
    if not 0 <= lam < 1:
        raise ValueError(f"per-engine load must be in [0, 1), got {lam!r}")


def mm1_response(lam: float, mu: float = 1.0) -> float:
    """M/M/1 mean response time 1/(mu - lam·mu) at per-engine load lam (= plainrandom, hwm=0)."""
    _check_load(lam)
    return 1.0 / (mu * (1.0 - lam))


def erlang_c(c: int, a: float) -> float:
    """Probability that an arrival waits in M/M/c with offered load a = lam_total/mu (a < c)."""
    if c < 1 or not 0 <= a < c:
        raise ValueError(f"need c >= 1 and 0 <= a < c, got c={c!r}, a={a!r}")
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    rho = a / c
    return b / (1.0 - rho * (1.0 - b))


@dataclass(frozen=True, slots=True)
class MMcResult:
    """M/M/c at per-server load rho: probability of waiting, mean wait in queue, mean response."""

    p_wait: float
    mean_wait: float
    mean_response: float


def mmc(c: int, rho: float, mu: float = 1.0) -> MMcResult:
    """Erlang-C M/M/c (= any scheme with hwm=1, identical exponential engines, central FIFO queue)."""
    _check_load(rho)
    lam = rho * c * mu
    p = erlang_c(c, lam / mu)
    wq = p / (c * mu - lam)
    return MMcResult(p, wq, wq + 1.0 / mu)


def mmc_response(c: int, rho: float, mu: float = 1.0) -> float:
    """Mean response time of M/M/c at per-server load rho."""
    return mmc(c, rho, mu).mean_response


def rr_response(lam: float, n: float, mu: float = 1.0) -> float:
    """Round-robin over n engines (lru, hwm=0): per engine E_n/M/1; n = math.inf gives D/M/1.

    Solves the GI/M/1 fixed point sigma = A*(mu(1 - sigma)) with A*(s) = (n·lam/(n·lam + s))^n
    (lam·mu is the per-engine arrival rate) and returns T = 1/(mu(1 - sigma)).
    """
    _check_load(lam)
    if lam == 0:
        return 1.0 / mu
    rate = lam * mu  # per-engine arrival rate

    def lst(s: float) -> float:
        if math.isinf(n):
            return math.exp(-s / rate)
        return (n * rate / (n * rate + s)) ** n

    sigma = 0.5
    for _ in range(1_000_000):
        nxt = lst(mu * (1.0 - sigma))
        if abs(nxt - sigma) < 1e-15:
            sigma = nxt
            break
        sigma = nxt
    return 1.0 / (mu * (1.0 - sigma))


def supermarket_tails(lam: float, d: int, count: int = 10) -> list[float]:
    """Mean-field fraction of queues with at least i tasks, i = 1..count: lam^((d^i - 1)/(d - 1))."""
    _check_load(lam)
    if d == 1:
        return [lam**i for i in range(1, count + 1)]
    return [lam ** ((d**i - 1) / (d - 1)) for i in range(1, count + 1)]


def supermarket_response(lam: float, d: int, mu: float = 1.0, tol: float = 1e-15) -> float:
    """Mitzenmacher's supermarket model (JSQ(d), n → ∞): T_d = Σ_{i≥1} lam^((d^i - d)/(d - 1)) / mu."""
    _check_load(lam)
    if d < 1:
        raise ValueError(f"d must be >= 1, got {d!r}")
    if d == 1:
        return 1.0 / (mu * (1.0 - lam))
    total, i = 0.0, 1
    while True:
        term = lam ** ((d**i - d) / (d - 1))
        total += term
        if term < tol or i > 64:
            return total / mu
        i += 1


def pk_response(lam: float, scv: float, mean: float = 1.0) -> float:
    """Pollaczek–Khinchine M/G/1 mean response at load lam, service mean `mean` and SCV `scv`.

    T = mean + lam·mean·(1 + scv) / (2(1 - lam)); random dispatch with hwm=0 gives n×M/G/1.
    """
    _check_load(lam)
    if scv < 0:
        raise ValueError(f"scv must be >= 0, got {scv!r}")
    return mean * (1.0 + lam * (1.0 + scv) / (2.0 * (1.0 - lam)))


def allen_cunneen_response(c: int, rho: float, scv: float) -> float:
    """M/G/c approximation Wq ≈ Wq(M/M/c)·(1 + scv)/2 plus service (an approximation, not exact)."""
    r = mmc(c, rho)
    return r.mean_wait * (1.0 + scv) / 2.0 + 1.0
