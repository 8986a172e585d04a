"""Dependency bookkeeping helpers of the scheduler: which dependency ids are known, and where `follow` is met.

Pure functions over the scheduler's tables (`tasks`: tracked ids, `completed`/`failed`: finished id ->
the engine it ran on, None for nowhere); the scheduler (scheduler.py) owns the tables and the rules.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from .dependency import Dependency

TaskId = Hashable
EngineId = Hashable


def known_only(dep: Dependency | None, tasks: Mapping[TaskId, object], completed: Mapping[TaskId, object],
               failed: Mapping[TaskId, object]) -> Dependency | None:
    """`dep` without the ids the scheduler no longer knows (purged): the same object if none were dropped."""
    if dep is None:
        return None
    known = [i for i in dep.ids if i in tasks or i in completed or i in failed]
    if len(known) == len(dep.ids):
        return dep
    return Dependency(known, all=dep.all, success=dep.success, failure=dep.failure) if known else None


def invalid_ids(tid: TaskId, deps: tuple[Dependency | None, ...], tasks: Mapping[TaskId, object],
                completed: Mapping[TaskId, object], failed: Mapping[TaskId, object]) -> list[TaskId]:
    """The ids in `deps` that are `tid` itself or unknown to the scheduler (never submitted, or purged)."""
    bad = []
    for dep in deps:
        if dep is None:
            continue
        for i in dep.ids:
            if i == tid or not (i in tasks or i in completed or i in failed):
                bad.append(i)
    return bad


def follow_engines(follow: Dependency, completed: Mapping[TaskId, EngineId | None],
                   failed: Mapping[TaskId, EngineId | None]) -> tuple[frozenset[EngineId] | None, str]:
    """Engines satisfying `follow` now (None: not yet decidable), or a reason it never can be."""
    where: set[EngineId | None] = set()
    n_good = n_bad = 0
    for i in follow.ids:
        if i in completed:
            ok, engine = True, completed[i]
        elif i in failed:
            ok, engine = False, failed[i]
        else:
            continue
        if follow.counts_as_met(ok):
            n_good += 1
            where.add(engine)
        else:
            n_bad += 1
    n = len(follow.ids)
    if (n_bad >= 1) if follow.all else (n_bad == n):
        return None, "a `follow` dependency can no longer be met"
    if follow.all:
        if None in where:
            return None, "a `follow` dependency never ran on an engine"
        if len(where) > 1:
            return None, f"`follow` dependencies ran on different engines {sorted(map(str, where))}"
        return (frozenset(where) if n_good == n else None), ""
    where.discard(None)
    if where:
        return frozenset(where), ""
    return None, ("" if n_good + n_bad < n else "no `follow` dependency ran on an engine")


__all__ = ["known_only", "invalid_ids", "follow_engines"]
