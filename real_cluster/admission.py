"""Which connections may hold a half-open handshake: a cap per source address and one in total (sans-IO).

How this works. Every accepted connection asks `admit(conn, source)` before the controller sends its
challenge. A source already holding `per_source` half-open handshakes is refused (the peer is told
"overloaded, retry"). When `total` are held, room is made by evicting the oldest handshake of the
source holding the most (so one flooding address evicts only itself, never the others); if the
newcomer's own source is that busiest source, the newcomer is refused instead. `done(conn)` ends the
accounting (authenticated, failed or closed). Counts of refusals and evictions per source are kept
for the controller's rate-limited log line.
"""

from __future__ import annotations

from collections import Counter
from typing import Hashable


class HandshakeGate:
    """Bounds half-open handshakes per source and in total; `admit` says whom to refuse or evict."""

    def __init__(self, per_source: int, total: int):
        if per_source < 1 or total < per_source:
            raise ValueError("need 1 <= per_source <= total")
        self.per_source = per_source
        self.total = total
        self._by_source: dict[str, dict[Hashable, None]] = {}     # insertion order: oldest first
        self._source_of: dict[Hashable, str] = {}
        self.refused: Counter[str] = Counter()
        self.evicted: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._source_of)

    def held(self, source: str) -> int:
        """Half-open handshakes `source` holds now."""
        return len(self._by_source.get(source, ()))

    def admit(self, conn: Hashable, source: str) -> tuple[bool, Hashable | None]:
        """(whether `conn` may start its handshake, a connection to evict first or None)."""
        mine = self._by_source.get(source)
        if mine is not None and len(mine) >= self.per_source:
            self.refused[source] += 1
            return False, None
        victim = None
        if len(self._source_of) >= self.total:
            busiest = max(self._by_source, key=lambda s: len(self._by_source[s]))
            if busiest == source or len(self._by_source[busiest]) <= (len(mine) if mine else 0) + 1:
                self.refused[source] += 1
                return False, None
            victim = next(iter(self._by_source[busiest]))
            self.done(victim)
            self.evicted[busiest] += 1
        self._by_source.setdefault(source, {})[conn] = None
        self._source_of[conn] = source
        return True, victim

    def done(self, conn: Hashable) -> None:
        """`conn` no longer holds a handshake (idempotent)."""
        source = self._source_of.pop(conn, None)
        if source is None:
            return
        mine = self._by_source[source]
        mine.pop(conn, None)
        if not mine:
            del self._by_source[source]

    def take_counts(self) -> tuple[Counter[str], Counter[str]]:
        """(refused, evicted) per source since the last call."""
        out = self.refused, self.evicted
        self.refused, self.evicted = Counter(), Counter()
        return out
