"""Scheduling options (scheme, hwm, retries, timeout_s): checked here once, used by every layer.

`SchedulingOptions` validates all four on construction; the `check_*` functions validate one value
each and return it normalised, for callers that hold only one of them (TaskSpec, the view's flags,
ControllerConfig, SimConfig, CLIs). A bad value raises InvalidOption, which is both a TypeError
(wrong type) and a ValueError (out of range), so callers may catch either.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Real


class InvalidOption(TypeError, ValueError):
    """A scheduling option has the wrong type or is out of range (message names the option)."""


def check_scheme(scheme: object) -> str:
    """A scheme spec `NAME[:key=value,..]` of a registered scheme; returns its canonical form (`powerofd:d=3`).

    The message of a bad name or parameter lists the choices (scheme_api.parse_scheme).
    """
    if not isinstance(scheme, str):
        raise InvalidOption(f"a scheme is a string NAME[:key=value,..], got {scheme!r}")
    from .scheme_api import check_scheme_spec      # (here: a worker checks the other options only, and the scheme
                                                    # machinery imports most of the core)
    try:
        return check_scheme_spec(scheme)
    except ValueError as exc:
        raise InvalidOption(str(exc)) from None


def check_hwm(hwm: object) -> int:
    """At most this many outstanding tasks per engine: an int >= 0 (0 = unlimited)."""
    if isinstance(hwm, bool) or not isinstance(hwm, int) or hwm < 0:
        raise InvalidOption(f"hwm must be an integer >= 0 (0 = unlimited), got {hwm!r}")
    return hwm


def check_retries(retries: object) -> int:
    """Extra runs after a failure: an int >= 0."""
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidOption(f"retries must be a non-negative integer, got {retries!r}")
    return retries


def check_time_limit_s(time_limit_s: object) -> float | None:
    """Longest a task may run on its engine before it is stopped (seconds): None (no limit) or a number > 0."""
    if time_limit_s is None:
        return None
    if isinstance(time_limit_s, bool) or not isinstance(time_limit_s, Real):
        raise InvalidOption(f"time_limit_s must be a number of seconds or None, got {time_limit_s!r}")
    value = float(time_limit_s)
    if not value > 0:                            # also rejects NaN
        raise InvalidOption(f"time_limit_s must be > 0 (None for no limit), got {time_limit_s!r}")
    return value


def check_size_hint(size_hint: object) -> float | None:
    """A submitter's estimate of a task's length (shown to schemes as `choice.task.size_hint`): None or a finite
    number >= 0."""
    if size_hint is None:
        return None
    if isinstance(size_hint, bool) or not isinstance(size_hint, Real):
        raise InvalidOption(f"size_hint must be a number >= 0 or None, got {size_hint!r}")
    value = float(size_hint)
    if not 0 <= value < float("inf"):            # also rejects NaN
        raise InvalidOption(f"size_hint must be a finite number >= 0 or None, got {size_hint!r}")
    return value


def check_timeout_s(timeout_s: object) -> float | None:
    """Longest wait in the scheduler in seconds (or time units): None, or a real number >= 0 (inf allowed).

    Returns None or a float; 0 is kept (TaskSpec reads 0 as "no limit").
    """
    if timeout_s is None:
        return None
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, Real):
        raise InvalidOption(f"timeout_s must be a number of seconds or None, got {timeout_s!r}")
    value = float(timeout_s)
    if not value >= 0:                           # also rejects NaN
        raise InvalidOption(f"timeout_s must be >= 0, got {timeout_s!r}")
    return value


@dataclass(frozen=True, slots=True)
class SchedulingOptions:
    """The four options a driver passes down: the scheme and hwm of the scheduler, the default retries
    and timeout_s of its tasks. Validated (and normalised) once, here."""

    scheme: str = "leastload"
    hwm: int = 1
    retries: int = 0
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scheme", check_scheme(self.scheme))
        check_hwm(self.hwm)
        check_retries(self.retries)
        object.__setattr__(self, "timeout_s", check_timeout_s(self.timeout_s))


__all__ = ["SchedulingOptions", "InvalidOption", "check_scheme", "check_hwm", "check_retries", "check_timeout_s",
           "check_time_limit_s"]
