"""Graph dependencies: which finished tasks a task waits for, and on what terms.

A `Dependency` is a set of task ids plus three flags (`all`, `success`, `failure`) with the exact
truth table of ipyparallel's `Dependency` (see reference/ipyparallel-semantics.md §2.1):

- `against` = completed ids if `success`, plus failed ids if `failure` (the outcomes that count);
- `bad`     = completed ids if not `success`, plus failed ids if not `failure`;
- `check`: empty -> True; `all` -> ids ⊆ against; any -> ids ∩ against non-empty;
- `unreachable`: empty -> False; `all` -> ids ∩ bad non-empty; any -> ids ⊆ bad.
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

TaskId = Hashable


def _flatten_ids(spec: Any) -> frozenset[TaskId]:
    """Turn a task id, a result-like object (with `msg_ids`), a Dependency or an iterable of those into ids."""
    if spec is None:
        return frozenset()
    if isinstance(spec, Dependency):
        return spec.ids
    if isinstance(spec, (str, int, bytes)):
        return frozenset((spec,))
    msg_ids = getattr(spec, "msg_ids", None)
    if msg_ids is not None:
        return frozenset(msg_ids)
    if isinstance(spec, dict):
        raise TypeError("a dependency is a task id, a result, a Dependency or a list of those, not a dict")
    if isinstance(spec, Iterable):
        out: set[TaskId] = set()
        for item in spec:
            if isinstance(item, (str, int, bytes)):
                out.add(item)
            elif getattr(item, "msg_ids", None) is not None:
                out.update(item.msg_ids)
            elif isinstance(item, Dependency):
                out.update(item.ids)
            else:
                raise TypeError(f"invalid dependency element {item!r}: expected a task id or a result")
        return frozenset(out)
    raise TypeError(f"invalid dependency {spec!r}: expected a task id, a result, a Dependency or a list of those")


@dataclass(frozen=True, slots=True, init=False)
class Dependency:
    """A set of task ids a task depends on, with ipyparallel's all/success/failure semantics.

    `Dependency(ids, all=True, success=True, failure=False)`; `ids` may be a task id, an object
    with `msg_ids` (an AsyncResult), another Dependency, or an iterable of those. Raises
    `ValueError` when both `success` and `failure` are False, `TypeError` for other element types.
    """

    ids: frozenset[TaskId]
    all: bool
    success: bool
    failure: bool

    def __init__(self, ids: Any = (), all: bool = True, success: bool = True, failure: bool = False):
        if not (success or failure):
            raise ValueError("a Dependency must count success, failure, or both")
        object.__setattr__(self, "ids", _flatten_ids(ids))
        object.__setattr__(self, "all", bool(all))
        object.__setattr__(self, "success", bool(success))
        object.__setattr__(self, "failure", bool(failure))

    @classmethod
    def coerce(cls, spec: Any) -> Dependency | None:
        """A Dependency from any accepted form; None (or empty) stays None. Flags of a Dependency are kept."""
        if spec is None:
            return None
        dep = spec if isinstance(spec, Dependency) else cls(spec)
        return dep if dep.ids else None

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[TaskId]:
        return iter(self.ids)

    def __contains__(self, task_id: object) -> bool:
        return task_id in self.ids

    def counts_as_met(self, succeeded: bool) -> bool:
        """Whether one finished dependency with this outcome counts towards the dependency."""
        return self.success if succeeded else self.failure

    def _against_bad(self, completed: Collection[TaskId], failed: Collection[TaskId]) -> tuple[set[TaskId], set[TaskId]]:
        against: set[TaskId] = set()
        bad: set[TaskId] = set()
        (against if self.success else bad).update(self.ids.intersection(completed))
        (against if self.failure else bad).update(self.ids.intersection(failed))
        return against, bad

    def check(self, completed: Collection[TaskId], failed: Collection[TaskId]) -> bool:
        """True when the dependency is met, given the ids that completed and the ids that failed."""
        if not self.ids:
            return True
        against, _ = self._against_bad(completed, failed)
        return len(against) == len(self.ids) if self.all else bool(against)

    def unreachable(self, completed: Collection[TaskId], failed: Collection[TaskId]) -> bool:
        """True when the dependency can never be met any more."""
        if not self.ids:
            return False
        _, bad = self._against_bad(completed, failed)
        return bool(bad) if self.all else len(bad) == len(self.ids)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data form (ids as a sorted list when sortable) for the wire and the task database."""
        try:
            ids: list[Any] = sorted(self.ids)
        except TypeError:
            ids = list(self.ids)
        return {"dependencies": ids, "all": self.all, "success": self.success, "failure": self.failure}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Dependency:
        """Inverse of `as_dict`."""
        return cls(data["dependencies"], all=data.get("all", True), success=data.get("success", True),
                   failure=data.get("failure", False))
