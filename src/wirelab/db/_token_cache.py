"""A short-lived, bounded in-process cache of verified API tokens.

Every relay request authenticates with a token; on PostgreSQL each lookup is a round trip
through a pooled connection and a thread hop. A busy client sends many requests with the
same token within a second, so remembering a verified token for ``ttl`` seconds removes
most lookups.

The bound, and why it is safe enough:

- Only tokens that matched a user are cached (an unknown token is always looked up, so a
  new user's token works at once).
- A user removed, or a token rotated, through the same :class:`~wirelab.db.Database`
  object is forgotten at once (:meth:`TokenCache.forget_user`), and a lookup that was in
  flight during that change is not cached (the generation check).
- A change made by *another process* (``wirelab users remove`` beside a running server,
  another server process) reaches this cache at the latest ``ttl`` seconds after the entry
  was stored: that is the documented bound for a removed user or an old token to stop
  working (``WIRELAB_AUTH_CACHE_SECONDS``). The same bound applies to the quotas shown
  with the user.
- At most ``max_entries`` tokens are held (the oldest go first); only token *hashes* are
  kept, never tokens.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

from ._api import User

__all__ = ["MAX_ENTRIES", "TokenCache"]

MAX_ENTRIES = 4096
"""Tokens remembered at most per process (a few hundred KB)."""


class TokenCache:
    """Token hash -> user, each entry valid ``ttl`` seconds after it was stored.

    Not thread-safe: used from one event loop (every method is synchronous and short).
    """

    def __init__(
        self,
        ttl: float,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError(f"ttl must be > 0, not {ttl}")
        self.ttl = ttl
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[User, float]] = OrderedDict()
        self._generation = 0

    @property
    def generation(self) -> int:
        """Changes whenever a user is forgotten: take it before a lookup and pass it to
        :meth:`put`, so that a lookup overtaken by a removal is not cached."""
        return self._generation

    def get(self, token_hash: str) -> User | None:
        """The user of ``token_hash`` if it was verified less than ``ttl`` seconds ago."""
        entry = self._entries.get(token_hash)
        if entry is None:
            return None
        user, expires = entry
        if self._clock() >= expires:
            del self._entries[token_hash]
            return None
        return user

    def put(self, token_hash: str, user: User, generation: int) -> None:
        """Remember that ``token_hash`` is ``user``'s, unless a user was forgotten since
        ``generation`` was read."""
        if generation != self._generation:
            return
        self._entries.pop(token_hash, None)
        self._entries[token_hash] = (user, self._clock() + self.ttl)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget_user(self, name: str) -> None:
        """Drop every token of user ``name`` (removed, token rotated, quotas changed)."""
        self._generation += 1
        for token_hash in [h for h, (u, _) in self._entries.items() if u.name == name]:
            del self._entries[token_hash]

    def __len__(self) -> int:
        return len(self._entries)
