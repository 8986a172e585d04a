"""The event pump both drivers use: feed events to a TaskScheduler, carry out its actions by type.

A driver builds one `EventPump(scheduler, handlers)` with exactly one handler per action type
(ACTION_TYPES) and calls `feed(event)` wherever it has a fact to report. The pump is re-entrant:
an event a handler reports while actions are being carried out (a dispatch to a dead engine, an
unmet requirement) is queued and handed to the core after the current action list, so actions
always run in the core's order. `post(event)` queues an event without handling it yet; the next
`feed` (after its own event) or `flush()` handles it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .model import Action, Cancel, CancelTimer, Deliver, Dispatch, DropActor, Event, Fail, Stage, StartTimer, Unstage

ACTION_TYPES: tuple[type, ...] = (Dispatch, Deliver, Fail, Cancel, StartTimer, CancelTimer)
# Actions only a scheduler given actors (DropActor) or a stage depth (Stage, Unstage: staging.py) emits: a driver
# may leave them out; one that comes anyway is an error.
OPTIONAL_ACTION_TYPES: tuple[type, ...] = (DropActor, Stage, Unstage)


class _Handles(Protocol):
    def handle(self, event: Event) -> list[Action]: ...


class EventPump:
    """Hands events to `scheduler.handle` one at a time and each resulting action to `handlers[type(action)]`.

    `on_handled(event, actions)`, when given, sees every event with its actions before they are
    carried out (the controller's journal). If a handler raises, the queued events are dropped and
    the exception propagates (the pump is ready for the next `feed`).
    """

    __slots__ = ("_handle", "handlers", "_queue", "_pumping", "on_handled")

    def __init__(self, scheduler: _Handles, handlers: Mapping[type, Callable[[Any], None]],
                 on_handled: Callable[[Event, list[Action]], None] | None = None) -> None:
        missing = [t.__name__ for t in ACTION_TYPES if t not in handlers]
        extra = [getattr(t, "__name__", repr(t)) for t in handlers
                 if t not in ACTION_TYPES and t not in OPTIONAL_ACTION_TYPES]
        if missing or extra:
            raise ValueError(f"EventPump needs one handler per action type; missing {missing}, unknown {extra}")
        self._handle = scheduler.handle
        self.handlers: dict[type, Callable[[Any], None]] = {t: _unsupported for t in OPTIONAL_ACTION_TYPES}
        self.handlers.update(handlers)
        self._queue: deque[Event] = deque()
        self._pumping = False
        self.on_handled = on_handled

    @property
    def pumping(self) -> bool:
        """True while the pump carries out actions (a `feed` now only queues its event)."""
        return self._pumping

    def post(self, event: Event) -> None:
        """Queue an event: handled after the current action list, or by the next `feed`/`flush`."""
        self._queue.append(event)

    def feed(self, event: Event) -> None:
        """Handle `event` now (or queue it, if called from a handler), then every queued event."""
        if self._pumping:
            self._queue.append(event)
            return
        self._pumping = True
        try:
            actions = self._handle(event)                # _run(event), inlined: once or twice per task
            if self.on_handled is not None:
                self.on_handled(event, actions)
            handlers = self.handlers
            for action in actions:
                handlers[action.__class__](action)
            queue = self._queue
            while queue:
                self._run(queue.popleft())
        finally:
            self._pumping = False
            self._queue.clear()

    def flush(self) -> None:
        """Handle the queued events (if not already pumping)."""
        if self._queue and not self._pumping:
            self.feed(self._queue.popleft())

    def _run(self, event: Event) -> None:
        actions = self._handle(event)
        if self.on_handled is not None:
            self.on_handled(event, actions)
        handlers = self.handlers
        for action in actions:
            handlers[action.__class__](action)

    def carry_out(self, actions: list[Action]) -> None:
        """Carry out actions the driver got from `scheduler.handle` itself (a documented fast path)."""
        handlers = self.handlers
        for action in actions:
            handlers[action.__class__](action)


def _unsupported(action: Action) -> None:
    raise ValueError(f"this driver gave the EventPump no handler for {type(action).__name__} "
                     f"(it submitted actors without supporting them): {action!r}")


__all__ = ["EventPump", "ACTION_TYPES", "OPTIONAL_ACTION_TYPES"]
