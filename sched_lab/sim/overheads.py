"""Per-task overheads from a measured trace: independent, replayed, or time-modulated draws.

A live task costs more than its length: sleep overshoot, (un)pickling, the result's trip back, and
whatever else the host is doing at the time. `OverheadTrace(at_s, overhead_s)` holds measured
per-task overheads and when each was measured (seconds from the run's start; live_vs_sim uses the
task's submission time). Three models give simulated tasks at times `at_s` their extra work:

- `iid`: independent draws from all measured values. Ignores time, so it cannot reproduce bursts
  of host contention: a burst's slow tasks are spread over the whole run;
- `replay`: the value measured nearest in time (trace-driven: each burst lands where it was);
- `modulated`: a draw from the values measured within ±`window_s` of the task's time (the
  nearest value when none is): a locally stationary empirical distribution that reproduces when
  bursts happen and how large they are without copying each task's own value.

Draws come from the `numpy.random.Generator` the caller passes (a seeded stream of its own).
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

import numpy as np

OVERHEAD_MODELS = ("iid", "replay", "modulated")


@dataclass(frozen=True, slots=True, eq=False)
class OverheadTrace:
    """Measured overheads (seconds, >= 0) and when they were measured (seconds), sorted by time."""

    at_s: np.ndarray
    overhead_s: np.ndarray
    _at: list[float] = field(init=False, repr=False)
    _ovh: list[float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        at, ovh = np.asarray(self.at_s, dtype=np.float64), np.asarray(self.overhead_s, dtype=np.float64)
        if at.ndim != 1 or at.shape != ovh.shape:
            raise ValueError(f"at_s and overhead_s must be 1-d and of one length, got {at.shape} and {ovh.shape}")
        if len(at) == 0:
            raise ValueError("an overhead trace needs at least one measurement")
        if not (np.isfinite(at).all() and np.isfinite(ovh).all()) or (ovh < 0).any():
            raise ValueError("overheads must be finite and >= 0, and their times finite")
        order = np.argsort(at, kind="stable")
        object.__setattr__(self, "at_s", at[order])
        object.__setattr__(self, "overhead_s", ovh[order])
        object.__setattr__(self, "_at", self.at_s.tolist())
        object.__setattr__(self, "_ovh", self.overhead_s.tolist())

    def __len__(self) -> int:
        return len(self.at_s)

    def sample(self, model: str, at_s: np.ndarray, rng: np.random.Generator, window_s: float = 0.2) -> np.ndarray:
        """Overheads for tasks at times `at_s` under `model` (one of OVERHEAD_MODELS)."""
        at = np.asarray(at_s, dtype=np.float64)
        if model == "iid":
            return self.overhead_s[rng.integers(0, len(self), size=len(at))]
        if model == "replay":
            return self.overhead_s[self._nearest(at)]
        if model == "modulated":
            if not (window_s > 0 and math.isfinite(window_s)):
                raise ValueError(f"window_s must be a number > 0, got {window_s!r}")
            lo = np.searchsorted(self.at_s, at - window_s, side="left")
            hi = np.searchsorted(self.at_s, at + window_s, side="right")
            span = hi - lo
            idx = lo + np.floor(rng.random(len(at)) * np.maximum(span, 1)).astype(np.int64)
            idx = np.where(span > 0, idx, self._nearest(at))
            return self.overhead_s[idx]
        raise ValueError(f"unknown overhead model {model!r}; allowed: {', '.join(OVERHEAD_MODELS)}")

    def draw_at(self, t: float, u: float, model: str = "modulated", window_s: float = 0.2) -> float:
        """One value for time `t` given a uniform `u` in [0, 1): `sample` for a single task, without
        numpy (the simulator calls it per message)."""
        at = self._at
        if model == "iid":
            return self._ovh[int(u * len(at))]
        if model == "modulated":
            lo, hi = bisect_left(at, t - window_s), bisect_right(at, t + window_s)
            if hi > lo:
                return self._ovh[lo + int(u * (hi - lo))]
        elif model != "replay":
            raise ValueError(f"unknown overhead model {model!r}; allowed: {', '.join(OVERHEAD_MODELS)}")
        i = bisect_left(at, t)
        if i == len(at) or (i > 0 and t - at[i - 1] <= at[i] - t):
            i -= 1
        return self._ovh[i]

    def _nearest(self, at: np.ndarray) -> np.ndarray:
        right = np.clip(np.searchsorted(self.at_s, at), 0, len(self) - 1)
        left = np.clip(right - 1, 0, len(self) - 1)
        closer_left = np.abs(self.at_s[left] - at) <= np.abs(self.at_s[right] - at)
        return np.where(closer_left, left, right)
