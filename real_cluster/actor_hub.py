"""The controller's side of actors: their options and names, the actor fields of RunTask, the actor requests.

Every actor rule (placement, FIFO calls, max_concurrency, restarts, kill) is the core's
(sched_lab/core, docs/core-api.md "Actors and direct tasks"); the controller only translates. What
the wire needs and the core does not know is kept here: each actor's ActorOptions (class, name),
the name -> actor id directory (a name is free again once its actor is dead), and each creation
task's payload: a restart is a new attempt of the creation task (`scheduler.actor_role` says
"recreate" and which incarnation), dispatched after the client already had the creation's answer,
so its payload must outlive the pending task.
"""

from __future__ import annotations

import time
from typing import Any

from sched_lab.core import ActorKillRequested, TaskScheduler

from .messages import ActorOptions, TaskFlags

DEAD = "dead"


class ActorDirectory:
    """The actors submitted to this controller, by id and by name."""

    def __init__(self, scheduler: TaskScheduler):
        self.scheduler = scheduler
        self.options: dict[str, ActorOptions] = {}
        self.by_name: dict[str, str] = {}
        self.creations: dict[str, tuple[bytes, TaskFlags]] = {}     # creation task id -> its payload and flags

    # -------------------------------------------------------------------------- submissions
    def refusal(self, flags: TaskFlags) -> tuple[str, str] | None:
        """(ename, evalue) if this actor task cannot be accepted, else None (then `add` it)."""
        opts = flags.actor
        if opts is None:            # a call: the core fails one to an unknown actor (ActorDiedError)
            return None
        if opts.actor_id in self.options:
            return "ValueError", f"actor id {opts.actor_id!r} is already in use"
        if opts.name is not None and self.owner_of(opts.name) is not None:
            return "ValueError", f"an actor named {opts.name!r} already exists"
        return None

    def add(self, task_id: str, payload: bytes, flags: TaskFlags) -> None:
        """File the actor a creation task (already accepted by `refusal`) creates."""
        opts = flags.actor
        if opts is not None:
            self.options[opts.actor_id] = opts
            self.creations[task_id] = (payload, flags)
            if opts.name is not None:
                self.by_name[opts.name] = opts.actor_id

    def owner_of(self, name: str) -> str | None:
        """The id of the actor holding `name`, None if none (a dead actor's name is free, and so is the name of
        one the core refused)."""
        aid = self.by_name.get(name)
        if aid is None or self.state_of(aid) in (DEAD, None):
            return None
        return aid

    # ---------------------------------------------------------------------------- dispatch
    def run_fields(self, task_id: str) -> dict[str, Any]:
        """The actor fields of the RunTask of an actor task's dispatch, from the core's `actor_role`."""
        role = self.scheduler.actor_role(task_id)
        if role is None or role.role not in ("create", "recreate", "call"):
            return {}
        opts = self.options[str(role.actor_id)]
        return {"actor_id": opts.actor_id, "actor_role": role.role, "incarnation": role.incarnation,
                "max_concurrency": opts.max_concurrency}

    # ----------------------------------------------------------------------------- queries
    def _core(self) -> dict[Any, Any]:
        return {a.actor_id: a for a in self.scheduler.actors()}

    def state_of(self, actor_id: str) -> str | None:
        """The core's state of the actor ("pending", "alive", "restarting", "dead"), None if it does not know it."""
        info = self.scheduler.actor(actor_id)
        return None if info is None else str(getattr(info.state, "value", info.state))

    def describe(self, actor_id: str, core: Any = None) -> dict[str, Any]:
        """What `client.actors()` and `get_actor` say about one actor."""
        opts = self.options[actor_id]
        out: dict[str, Any] = {"actor_id": actor_id, "name": opts.name, "class": opts.class_name,
                               "max_restarts": opts.max_restarts, "max_task_retries": opts.max_task_retries,
                               "max_concurrency": opts.max_concurrency}
        if core is not None:
            out.update(engine_id=core.engine_id, state=str(getattr(core.state, "value", core.state)),
                       incarnation=core.incarnation, restarts=core.restarts_used,
                       calls_queued=core.calls_queued, calls_out=core.calls_out)
        else:
            out.update(engine_id=None, state="pending", incarnation=0, restarts=0, calls_queued=0, calls_out=0)
        return out

    def listing(self) -> list[dict[str, Any]]:
        core = self._core()
        return [self.describe(aid, core.get(aid)) for aid in self.options]

    def live_on(self) -> dict[int, int]:
        """Live actors per engine id (for queue_status)."""
        out: dict[Any, int] = {}
        for info in self.scheduler.actors():
            if info.engine_id is not None and str(getattr(info.state, "value", info.state)) != DEAD:
                out[info.engine_id] = out.get(info.engine_id, 0) + 1
        return out


class ActorRequests:
    """The actor request ops of the controller's RequestHandler (mixed in; `actor_dir` and `feed` are its)."""

    actor_dir: ActorDirectory
    feed: Any

    def op_actors(self, link: Any) -> list[dict[str, Any]]:
        return self.actor_dir.listing()

    def op_get_actor(self, link: Any, name: str) -> dict[str, Any]:
        aid = self.actor_dir.owner_of(name)
        if aid is None:
            from .hub_requests import RequestError
            raise RequestError("ValueError", f"no live actor named {name!r}")
        return self.actor_dir.describe(aid, self.actor_dir.scheduler.actor(aid))

    def op_kill_actor(self, link: Any, actor_id: str) -> None:
        if actor_id not in self.actor_dir.options:
            from .hub_requests import RequestError
            raise RequestError("ValueError", f"no actor with id {actor_id!r}")
        self.feed(ActorKillRequested(time.time(), actor_id))
