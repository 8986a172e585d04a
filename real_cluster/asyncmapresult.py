"""AsyncMapResult (what `map_async` returns) and AsyncHubResult (what `get_result` / `resubmit` return for
tasks fetched from the controller), both AsyncResults with ipyparallel's names.

Differences from ipyparallel, by design: an AsyncHubResult does not poll the hub; the controller
pushes each result to every client that asked for it, the moment it is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .asyncresult import AsyncResult

if TYPE_CHECKING:
    from .client import Client

__all__ = ["AsyncMapResult", "AsyncHubResult"]


class AsyncMapResult(AsyncResult):
    """The result of a parallel map: `get()` is the list of every element's value, in order.

    Iterating yields the values as they arrive: in submission order, or in completion order when the
    map was made with `ordered=False`. `len()` and `progress` count elements, not tasks.
    """

    def __init__(self, client: Client, msg_ids: list[str], fname: str = "unknown", *,
                 chunk_sizes: list[int] | None = None, ordered: bool = True, single: bool | None = None,
                 return_exceptions: bool = False, owner: bool = False):
        if chunk_sizes is None:
            chunk_sizes = [1] * len(msg_ids)
        if len(chunk_sizes) != len(msg_ids):
            raise ValueError("one chunk size per task is needed")
        super().__init__(client, msg_ids, fname, chunk_sizes=chunk_sizes, ordered=ordered, single=False,
                         return_exceptions=return_exceptions, owner=owner)

    @property
    def ordered(self) -> bool:
        """Whether iteration follows submission order (else completion order)."""
        return self._ordered

    def __iter__(self) -> Any:
        return self._iterate()


class AsyncHubResult(AsyncResult):
    """An AsyncResult for tasks this client did not submit (or has forgotten), fetched from the controller."""
